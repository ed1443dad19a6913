"""HTTP to Herald: one keep-alive connection (http.client), gzipped batches, the answer as data.

Nothing here decides what an answer means; the sender does (herald_client.sender).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import http.client
import math
import time
import urllib.parse
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from herald_client.events import QueuedEvent

BATCH_PATH = "/api/events/batch/"
USER_AGENT = "herald-client-python/0.1.0"
# Errors that mean a kept-alive connection was closed by the server while idle: the request never
# reached it, so it goes again at once on a new connection instead of waiting for a retry.
_STALE_CONNECTION = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)
MAX_RETRY_AFTER_S = 300.0  # a Retry-After past this is taken as this: the sender stays alive


@dataclass(frozen=True)
class Answer:
    """Herald's answer to one request."""

    status: int
    body: bytes
    retry_after_s: float | None  # from the Retry-After header (seconds or an HTTP date)


@dataclass(frozen=True)
class Endpoint:
    """Where the batches go: scheme, host, port and the batch route's path."""

    https: bool
    host: str
    port: int | None
    path: str

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        """`http://127.0.0.1:8000` or `https://herald.example.com/prefix`; ValueError if not."""
        if not isinstance(url, str):
            raise TypeError(f"host must be a URL string, got {type(url).__name__}")
        parts = urllib.parse.urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = -1
        if parts.scheme not in ("http", "https") or not parts.hostname or port == -1:
            raise ValueError(
                f"host {url!r} is not a Herald URL; write it like http://127.0.0.1:8000 "
                "or https://herald.example.com"
            )
        path = parts.path.rstrip("/") + BATCH_PATH
        return cls(parts.scheme == "https", parts.hostname, port, path)


def encode_batch(events: Sequence[QueuedEvent], *, gzip_level: int) -> bytes:
    """The request body: `{"batch": [...], "sent_at": now}`, gzipped."""
    sent_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()).encode()
    body = b"".join(
        (b'{"batch":[', b",".join([event.data for event in events]), b'],"sent_at":"', sent_at)
    )
    compressor = zlib.compressobj(gzip_level, zlib.DEFLATED, 31)  # 31: the gzip container
    return compressor.compress(body) + compressor.compress(b'"}') + compressor.flush()


class Transport:
    """POSTs bodies to Herald's batch route over one kept-alive connection."""

    def __init__(self, endpoint: Endpoint, api_key: str, *, timeout_s: float) -> None:
        self._endpoint = endpoint
        self._timeout_s = timeout_s
        self._headers = {
            "Authorization": f"Api-Key {api_key}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "User-Agent": USER_AGENT,
        }
        self._connection: http.client.HTTPConnection | None = None

    def post(self, body: bytes) -> Answer:
        """Send one gzipped batch; raises OSError or http.client.HTTPException on network errors."""
        reused = self._connection is not None
        try:
            return self._exchange(body)
        except _STALE_CONNECTION:
            self.close()
            if not reused:
                raise
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        try:
            return self._exchange(body)
        except (OSError, http.client.HTTPException):
            self.close()
            raise

    def _exchange(self, body: bytes) -> Answer:
        connection = self._connection or self._connect()
        connection.request("POST", self._endpoint.path, body, self._headers)
        response = connection.getresponse()
        data = response.read()
        if response.will_close:
            self.close()
        return Answer(response.status, data, parse_retry_after(response.getheader("Retry-After")))

    def _connect(self) -> http.client.HTTPConnection:
        endpoint = self._endpoint
        kind = http.client.HTTPSConnection if endpoint.https else http.client.HTTPConnection
        self._connection = kind(endpoint.host, endpoint.port, timeout=self._timeout_s)
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (`120` or an HTTP date); None if absent or bad."""
    if value is None:
        return None
    seconds: float | None
    try:
        seconds = float(value)
    except ValueError:
        seconds = _seconds_until(value)
    if seconds is None or math.isnan(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER_S)


def _seconds_until(http_date: str) -> float | None:
    try:
        moment = email.utils.parsedate_to_datetime(http_date)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return (moment - dt.datetime.now(dt.timezone.utc)).total_seconds()
