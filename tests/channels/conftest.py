"""Real peers for the channels: an HTTP receiver and an SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp
import h11
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from herald.channels.webhook import new_session

LOCALHOST = "127.0.0.1"


@dataclass(frozen=True)
class Reply:
    """One scripted answer of the receiver."""

    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


HANG: Final = "hang"  # read the request, never answer: the client has to time out
DROP: Final = "drop"  # read the request, close the connection without a word


@dataclass(frozen=True)
class ReceivedRequest:
    """What the receiver was sent, as it came over the wire."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]  # names lower-cased, in the order sent
    body: bytes

    def values(self, name: str) -> list[str]:
        """Every value sent for header `name` (case-insensitive)."""
        return [value for key, value in self.headers if key == name.lower()]

    def header(self, name: str) -> str:
        """The one value of header `name`; fails when it was sent zero or several times."""
        values = self.values(name)
        assert len(values) == 1, f"expected one {name} header, got {values!r}"
        return values[0]


@dataclass
class Receiver:
    """An HTTP/1.1 server that records every request and answers from a script (then 200)."""

    requests: list[ReceivedRequest] = field(default_factory=list)
    port: int = 0
    _script: deque[Reply | str] = field(default_factory=deque)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def url(self, path: str = "/hook") -> str:
        return f"http://{LOCALHOST}:{self.port}{path}"

    def answer(self, *replies: Reply | str) -> None:
        """Answer the next requests with `replies` in order (a Reply, HANG or DROP)."""
        self._script.extend(replies)

    def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        task = asyncio.create_task(self._serve(reader, writer))
        self._tasks.add(task)

    async def close_connections(self) -> None:
        for writer in self._writers:
            writer.close()
        await asyncio.gather(*self._tasks)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = h11.Connection(h11.SERVER)
        with contextlib.suppress(ConnectionError):
            while (request := await _read_request(connection, reader)) is not None:
                self.requests.append(request)
                reply = self._script.popleft() if self._script else Reply()
                if reply == HANG:
                    await reader.read()  # until the client gives up and hangs up
                if not isinstance(reply, Reply):
                    break
                writer.write(_response_bytes(connection, reply))
                await writer.drain()
                if connection.our_state is not h11.DONE:
                    break
                connection.start_next_cycle()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def _read_request(
    connection: h11.Connection, reader: asyncio.StreamReader
) -> ReceivedRequest | None:
    """The next whole request on `connection`; None when the client closed it."""
    start: h11.Request | None = None
    body = b""
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            connection.receive_data(await reader.read(65_536))
        elif isinstance(event, h11.Request):
            start = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage) and start is not None:
            headers = tuple((name.decode(), value.decode()) for name, value in start.headers)
            return ReceivedRequest(start.method.decode(), start.target.decode(), headers, body)
        else:
            return None


def _response_bytes(connection: h11.Connection, reply: Reply) -> bytes:
    headers = [*reply.headers, ("Content-Length", str(len(reply.body)))]
    response = h11.Response(status_code=reply.status, headers=headers)
    parts = [
        connection.send(response),
        connection.send(h11.Data(data=reply.body)) if reply.body else b"",
        connection.send(h11.EndOfMessage()),
    ]
    return b"".join(part or b"" for part in parts)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    server = await asyncio.start_server(receiver.accept, LOCALHOST, 0)
    receiver.port = server.sockets[0].getsockname()[1]
    try:
        yield receiver
    finally:
        server.close()
        await receiver.close_connections()
        await server.wait_closed()


@pytest.fixture
async def http_client() -> AsyncIterator[aiohttp.ClientSession]:
    async with new_session() as session:
        yield session


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections: bound (so no one takes it), not listening."""
    with socket.socket() as sock:
        sock.bind((LOCALHOST, 0))
        yield sock.getsockname()[1]


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A port that accepts connections and then never says anything (for timeouts)."""
    writers: list[asyncio.StreamWriter] = []

    def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)

    server = await asyncio.start_server(accept, LOCALHOST, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


@dataclass
class Mailbox:
    """An aiosmtpd handler that keeps every accepted envelope and answers as it is told."""

    envelopes: list[Envelope] = field(default_factory=list)
    rcpt_replies: dict[str, str] = field(default_factory=dict)  # address -> SMTP reply
    data_reply: str = "250 2.0.0 OK: queued"
    tls_versions: list[str | None] = field(default_factory=list)  # per accepted envelope
    logins: list[str] = field(default_factory=list)  # the usernames that logged in

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self.rcpt_replies.get(address, "250 2.1.5 OK")
        if reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_reply.startswith("250"):
            self.envelopes.append(envelope)
            self.tls_versions.append(_tls_version(server))
        return self.data_reply


def _tls_version(server: SMTP) -> str | None:
    """The TLS version of the connection (after STARTTLS or from the start), None in clear."""
    transport = server.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    return None if ssl_object is None else str(ssl_object.version())


@dataclass(frozen=True)
class SmtpServer:
    port: int
    mailbox: Mailbox


USERNAME = "herald"
PASSWORD = "correct horse battery staple"


def free_port() -> int:
    """A port that was free a moment ago (aiosmtpd's Controller needs a fixed port)."""
    with socket.socket() as sock:
        sock.bind((LOCALHOST, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def running_smtp(mailbox: Mailbox, **smtp_options: Any) -> Iterator[SmtpServer]:
    """aiosmtpd on 127.0.0.1 (in its own thread), stopped on exit; options go to aiosmtpd's SMTP."""
    controller = Controller(mailbox, hostname=LOCALHOST, port=free_port(), **smtp_options)
    controller.start()
    try:
        yield SmtpServer(controller.port, mailbox)
    finally:
        controller.stop()


@dataclass
class Authenticator:
    """Accepts USERNAME/PASSWORD; answers `refusal` (535 by default) to anything else."""

    mailbox: Mailbox
    refusal: str | None = None  # None: aiosmtpd's own 535

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: object
    ) -> AuthResult:
        valid = isinstance(data, LoginPassword) and (data.login, data.password) == (
            USERNAME.encode(),
            PASSWORD.encode(),
        )
        if valid:
            self.mailbox.logins.append(USERNAME)
        # handled=False: aiosmtpd then sends the refusal itself (the default leaves it unanswered).
        return AuthResult(success=valid, handled=False, message=None if valid else self.refusal)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with running_smtp(Mailbox()) as server:
        yield server


@pytest.fixture
def smtp_with_login() -> Iterator[tuple[SmtpServer, Authenticator]]:
    mailbox = Mailbox()
    authenticator = Authenticator(mailbox)
    with running_smtp(mailbox, authenticator=authenticator, auth_require_tls=False) as server:
        yield server, authenticator
