"""The log writer in a process of its own, so that committing never waits for the API's GIL.

The API process decodes and checks requests; this process deduplicates and commits them. They
talk over a socket pair with length-prefixed msgpack frames. While one group is being committed
(and fsynced), the next requests pile up in the socket: reading everything available at once is
the group commit. When the API process dies, the socket reads end-of-file and this process commits
what it has read, then exits; a retried batch is then reported as duplicates.

    python -m herald.store.writer_main --fd N --path herald.db --synchronous full
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec

from herald.errors import Overloaded, ServiceError, StoreUnavailable
from herald.store.base import AppendRequest, AppendResult
from herald.store.groupcommit import Observer
from herald.store.logwriter import LogWriter

logger = logging.getLogger(__name__)

_LENGTH = struct.Struct("<I")
READ_CHUNK = 1 << 20
START_TIMEOUT_S = 120.0  # recovery of a large id index can take a while
STOP_TIMEOUT_S = 30.0


class Submit(msgspec.Struct, array_like=True, tag=1):
    id: int
    request: AppendRequest


class Ready(msgspec.Struct, array_like=True, tag=2):
    pass


class Failed(msgspec.Struct, array_like=True, tag=3):
    message: str


class Outcome(msgspec.Struct, array_like=True):
    id: int
    result: AppendResult | None
    error: str | None = None


class Committed(msgspec.Struct, array_like=True, tag=4):
    outcomes: list[Outcome]
    events: int
    seconds: float


Frame = Submit | Ready | Failed | Committed
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Frame).decode


def frame(message: Frame) -> bytes:
    body = _encode(message)
    return _LENGTH.pack(len(body)) + body


class ProcessCommitter:
    """The API side: sends requests to the writer process and awaits their results."""

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str,
        max_pending: int,
        max_group: int,
        observe: Observer | None = None,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self._path = path
        self._on_lost = on_lost
        self._synchronous = synchronous
        self._max_pending = max_pending
        self._max_group = max_group
        self._observe = observe
        self._pending = 0
        self._outbox: list[bytes] = []
        self._closing = False
        self._waiting: dict[int, tuple[asyncio.Future[AppendResult], int]] = {}
        self._ids = itertools.count(1)
        self._broken: str | None = "the log writer has not started"
        self._process: subprocess.Popen[bytes] | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        parent, child = socket.socketpair()
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "herald.store.writer_main",
                "--fd",
                str(child.fileno()),
                "--path",
                str(self._path),
                "--synchronous",
                self._synchronous,
                "--max-group",
                str(self._max_group),
            ],
            pass_fds=(child.fileno(),),
        )
        child.close()
        reader, self._writer = await asyncio.open_connection(sock=parent)
        try:
            first = await asyncio.wait_for(_read_frame(reader), START_TIMEOUT_S)
        except (asyncio.IncompleteReadError, TimeoutError):
            first = Failed("the log writer process stopped while starting; see its log")
        if isinstance(first, Failed):
            await self.close()
            raise StoreUnavailable(first.message)
        self._broken = None
        self._reader_task = asyncio.create_task(self._read_results(reader))

    def pending(self) -> int:
        return self._pending

    async def submit(self, request: AppendRequest) -> AppendResult:
        if self._broken is not None or self._writer is None:
            raise StoreUnavailable(f"The event log cannot be written: {self._broken}.")
        size = len(request.accepted) + len(request.rejected)
        if self._pending and self._pending + size > self._max_pending:
            raise Overloaded(
                f"{self._pending:,} events are waiting to be committed; retry in a moment.",
                retry_after_s=1,
            )
        request_id = next(self._ids)
        future: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = (future, size)
        self._pending += size
        if not self._outbox:  # one socket write per event-loop pass, however many requests
            asyncio.get_running_loop().call_soon(self._flush)
        self._outbox.append(frame(Submit(request_id, request)))
        return await future

    def _flush(self) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(b"".join(self._outbox))
        self._outbox.clear()

    async def _read_results(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                message = await _read_frame(reader)
                if isinstance(message, Committed):
                    self._settle(message)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._fail_all("the log writer process stopped")
            if not self._closing:
                logger.error("The log writer process stopped; events can no longer be committed")
                if self._on_lost is not None:
                    self._on_lost()

    def _settle(self, committed: Committed) -> None:
        if self._observe is not None:
            self._observe(committed.events, committed.seconds)
        for outcome in committed.outcomes:
            future, size = self._waiting.pop(outcome.id)
            self._pending -= size
            if future.done():  # the client went away; its events are committed all the same
                continue
            if outcome.result is not None:
                future.set_result(outcome.result)
            else:
                future.set_exception(StoreUnavailable(outcome.error or "commit failed"))

    def _fail_all(self, reason: str) -> None:
        self._broken = reason
        for future, _ in self._waiting.values():
            if not future.done():
                future.set_exception(
                    StoreUnavailable(f"The event log cannot be written: {reason}.")
                )
        self._waiting.clear()
        self._pending = 0

    def healthy(self) -> bool:
        return self._broken is None

    async def close(self) -> None:
        """Let the writer commit what it has, then wait for it to exit."""
        self._closing = True
        if self._writer is not None and not self._writer.is_closing():
            self._flush()
            with contextlib.suppress(ConnectionError):
                self._writer.write_eof()  # the writer commits what it read, answers, and exits
        if self._reader_task is not None:
            await self._reader_task  # every answer read, up to the writer's end-of-file
        if self._process is not None:
            try:
                await asyncio.to_thread(self._process.wait, STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()


async def _read_frame(reader: asyncio.StreamReader) -> Frame:
    (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    message: Frame = _decode(await reader.readexactly(length))
    return message


# -- the writer process ----------------------------------------------------------------------


def serve(sock: socket.socket, log: LogWriter, max_group: int) -> None:
    """Commit whatever requests have arrived, answer, repeat; return at end-of-file."""
    buffer = bytearray()
    while True:
        chunk = sock.recv(READ_CHUNK)
        ended = not chunk
        buffer += chunk
        ended = ended or _read_available(sock, buffer)
        submits = list(_take_frames(buffer))
        for group in _groups(submits, max_group):
            sock.sendall(frame(_commit(log, group)))
        if ended:
            return


def _read_available(sock: socket.socket, buffer: bytearray) -> bool:
    """Append what can be read without waiting; True at end-of-file."""
    sock.setblocking(False)
    try:
        while True:
            chunk = sock.recv(READ_CHUNK)
            if not chunk:
                return True
            buffer += chunk
    except BlockingIOError:
        return False
    finally:
        sock.setblocking(True)


def _take_frames(buffer: bytearray) -> Iterator[Submit]:
    offset = 0
    while len(buffer) - offset >= _LENGTH.size:
        (length,) = _LENGTH.unpack_from(buffer, offset)
        end = offset + _LENGTH.size + length
        if end > len(buffer):
            break
        message = _decode(bytes(buffer[offset + _LENGTH.size : end]))
        offset = end
        if isinstance(message, Submit):
            yield message
    del buffer[:offset]


def _groups(submits: list[Submit], max_group: int) -> Iterator[list[Submit]]:
    group: list[Submit] = []
    size = 0
    for submit in submits:
        events = len(submit.request.accepted) + len(submit.request.rejected)
        if group and size + events > max_group:
            yield group
            group, size = [], 0
        group.append(submit)
        size += events
    if group:
        yield group


def _commit(log: LogWriter, group: list[Submit]) -> Committed:
    started = time.perf_counter()
    events = sum(len(s.request.accepted) + len(s.request.rejected) for s in group)
    try:
        results = log.write_group([submit.request for submit in group])
    except ServiceError as exc:
        outcomes = [Outcome(submit.id, None, exc.message) for submit in group]
    else:
        outcomes = [
            Outcome(submit.id, result) for submit, result in zip(group, results, strict=True)
        ]
    return Committed(outcomes, events, time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Herald's log writer (started by the store).")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--path", type=Path, required=True)
    parser.add_argument("--synchronous", default="full")
    parser.add_argument("--max-group", type=int, default=20_000)
    args = parser.parse_args(argv)
    # Ctrl-C reaches the whole process group: the API process closes the socket, and this
    # process finishes its commit and exits at end-of-file instead of dying mid-commit.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=args.fd)
    log = LogWriter(args.path, synchronous=args.synchronous)
    try:
        log.open()
    except ServiceError as exc:
        sock.sendall(frame(Failed(exc.message)))
        return 1
    try:
        sock.sendall(frame(Ready()))
        serve(sock, log, args.max_group)
    finally:
        log.close()
    return 0
