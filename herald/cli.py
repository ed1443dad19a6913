"""The `herald` command: parse arguments, load Settings, configure logging, start one thing."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click
import msgspec
from rich.console import Console
from rich.table import Table

from herald import __version__
from herald.cli_customers import customers
from herald.cli_journeys import journeys, messages
from herald.core.keys import KeyKind, format_key
from herald.core.schema import AttributeType, CustomerSchema
from herald.errors import ConfigError, ServiceError
from herald.settings import Settings
from herald.store import open_store, shown_url
from herald.store.base import Store

P = ParamSpec("P")
R = TypeVar("R")

logger = logging.getLogger("herald")
TAIL_POLL_S = 0.5
PROCESSOR_RESTART_S = 1.0  # pause before restarting a processor that died
# Under overload the API (acknowledging events) gets the CPU first; processing catches up after.
EMBEDDED_PROCESSOR_NICE = 5
GC_THRESHOLD = 50_000  # allocations between young-generation collections (default 700)


def _settings(**overrides: object) -> Settings:
    return Settings.from_env(os.environ, **overrides)


def _friendly(command: Callable[P, R]) -> Callable[P, R]:
    """Report Herald's errors as one line on stderr, without a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except ServiceError as exc:
            click.echo(f"error: {exc.message}", err=True)
            sys.exit(1)

    return wrapper


def _with_store(work: Callable[[Store], Awaitable[R]]) -> R:
    async def run() -> R:
        store = open_store(_settings(), writer=False)
        await store.start()
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the exception if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def _console() -> Console:
    """A console for tables: the terminal's width, or wide enough when piped."""
    console = Console()
    return console if console.is_terminal else Console(width=200)


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="herald")
def main() -> None:
    """Herald: customer-event ingestion (Laudspeaker-compatible), identity and journeys.

    Settings come from HERALD_* environment variables; the database is
    HERALD_DATABASE_URL (default sqlite:///herald.db).
    """


@main.command()
@click.option("--host", default=None, help="Interface to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (default 8000).")
@_friendly
def serve(host: str | None, port: int | None) -> None:
    """Run Herald with all roles in one process (the embedded default)."""
    settings = _settings(host=host, port=port)
    configure_logging(settings)
    _run_api(settings, embedded=True)


@main.command()
@click.option("--host", default=None, help="Interface to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (default 8000).")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="API processes sharing the port (more than one needs PostgreSQL).",
)
@click.option("--worker-fd", type=int, default=None, hidden=True, help="A listening socket.")
@click.option("--stop-on-stdin-eof", is_flag=True, hidden=True, help="Stop when stdin closes.")
@_friendly
def api(
    host: str | None, port: int | None, workers: int, worker_fd: int | None, stop_on_stdin_eof: bool
) -> None:
    """Run the API role alone: ingestion and the admin API, no processor or delivery.

    Run `herald processor` and `herald delivery` beside it (as many of each as you like, on this
    machine or others sharing the PostgreSQL database).
    """
    settings = _settings(host=host, port=port)
    configure_logging(settings)
    if workers > 1 and worker_fd is None:
        if settings.database_url.startswith("sqlite://"):
            raise ConfigError(
                "Several API workers need PostgreSQL (a SQLite file has one writer): set "
                "HERALD_DATABASE_URL=postgresql://... or run --workers 1."
            )
        _run_api_workers(settings, workers)
        return
    _run_api(settings, embedded=False, fd=worker_fd, stop_on_stdin_eof=stop_on_stdin_eof)


