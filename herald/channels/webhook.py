"""Webhooks over aiohttp: signed, idempotent, with explicit timeouts and a sorted outcome.

Every request carries `Idempotency-Key: <message id>` (the same on every retry) and, when the step
has a secret, `Herald-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`: the
receiver recomputes it with the shared secret and refuses old timestamps.

aiohttp, not httpx: with 64 webhooks in flight to one receiver httpx's connection pool cost
~2.5 ms a request (406 webhooks/s from one worker); aiohttp's keeps ~0.15 ms (6,800/s), measured in
docs/benchmarks.md ("Journeys").
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

import aiohttp
from multidict import CIMultiDict

from herald.channels.base import Delivery, Result, WebhookMessage

USER_AGENT = "Herald-Webhook/1"
SIGNATURE_HEADER = "Herald-Signature"
RETRIED_STATUSES = frozenset({408, 425, 429})  # besides every 5xx
CONNECTIONS = 64  # open connections in all, at most
CONNECTIONS_PER_HOST = 16  # to one receiver: enough to keep it busy, few enough to be polite
ANSWER_BYTES = 65_536  # read of an answer's body; a longer one costs its connection
DETAIL_CHARS = 200  # of an error answer's body, kept as the message's last error


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """The Herald-Signature header value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def new_session(
    *, connections: int = CONNECTIONS, per_host: int = CONNECTIONS_PER_HOST
) -> aiohttp.ClientSession:
    """The HTTP session webhooks share (create it inside the running event loop).

    No cookie jar: a cookie one receiver sets must never ride along on another customer's
    message. Redirects are not followed (see `WebhookChannel.send`).
    """
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections, limit_per_host=per_host),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
    )


class WebhookChannel:
    """Sends webhook messages through one shared aiohttp session."""

    def __init__(
        self, session: aiohttp.ClientSession, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._session = session
        self._clock = clock

    async def send(self, message: WebhookMessage) -> Delivery:
        """Send `message` once. A redirect is an answer like any other 3xx: failed, not followed
        (a journey's URL should be the final one; following would re-send the signed body)."""
        body = (message.body or "").encode()
        headers: CIMultiDict[str] = CIMultiDict(
            {"User-Agent": USER_AGENT, "Content-Type": "application/json"}
        )
        for name, value in message.headers.items():  # case-insensitive: a step's header
            headers[name] = value  # replaces ours, never doubles it
        headers["Idempotency-Key"] = message.id  # Herald's own: a step cannot change them
        headers.popall(SIGNATURE_HEADER, None)
        if message.secret:
            headers[SIGNATURE_HEADER] = signature(message.secret, body, int(self._clock()))
        try:
            async with self._session.request(
                message.method,
                message.url,
                data=body if message.body is not None else None,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=message.timeout_s),
                allow_redirects=False,
            ) as response:
                answer = await _head_of(response)
                return _sorted(response, answer)
        except TimeoutError:
            return Delivery(Result.RETRY, f"no answer within {message.timeout_s:g} s")
        except aiohttp.InvalidURL as exc:
            return Delivery(Result.FAILED, f"the URL cannot be used: {exc}")
        except aiohttp.ClientError as exc:
            return Delivery(Result.RETRY, _network_error(exc))
        except ValueError as exc:  # a header value aiohttp refuses to put on the wire
            return Delivery(Result.FAILED, f"the request cannot be sent: {exc}")


async def _head_of(response: aiohttp.ClientResponse) -> bytes:
    """The answer's body up to ANSWER_BYTES (read to the end, the connection is kept)."""
    chunks: list[bytes] = []
    size = 0
    while size < ANSWER_BYTES and (chunk := await response.content.read(ANSWER_BYTES - size)):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _network_error(exc: aiohttp.ClientError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.strerror or str(exc.os_error) or type(exc.os_error).__name__
        return f"cannot connect to {exc.host}:{exc.port}: {reason}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the receiver closed the connection without answering"
    return f"{type(exc).__name__}: {exc}"


def _sorted(response: aiohttp.ClientResponse, answer: bytes) -> Delivery:
    status = response.status
    text = answer.decode("utf-8", errors="replace")[:DETAIL_CHARS]
    detail = f"HTTP {status}: {text}".rstrip(": ")
    if 200 <= status < 300:
        return Delivery(Result.SENT, f"HTTP {status}")
    if status >= 500 or status in RETRIED_STATUSES:
        return Delivery(Result.RETRY, detail, _retry_after_s(response))
    return Delivery(Result.FAILED, detail)


def _retry_after_s(response: aiohttp.ClientResponse) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    if value.isascii() and value.isdigit():
        return float(value)
    return None  # an HTTP-date is rare from webhook receivers: plain backoff then
