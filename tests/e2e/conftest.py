"""Real Herald processes: `herald serve` on a free 127.0.0.1 port and the `herald` CLI, both on
one SQLite file in tmp_path. Every process started here is killed at teardown."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

WRITE_KEY = "hk_w_e2e-bootstrap-write-key"
ADMIN_KEY = "hk_a_e2e-bootstrap-admin-key"
CLI_TIMEOUT_S = 30.0  # a CLI command that runs longer than this is hung, not slow
READY_ATTEMPTS = 400  # x POLL_INTERVAL_S: how long a server may take to answer /readyz
POLL_INTERVAL_S = 0.05
EXIT_TIMEOUT_S = 10.0


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Api-Key {key}"}


def free_port() -> int:
    """A port nobody listens on right now (the kernel picks it for a socket bound to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def poll_until(check: Callable[[], bool], *, what: str, attempts: int = 100) -> None:
    """Check an observable condition up to `attempts` times, POLL_INTERVAL_S apart."""
    for _ in range(attempts):
        if check():
            return
        time.sleep(POLL_INTERVAL_S)
    raise AssertionError(f"gave up waiting: {what}")


def make_event(customer: str, **fields: Any) -> dict[str, Any]:
    """A valid Laudspeaker event with a fresh uuid; `fields` override or add wire fields."""
    return {
        "event": "purchase",
        "source": "mobile",
        "correlationKey": "_id",
        "correlationValue": customer,
        "uuid": str(uuid.uuid4()),
        "timestamp": "2024-03-15T02:31:05.295Z",
        "payload": {"cart": True},
        **fields,
    }


def interleave(streams: Sequence[Sequence[Any]], rng: random.Random) -> list[Any]:
    """The items of all `streams` shuffled together, each stream's items in their order."""
    turns = [number for number, stream in enumerate(streams) for _ in stream]
    rng.shuffle(turns)
    cursors = [0] * len(streams)
    mixed = []
    for number in turns:
        mixed.append(streams[number][cursors[number]])
        cursors[number] += 1
    return mixed


@dataclass(frozen=True)
class Herald:
    """The environment a Herald process runs in: its database file, settings and directory."""

    home: Path
    database: Path
    env: dict[str, str]

    def with_settings(self, **settings: str) -> Herald:
        """The same Herald with more HERALD_* variables, e.g. `HERALD_KEY_CACHE_TTL_S="0.5"`."""
        return Herald(self.home, self.database, {**self.env, **settings})

    def cli(self, *args: str, timeout_s: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        """Run `herald ARGS` to completion; raises TimeoutExpired (after killing it) if it hangs."""
        return subprocess.run(
            [sys.executable, "-m", "herald", *args],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )


def herald_env(database: Path, **settings: str) -> dict[str, str]:
    """This process's environment without any HERALD_* variable, then the given settings."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("HERALD_")}
    env.update(
        PYTHONUNBUFFERED="1",
        HERALD_DATABASE_URL=f"sqlite:///{database}",
        HERALD_LOG_LEVEL="WARNING",
        **settings,
    )
    return env


@pytest.fixture
def herald(tmp_path: Path) -> Herald:
    """A Herald on `tmp_path/herald.db` whose first start registers WRITE_KEY and ADMIN_KEY."""
    database = tmp_path / "herald.db"
    env = herald_env(
        database, HERALD_BOOTSTRAP_API_KEY=WRITE_KEY, HERALD_BOOTSTRAP_ADMIN_KEY=ADMIN_KEY
    )
    return Herald(tmp_path, database, env)


@dataclass
class Server:
    """One `herald serve` process; its stdout and stderr go to files, so reading never blocks."""

    process: subprocess.Popen[bytes]
    host: str
    port: int
    stdout_path: Path
    stderr_path: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def is_ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    def wait_ready(self) -> None:
        for _ in range(READY_ATTEMPTS):
            if self.process.poll() is not None:
                raise AssertionError(
                    f"herald serve exited with {self.process.returncode}:\n{self.stderr()}"
                )
            if self.is_ready():
                return
            time.sleep(POLL_INTERVAL_S)
        raise AssertionError(f"herald serve never answered GET /readyz:\n{self.stderr()}")

    def kill(self) -> int:
        """SIGKILL the server process (a crash: no shutdown code runs) and reap it."""
        self.process.send_signal(signal.SIGKILL)
        return self.process.wait(timeout=EXIT_TIMEOUT_S)

    def interrupt(self) -> int:
        """Press Ctrl-C: SIGINT to the server's whole process group, as a terminal does."""
        os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(timeout=EXIT_TIMEOUT_S)

    def stop(self) -> None:
        """SIGTERM the server if it still runs (SIGKILL if it lingers), then SIGKILL whatever
        is left of its process group (a helper process orphaned by a crash, say)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=EXIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)


@dataclass
class Servers:
    """Starts `herald serve` processes and remembers them, so teardown can stop every one."""

    logs: Path
    started: list[Server] = field(default_factory=list)

    def start(
        self,
        herald: Herald,
        *,
        port: int | None = None,
        args: Sequence[str] | None = None,
        wait: bool = True,
    ) -> Server:
        """Start `herald serve ARGS` listening on 127.0.0.1:PORT, and wait until it is ready.

        PORT defaults to a free port; ARGS default to `--port PORT`.
        """
        port = free_port() if port is None else port
        args = ("--port", str(port)) if args is None else args
        number = len(self.started)
        stdout_path = self.logs / f"serve-{number}.out"
        stderr_path = self.logs / f"serve-{number}.err"
        with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "herald", "serve", *args],
                env=herald.env,
                cwd=herald.home,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,  # its own process group, which stop() can clear
            )
        server = Server(process, "127.0.0.1", port, stdout_path, stderr_path)
        self.started.append(server)
        if wait:
            server.wait_ready()
        return server

    def __enter__(self) -> Servers:
        return self

    def __exit__(self, *exc_info: object) -> None:
        with contextlib.ExitStack() as stops:  # every stop runs, even if one of them fails
            for server in self.started:
                stops.callback(server.stop)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    logs = tmp_path / "logs"
    logs.mkdir()
    with Servers(logs) as servers:
        yield servers


@pytest.fixture
def server(herald: Herald, servers: Servers) -> Server:
    """A running server on `herald`'s database, with the bootstrap keys registered."""
    return servers.start(herald)