def _run_api(
    settings: Settings, *, embedded: bool, fd: int | None = None, stop_on_stdin_eof: bool = False
) -> None:
    """Serve the API until a signal; `embedded` also runs the processor and delivery children.

    With `fd`, serve on that listening socket (one of `herald api --workers N`'s processes).
    """
    import uvicorn
    import uvloop

    from herald.api.app import create_app
    from herald.api.metrics import Metrics
    from herald.bootstrap import bootstrap

    metrics = Metrics()
    lost: list[bool] = []
    server: uvicorn.Server | None = None

    def writer_lost() -> None:
        lost.append(True)
        if server is not None:
            server.should_exit = True  # a supervisor restarts Herald; nothing acknowledged is lost

    store = open_store(
        settings, writer_process=True, observe=metrics.observe_commit, on_writer_lost=writer_lost
    )
    app = create_app(settings, store, manage_store=False, metrics=metrics)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=settings.access_log,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    if fd is None:
        _check_port_free(settings)
    if stop_on_stdin_eof:
        threading.Thread(
            target=_stop_at_eof, args=(lambda: setattr(server, "should_exit", True),), daemon=True
        ).start()

    async def run() -> None:
        await store.start()
        stop = asyncio.Event()
        supervisors: list[asyncio.Task[None]] = []
        try:
            if fd is None:  # a worker of `api --workers N`: its parent did this once
                created = await bootstrap(store, settings)
                _print_welcome(settings, created is not None)
            if embedded:
                supervisors.extend(_embedded_roles(settings, stop, store))
            _tune_gc()
            # socket(fileno=) finds the family itself; uvicorn's fd= takes every descriptor for
            # a Unix socket, and TCP connections then lose TCP_NODELAY (40 ms per answer).
            await server.serve(sockets=None if fd is None else [socket.socket(fileno=fd)])
        finally:
            stop.set()
            await _finish(_shut_down(supervisors, store))

    try:
        uvloop.run(run())
    except KeyboardInterrupt:
        pass  # Ctrl-C: uvicorn shut down gracefully, then re-raised the signal for us
    if lost:
        click.echo("error: the log writer process stopped; restart Herald.", err=True)
        sys.exit(1)


def _embedded_roles(
    settings: Settings, stop: asyncio.Event, store: Store
) -> list[asyncio.Task[None]]:
    """The processor and delivery children of `serve`, unless settings leave them out."""
    roles = []
    if settings.embedded_processor:
        roles.append(asyncio.create_task(supervise_processor(stop, store)))
    if settings.embedded_delivery:
        roles.append(asyncio.create_task(supervise_delivery(stop, store)))
    return roles


def _run_api_workers(settings: Settings, workers: int) -> None:
    """Bind the port once and run `workers` API processes on it, restarting any that dies."""
    from herald.bootstrap import bootstrap

    listener = _listen(settings)

    async def run() -> None:
        store = open_store(settings, writer=False)
        await store.start()
        try:
            created = await bootstrap(store, settings)
        finally:
            await store.close()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, stop.set)
        fd = listener.fileno()
        children = [
            supervise_child(stop, ["api", f"--worker-fd={fd}"], pass_fds=(fd,))
            for _ in range(workers)
        ]
        _print_welcome(settings, created is not None)
        logger.info("%d API workers on %s:%d", workers, settings.host, settings.port)
        await asyncio.gather(*children)

    try:
        asyncio.run(run())
    finally:
        listener.close()


def _listen(settings: Settings) -> socket.socket:
    """A listening socket on the configured host and port, to hand to worker processes."""
    _check_port_free(settings)
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((settings.host, settings.port))
    listener.listen(2048)
    listener.set_inheritable(True)
    return listener


async def _shut_down(supervisors: list[asyncio.Task[None]], store: Store) -> None:
    for supervisor in supervisors:
        await supervisor
    await store.close()


async def _finish(work: Awaitable[None]) -> None:
    """Run `work` to the end even if this task is cancelled meanwhile.

    After a graceful shutdown uvicorn re-raises Ctrl-C, and asyncio answers it by cancelling the
    main task: the store must still close (the writer commits what it holds), or the writer's
    pipe breaks and looks like a crash.
    """
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
    task.result()
    if cancelled:
        raise asyncio.CancelledError


