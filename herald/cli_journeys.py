"""`herald journeys` (apply documents, list, show, pause, resume, archive) and `herald messages`."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import click
import msgspec
import yaml
from rich.console import Console
from rich.table import Table

from herald.core.journeys import JourneyStatus
from herald.errors import InvalidJourney, ServiceError
from herald.journey_documents import from_yaml
from herald.settings import Settings
from herald.store import open_store
from herald.store.base import JourneyRecord, JourneyStats, MessageStatus, OutboxMessage, Store

T = TypeVar("T")
_WORKSPACE = click.option(
    "--workspace", "workspace_name", default="default", show_default=True, help="Workspace name."
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def journeys() -> None:
    """Apply and inspect journeys (versioned documents; see README "Journeys")."""


@journeys.command("apply")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@_WORKSPACE
def apply(files: tuple[Path, ...], workspace_name: str) -> None:
    """Create or update the journeys in FILES (YAML or JSON); each change makes a new version.

    Every file is checked first; nothing is saved unless all of them are valid.
    """
    documents = []
    failed = False
    for path in files:
        try:
            documents.append(from_yaml(_read(path)))
        except InvalidJourney as exc:
            failed = True
            _print_problems(path, exc)
    if failed:
        sys.exit(1)

    async def work(store: Store) -> list[tuple[JourneyRecord, str]]:
        workspace = await store.get_workspace(workspace_name)
        return [await store.save_journey(workspace.id, journey) for journey in documents]

    for record, change in _run(work):
        click.echo(f"{record.name}: {change} (version {record.version}, {record.status.value})")


@journeys.command("list")
@_WORKSPACE
@click.option("--archived", is_flag=True, help="Include archived journeys.")
def list_journeys(workspace_name: str, archived: bool) -> None:
    """List journeys: name, status, current version, last change."""

    async def work(store: Store) -> list[JourneyRecord]:
        workspace = await store.get_workspace(workspace_name)
        return await store.list_journeys(workspace.id, archived=archived)

    table = Table("name", "status", "version", "trigger", "steps", "updated")
    for record in _run(work):
        table.add_row(
            record.name,
            record.status.value,
            str(record.version),
            record.definition.trigger.event,
            str(len(record.definition.steps)),
            record.updated_at.isoformat(timespec="seconds"),
        )
    Console(width=None if sys.stdout.isatty() else 200).print(table)


@journeys.command("show")
@click.argument("name")
@_WORKSPACE
@click.option("--version", type=click.IntRange(1), default=None, help="A past version.")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of YAML.")
def show(name: str, workspace_name: str, version: int | None, as_json: bool) -> None:
    """Print a journey's document (the current version unless --version)."""

    async def work(store: Store) -> JourneyRecord:
        workspace = await store.get_workspace(workspace_name)
        return await store.get_journey(workspace.id, name, version=version)

    record = _run(work)
    document = msgspec.to_builtins(record.definition)
    if as_json:
        click.echo(msgspec.json.encode(document).decode())
    else:
        click.echo(f"# {record.name} version {record.version}, {record.status.value}")
        click.echo(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), nl=False)


@journeys.command("stats")
@click.argument("name")
@_WORKSPACE
@click.option("--json", "as_json", is_flag=True, help="JSON instead of tables.")
def stats(name: str, workspace_name: str, as_json: bool) -> None:
    """Show a journey's figures: customers entered, waiting, completed, exited; per step."""

    async def work(store: Store) -> JourneyStats:
        workspace = await store.get_workspace(workspace_name)
        return await store.journey_stats(workspace.id, name)

    figures = _run(work)
    if as_json:
        click.echo(msgspec.json.encode(figures).decode())
        return
    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(
        f"{figures.name} (version {figures.version}, {figures.status.value}): "
        f"{figures.entered} entered, {figures.waiting} waiting, "
        f"{figures.completed} completed, {figures.exited} exited"
    )
    table = Table("step", "entered", "waiting", "queued", "sent", "failed")
    for step in figures.steps:
        table.add_row(
            step.step,
            *(
                str(value)
                for value in (step.entered, step.waiting, step.queued, step.sent, step.failed)
            ),
        )
    console.print(table)


def _status_command(status: JourneyStatus, verb: str, help_text: str) -> None:
    @journeys.command(verb, help=help_text)
    @click.argument("name")
    @_WORKSPACE
    def command(name: str, workspace_name: str) -> None:
        async def work(store: Store) -> JourneyRecord:
            workspace = await store.get_workspace(workspace_name)
            return await store.set_journey_status(workspace.id, name, status)

        record = _run(work)
        click.echo(f"{record.name}: {record.status.value}")


_status_command(JourneyStatus.PAUSED, "pause", "Stop new entries (customers inside go on).")
_status_command(JourneyStatus.LIVE, "resume", "Let customers enter again.")
_status_command(JourneyStatus.ARCHIVED, "archive", "Retire a journey (hidden from `list`).")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidJourney(f"{path}: no such file.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidJourney(f"{path}: cannot be read as UTF-8 text ({exc}).") from None


def _print_problems(path: Path, exc: InvalidJourney) -> None:
    problems = exc.details.get("problems") or []
    if not problems:
        click.echo(f"error: {exc.message}", err=True)
        return
    click.echo(f"error: {path} cannot run: {len(problems)} problem(s)", err=True)
    for problem in problems:
        where = " ".join(
            part for part in (problem.step and f"step {problem.step}", problem.field) if part
        )
        click.echo(f"  {where or 'document'}: {problem.message}", err=True)


def _run(work: Callable[[Store], Awaitable[T]]) -> T:
    async def run() -> T:
        store = open_store(Settings.from_env(os.environ), writer=False)
        await store.start()
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except ServiceError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def messages() -> None:
    """Journey messages: list the outbox, retry a failed message."""


@messages.command("list")
@_WORKSPACE
@click.option(
    "--status",
    type=click.Choice([item.value for item in MessageStatus]),
    default=None,
    help="Only messages in this state.",
)
@click.option("--limit", type=click.IntRange(1, 1_000), default=100, show_default=True)
def list_messages(workspace_name: str, status: str | None, limit: int) -> None:
    """List messages, oldest first: id, journey, step, kind, status, attempts, last error."""

    async def work(store: Store) -> list[OutboxMessage]:
        workspace = await store.get_workspace(workspace_name)
        page = await store.list_messages(
            workspace.id,
            status=MessageStatus(status) if status else None,
            cursor=None,
            limit=limit,
        )
        return page.messages

    table = Table("id", "journey", "step", "kind", "status", "attempts", "last error")
    for message in _run(work):
        table.add_row(
            message.id,
            message.journey,
            message.step,
            message.kind,
            message.status.value,
            str(message.attempts),
            message.last_error or "",
        )
    Console(width=None if sys.stdout.isatty() else 200).print(table)


@messages.command("retry")
@click.argument("message_ids", nargs=-1, required=True)
@_WORKSPACE
def retry_messages(message_ids: tuple[str, ...], workspace_name: str) -> None:
    """Send failed messages again (due now; delivery picks them up within a second)."""

    async def work(store: Store) -> list[OutboxMessage]:
        workspace = await store.get_workspace(workspace_name)
        return [await store.retry_message(workspace.id, message_id) for message_id in message_ids]

    for message in _run(work):
        click.echo(f"{message.id}: {message.status.value}")
