"""Real peers for the SDK's tests: `herald serve` on 127.0.0.1 (the e2e fixtures' classes), a
reader for what Herald stored (admin API), and a small HTTP server written here that answers as a
faulty Herald would (503 with Retry-After, 413, a held request) and passes the rest on to the
real one."""

from __future__ import annotations

import gzip
import http.client
import json
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from herald_client import Client, Config

from tests.e2e.conftest import (
    ADMIN_KEY,
    WRITE_KEY,
    Herald,
    Server,
    Servers,
    auth,
    herald_env,
    poll_until,
)

__all__ = ["WRITE_KEY", "FaultServer", "HeraldReader", "Reply", "held_client"]

READ_TIMEOUT_S = 10.0
PAGE = 1_000
PROCESSING_POLLS = 200  # x 50 ms: how long the processor may take to apply a few events


@pytest.fixture(scope="session")
def herald_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One `herald serve` for the SDK's tests (each test uses its own customers)."""
    home = tmp_path_factory.mktemp("herald")
    database = home / "herald.db"
    env = herald_env(
        database, HERALD_BOOTSTRAP_API_KEY=WRITE_KEY, HERALD_BOOTSTRAP_ADMIN_KEY=ADMIN_KEY
    )
    logs = home / "logs"
    logs.mkdir()
    with Servers(logs) as servers:
        yield servers.start(Herald(home, database, env))


@dataclass(frozen=True)
class HeraldReader:
    """Reads back what a Herald stored, with the admin key."""

    url: str

    def _get(self, path: str, **params: str | int) -> Any:
        response = httpx.get(
            f"{self.url}{path}", params=params, headers=auth(ADMIN_KEY), timeout=READ_TIMEOUT_S
        )
        response.raise_for_status()
        return response.json()

    def events(self, correlation_value: str) -> list[dict[str, Any]]:
        """Every stored event of `correlation_value`, oldest first."""
        found: list[dict[str, Any]] = []
        params: dict[str, str | int] = {"correlationValue": correlation_value, "limit": PAGE}
        while True:
            page = self._get("/api/events", **params)
            found.extend(page["events"])
            if page["next_cursor"] is None:
                return found[::-1]
            params["cursor"] = page["next_cursor"]

    def customer(self, primary_key: str) -> dict[str, Any] | None:
        response = httpx.post(
            f"{self.url}/api/customers/read",
            json={"primary_key": primary_key},
            headers=auth(ADMIN_KEY),
            timeout=READ_TIMEOUT_S,
        )
        if response.status_code == 404:
            return None
        response.raise_for_status()
        customer: dict[str, Any] = response.json()
        return customer

    def customer_events(self, customer_id: str) -> list[dict[str, Any]]:
        page = self._get(f"/api/customers/{customer_id}/events", limit=PAGE)
        events: list[dict[str, Any]] = page["events"]
        return events

    def processed_customer(self, primary_key: str, events: int) -> dict[str, Any]:
        """The customer with `primary_key` once the processor applied `events` of its events."""
        found: dict[str, Any] = {}

        def applied() -> bool:
            customer = self.customer(primary_key)
            if customer is None:
                return False
            found.update(customer, events=self.customer_events(customer["id"]))
            return len(found["events"]) >= events

        poll_until(applied, what=f"{events} events of {primary_key}", attempts=PROCESSING_POLLS)
        return found


@dataclass(frozen=True)
class Reply:
    """How the fault server answers one request.

    `forward`: pass it on to the real Herald first. `status`: answer this instead of Herald's
    answer (None: relay Herald's, or answer 201 with counts when there is no Herald). `hold`:
    answer only once this event is set. `hang_up`: close the connection without an answer.
    `body`: the answer's body.
    """

    status: int | None = None
    forward: bool = True
    retry_after: str | None = None
    hold: threading.Event | None = None
    hang_up: bool = False
    body: bytes | None = None  # the answer's body instead of Herald's or the counts


@dataclass
class Received:
    """One request the fault server got: its events' uuids, and the status it answered."""

    uuids: list[str]
    status: int = 0


@dataclass
class FaultServer:
    """An HTTP server on 127.0.0.1 that answers the batch route by a script of Replies (then
    `default`), in front of an optional real Herald (`upstream`)."""

    upstream: str | None
    replies: list[Reply] = field(default_factory=list)
    default: Reply = field(default_factory=Reply)
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._http.daemon_threads = True
        self._http.block_on_close = False
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}"

    def next_reply(self) -> Reply:
        with self._lock:
            return self.replies.pop(0) if self.replies else self.default

    def answer(
        self, body: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes, dict[str, str]] | None:
        """What to send back for one batch request (None: nothing), recording it."""
        reply = self.next_reply()
        batch = json.loads(gzip.decompress(body))["batch"]
        received = Received([event["uuid"] for event in batch])
        self.received.append(received)
        if reply.hold is not None:
            reply.hold.wait()
        if reply.hang_up:
            return None
        status, answer = 201, _counts(len(batch))
        if reply.forward and self.upstream is not None:
            status, answer = _forward(self.upstream, body, headers)
        if reply.status is not None:
            status = reply.status
            answer = _json({"error": "injected", "message": f"the fault server's {status}"})
        if reply.body is not None:
            answer = reply.body
        received.status = status
        extra = {} if reply.retry_after is None else {"Retry-After": reply.retry_after}
        return status, answer, extra

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()


def _counts(events: int) -> bytes:
    return _json({"accepted": events, "duplicates": 0, "rejected": 0, "errors": []})


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value).encode()


def _forward(upstream: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    parts = urllib.parse.urlsplit(upstream)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        connection.request("POST", "/api/events/batch/", body, headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _handler(server: FaultServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as Herald (uvicorn) does

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            forwarded = {
                name: self.headers[name]
                for name in ("Authorization", "Content-Type", "Content-Encoding")
                if self.headers[name] is not None
            }
            reply = server.answer(body, forwarded)
            if reply is None:
                self.close_connection = True
                return
            status, answer, extra = reply
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **extra}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the tests read `received`."""

    return Handler


def held_client(
    server: FaultServer, config: Config, *, queue_path: Path | None = None
) -> tuple[Client, threading.Event, str]:
    """A client whose first event the server holds, so that the next ones wait in the queue;
    set the event to let the server answer."""
    release = threading.Event()
    server.replies = [Reply(hold=release)]
    client = Client(WRITE_KEY, host=server.url, config=config, queue_path=queue_path)
    first = client.track("c", "purchase", {"n": 0})
    poll_until(lambda: len(server.received) == 1, what="the first event reaches the server")
    return client, release, first


@pytest.fixture
def fault_server(herald_server: Server) -> Iterator[FaultServer]:
    """A fault server in front of the shared Herald; the test scripts its replies."""
    server = FaultServer(herald_server.url)
    yield server
    server.close()


@pytest.fixture
def recording_server() -> Iterator[FaultServer]:
    """A fault server with no Herald behind it: answers 201 with counts unless told otherwise."""
    server = FaultServer(None)
    yield server
    server.close()