async def supervise_processor(stop: asyncio.Event, store: Store) -> None:
    """Run `herald processor` as a child until `stop`; restart it if it dies."""
    from herald.processor.loop import processor_name_prefix

    async def release(pid: int) -> None:  # its leases would hold its partitions until they ran out
        await store.release_processor(processor_name_prefix(pid))

    await supervise_child(
        stop, ["processor", f"--nice={EMBEDDED_PROCESSOR_NICE}"], on_death=release
    )


async def supervise_delivery(stop: asyncio.Event, store: Store) -> None:
    """Run `herald delivery` as a child until `stop`; restart it if it dies."""
    from herald.processor.loop import processor_name_prefix

    async def release(pid: int) -> None:  # its claims would hold its messages until they ran out
        await store.release_deliveries(processor_name_prefix(pid))

    await supervise_child(stop, ["delivery"], on_death=release)


async def supervise_child(
    stop: asyncio.Event,
    args: list[str],
    *,
    on_death: Callable[[int], Awaitable[None]] | None = None,
    pass_fds: tuple[int, ...] = (),
) -> None:
    """Run `herald ARGS` as a child until `stop`; restart it a second after it dies.

    The child stops when its stdin closes, so it never outlives this process (even kill -9).
    """
    while not stop.is_set():
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "herald",
            *args,
            "--stop-on-stdin-eof",
            stdin=asyncio.subprocess.PIPE,
            start_new_session=True,  # Ctrl-C is serve's to handle; the child follows its stdin
            pass_fds=pass_fds,
        )
        exited = asyncio.create_task(child.wait())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            if child.returncode is None:
                child.terminate()
            await exited
            return
        stopping.cancel()
        logger.error(
            "The %s process exited with status %s; restarting it in %s s",
            args[0],
            child.returncode,
            PROCESSOR_RESTART_S,
        )
        if on_death is not None:
            try:
                await on_death(child.pid)
            except ServiceError as exc:
                logger.warning("Could not clean up after the %s process: %s", args[0], exc.message)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PROCESSOR_RESTART_S)


@main.command()
@click.option(
    "--stop-on-stdin-eof",
    is_flag=True,
    hidden=True,
    help="Stop when stdin closes (how serve ties the processor's life to its own).",
)
@click.option(
    "--nice",
    type=click.IntRange(0, 19),
    default=0,
    show_default=True,
    help="Lower this process's CPU priority (serve uses 5: acknowledging events comes first).",
)
@click.option("--name", default=None, help="This processor's name (default: host:pid:random).")
@_friendly
def processor(stop_on_stdin_eof: bool, nice: int, name: str | None) -> None:
    """Run the processor role alone: attribute events to customers, partition by partition.

    Run as many as you like on the same database: they share the partitions through leases
    (HERALD_PROCESSOR_LEASE_S). Set HERALD_EMBEDDED_PROCESSOR=0 for serve to leave it to them.
    """
    from herald.processor.loop import Processor
    from herald.store import database_of

    settings = _settings()
    configure_logging(settings)
    if nice:
        os.nice(nice)
    stop = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stop.set())
    if stop_on_stdin_eof:
        threading.Thread(target=_stop_at_eof, args=(stop.set,), daemon=True).start()
    worker = Processor(
        database_of(settings.database_url),
        synchronous=settings.sqlite_synchronous,
        lease_s=settings.processor_lease_s,
        name=name,
    )
    worker.open()
    logger.info("Processor %s started on %s", worker.name, shown_url(settings.database_url))
    _tune_gc()
    try:
        worker.run(stop)
    finally:
        worker.close()
        logger.info("Processor %s stopped after %d events", worker.name, worker.processed)


@main.command()
@click.option(
    "--stop-on-stdin-eof",
    is_flag=True,
    hidden=True,
    help="Stop when stdin closes (how serve ties the child's life to its own).",
)
@click.option(
    "--name",
    default=None,
    help="This worker's name, unique among the running ones (default: host:pid:random). "
    "Started again under the same name after a crash, it sends at once what it was sending "
    "(otherwise that waits until the claims run out, after 2 minutes).",
)
@_friendly
def delivery(stop_on_stdin_eof: bool, name: str | None) -> None:
    """Run the delivery role alone: send queued webhooks and emails, with retries.

    Email needs HERALD_SMTP_HOST (and _PORT, _SECURITY, _USERNAME, _PASSWORD, _FROM). Set
    HERALD_EMBEDDED_DELIVERY=0 for serve to leave delivery to processes like this one.
    """
    import uvloop

    from herald.channels.webhook import WebhookChannel, new_session
    from herald.delivery import DeliveryWorker
    from herald.store import database_of

    settings = _settings()
    configure_logging(settings)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, stop.set)
        if stop_on_stdin_eof:  # a daemon thread: nothing waits for it at shutdown
            threading.Thread(
                target=_stop_at_eof,
                args=(lambda: loop.call_soon_threadsafe(stop.set),),
                daemon=True,
            ).start()
        async with new_session() as session:
            worker = DeliveryWorker(
                database_of(settings.database_url),
                webhooks=WebhookChannel(session),
                email=_email_channel(settings),
                name=name,
            )
            worker.open()
            logger.info("Delivery %s started on %s", worker.name, shown_url(settings.database_url))
            try:
                await worker.run(stop)
            finally:
                worker.close()
                logger.info("Delivery %s stopped after %d messages sent", worker.name, worker.sent)

    uvloop.run(run())


def _email_channel(settings: Settings) -> Any:
    from herald.channels.email import EmailChannel, Security, SmtpSettings

    if settings.smtp_host is None:
        return None
    return EmailChannel(
        SmtpSettings(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_from,
            security=Security(settings.smtp_security),
            username=settings.smtp_username,
            password=settings.smtp_password,
        )
    )


def _stop_at_eof(stop: Callable[[], object]) -> None:
    # os.read, not sys.stdin: a daemon thread blocked in a buffered read holds its lock, and
    # the interpreter then fails to shut down.
    while os.read(sys.stdin.fileno(), 4096):
        pass
    stop()


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@_friendly
def status(as_json: bool) -> None:
    """Show processing progress: per partition, its owner and how far behind it is."""

    async def work(store: Store) -> list[Any]:
        return await store.processing_status()

    partitions = _with_store(work)
    if as_json:
        click.echo(msgspec.json.encode(partitions).decode())
        return
    table = Table("partition", "owner", "checkpoint", "processed", "behind (events)", "behind (s)")
    for item in partitions:
        table.add_row(
            str(item.partition),
            item.owner or "-",
            str(item.checkpoint_seq),
            f"{item.processed:,}",
            f"{item.behind_events:,}",
            f"{item.behind_s:.1f}",
        )
    console = _console()
    console.print(table)
    behind = sum(item.behind_events for item in partitions)
    lag = max((item.behind_s for item in partitions), default=0.0)
    owners = {item.owner for item in partitions if item.owner}
    console.print(
        f"{sum(item.processed for item in partitions):,} events processed; {behind:,} behind "
        f"(oldest {lag:.1f} s); {len(owners)} processor(s) live."
    )


def _check_port_free(settings: Settings) -> None:
    """Fail before touching the database when the port is taken (uvicorn would fail later)."""
    with socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((settings.host, settings.port))
        except OSError as exc:
            raise ConfigError(
                f"Cannot listen on {settings.host}:{settings.port} ({exc.strerror}); "
                "choose another with --port or HERALD_PORT."
            ) from None


def _herald_command() -> str:
    """How the user can run `herald`: the bare name when it is on PATH, else its full path."""
    here = Path(sys.executable).with_name("herald")
    if shutil.which("herald") == str(here) or not here.exists():
        return "herald"
    return str(here)


def _tune_gc() -> None:
    """Requests make short-lived objects by the thousand, nearly all freed by reference counting;
    the default threshold (700) runs the cycle collector every few requests for nothing. Objects
    alive at start-up are frozen out of its scans."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 20, 20)


def _print_welcome(settings: Settings, first_start: bool) -> None:
    lines = [
        f"Herald {__version__} on http://{settings.host}:{settings.port} "
        f"(store: {shown_url(settings.database_url)})",
        f"Get an API key:  {_herald_command()} keys create --workspace default --kind write",
        "Send events:     POST /api/events/batch/ with 'Authorization: Api-Key <key>'",
        "API reference:   /docs and /openapi.json",
    ]
    if first_start:
        lines.insert(1, "First start: created workspace 'default'.")
    click.echo("\n".join(lines), err=True)


@main.command()
@_friendly
def migrate() -> None:
    """Apply database migrations (serve also applies them at start)."""
    _with_store(lambda store: asyncio.sleep(0))
    click.echo("Migrations applied.", err=True)


@main.group()
def workspaces() -> None:
    """Create and list workspaces."""


@workspaces.command("create")
@click.argument("name")
@_friendly
def workspaces_create(name: str) -> None:
    """Create workspace NAME (its customer primary key is `email`)."""
    workspace = _with_store(lambda store: store.create_workspace(name))
    click.echo(f"Created workspace {workspace.name!r} (id {workspace.id}).", err=True)


@workspaces.command("list")
@_friendly
def workspaces_list() -> None:
    """List workspaces."""
    found = _with_store(lambda store: store.list_workspaces())
    table = Table("id", "name", "created", "primary key")
    for workspace in found:
        table.add_row(
            str(workspace.id),
            workspace.name,
            workspace.created_at.isoformat(timespec="seconds"),
            workspace.schema.primary_key or "-",
        )
    _console().print(table)


@main.group()
def keys() -> None:
    """Create, list and revoke API keys (stored hashed; shown once)."""


@keys.command("create")
@click.option("--workspace", "workspace_name", required=True, help="Workspace name.")
@click.option(
    "--kind",
    type=click.Choice([kind.value for kind in KeyKind]),
    default="write",
    show_default=True,
    help="write: ingestion only (safe in apps); admin: the management API.",
)
@_friendly
def keys_create(workspace_name: str, kind: str) -> None:
    """Create a key and print it alone on stdout (it is never shown again)."""
    key_kind = KeyKind(kind)
    key = format_key(key_kind, secrets.token_urlsafe(24))

    async def create(store: Store) -> None:
        workspace = await store.get_workspace(workspace_name)
        await store.create_key(workspace.id, key_kind, key)

    _with_store(create)
    click.echo(key)
    article = "an" if kind == "admin" else "a"
    click.echo(
        f"Created {article} {kind} key for workspace {workspace_name!r}; store it now.", err=True
    )


@keys.command("list")
@click.option("--workspace", "workspace_name", required=True, help="Workspace name.")
@_friendly
def keys_list(workspace_name: str) -> None:
    """List keys: prefix, kind, created, last used (never the key itself)."""

    async def select(store: Store) -> list[Any]:
        workspace = await store.get_workspace(workspace_name)
        return await store.list_keys(workspace.id)

    table = Table("prefix", "kind", "created", "last used", "revoked")
    for key in _with_store(select):
        table.add_row(
            key.prefix + "…",
            key.kind.value,
            key.created_at.isoformat(timespec="seconds"),
            key.last_used_at.isoformat(timespec="seconds") if key.last_used_at else "never",
            key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else "",
        )
    _console().print(table)


@keys.command("revoke")
@click.option("--workspace", "workspace_name", required=True, help="Workspace name.")
@click.argument("prefix")
@_friendly
def keys_revoke(workspace_name: str, prefix: str) -> None:
    """Revoke the key starting with PREFIX (it stops working within seconds)."""

    async def revoke(store: Store) -> Any:
        workspace = await store.get_workspace(workspace_name)
        return await store.revoke_key(workspace.id, prefix)

    key = _with_store(revoke)
    click.echo(f"Revoked {key.kind.value} key {key.prefix}….", err=True)


@main.group()
def schema() -> None:
    """Show and edit a workspace's customer schema (attribute types, primary key)."""


@schema.command("show")
@click.option("--workspace", "workspace_name", required=True, help="Workspace name.")
@_friendly
def schema_show(workspace_name: str) -> None:
    """Print the schema as JSON: the primary key and each attribute's type."""
    workspace = _with_store(lambda store: store.get_workspace(workspace_name))
    click.echo(msgspec.json.encode(workspace.schema).decode())


@schema.command("add-attribute")
@click.option("--workspace", "workspace_name", required=True, help="Workspace name.")
@click.argument("name")
@click.argument("kind", metavar="TYPE", type=click.Choice([t.value for t in AttributeType]))
@_friendly
def schema_add_attribute(workspace_name: str, name: str, kind: str) -> None:
    """Declare attribute NAME of type TYPE (or change its type)."""
    _change_schema(workspace_name, lambda schema: schema.with_attribute(name, AttributeType(kind)))
    click.echo(f"Attribute {name!r} is declared as {kind}.", err=True)


@schema.command("set-primary-key")
@click.option("--workspace", "workspace_name", required=True, help="Workspace name.")
@click.argument("name")
@_friendly
def schema_set_primary_key(workspace_name: str, name: str) -> None:
    """Make attribute NAME (declared string, email or number) the primary key."""
    _change_schema(
        workspace_name, lambda schema: schema.with_primary_key(name), unique_attribute=name
    )
    click.echo(f"The primary key is now {name!r}.", err=True)


def _change_schema(
    workspace_name: str,
    change: Callable[[CustomerSchema], CustomerSchema],
    *,
    unique_attribute: str | None = None,
) -> None:
    async def apply(store: Store) -> None:
        workspace = await store.get_workspace(workspace_name)
        change(workspace.schema)  # a change the schema refuses is reported before anything else
        if unique_attribute is not None and unique_attribute != workspace.schema.primary_key:
            await store.check_unique(workspace.id, unique_attribute)
        await store.change_schema(workspace.id, change)

    _with_store(apply)


main.add_command(customers)
main.add_command(journeys)
main.add_command(messages)


@main.group()
def events() -> None:
    """Look at the event log."""


@events.command("tail")
@click.option("--from-start", is_flag=True, help="Print the whole log first.")
@click.option(
    "--count", type=click.IntRange(min=1), default=None, help="Stop after this many events."
)
@click.option("--workspace", "workspace_name", default=None, help="Only this workspace's events.")
@_friendly
def events_tail(from_start: bool, count: int | None, workspace_name: str | None) -> None:
    """Print events as they are committed, one JSON line each (Ctrl-C to stop)."""

    async def tail(store: Store) -> None:
        only = (await store.get_workspace(workspace_name)).id if workspace_name else None
        names = {workspace.id: workspace.name for workspace in await store.list_workspaces()}
        cursor = None if from_start else await store.last_cursor()
        printed = 0
        while count is None or printed < count:
            page = await store.tail_events(cursor, limit=500)
            for event in page.events:
                if only is not None and event.workspace_id != only:
                    continue
                line = {
                    "workspace": names.get(event.workspace_id, str(event.workspace_id)),
                    "uuid": event.uuid,
                    "received_at": event.received_at.isoformat(),
                    "event": msgspec.json.decode(event.raw),
                }
                click.echo(json.dumps(line))
                printed += 1
                if count is not None and printed >= count:
                    return
            cursor = page.next_cursor or cursor
            if not page.events:
                await asyncio.sleep(TAIL_POLL_S)

    try:
        _with_store(tail)
    except KeyboardInterrupt:
        pass
