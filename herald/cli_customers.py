"""`herald customers import`: load customers from a CSV file, one transaction per batch of rows.

Parsing and checking are `herald.core.csvimport`'s; this module opens the file and the store,
writes the good rows, shows progress, and reports the rejected rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, NoReturn

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from herald.core.csvimport import CustomerCsv, CustomerRow, RejectedRow, decode_lines
from herald.errors import ConfigError, InvalidRequest, NotFound, ServiceError
from herald.settings import Settings
from herald.store import open_store
from herald.store.base import Store, Workspace

DEFAULT_BATCH_ROWS = 1_000
MAX_BATCH_ROWS = 10_000  # a batch holds the state database's write lock: keep it short
PROGRESS_EVERY_ROWS = 256  # how often the progress bar asks the file where it is
SHOWN_PROBLEMS = 50  # the rejected-rows table stops here; --errors-csv has them all

EXIT_REJECTED = 1  # some rows were rejected (or a write failed): not everything landed
EXIT_USAGE = 2  # nothing was imported: fix the command or the file's header and run it again


@dataclass(frozen=True)
class Options:
    workspace: str
    dry_run: bool
    batch_size: int


@dataclass
class Report:
    """What an import did so far: rows written (created or updated), checked, rejected."""

    created: int = 0
    updated: int = 0
    valid: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)

    def problems(self) -> Iterator[tuple[int, str, str]]:
        """(row, column, reason) for every problem, in file order ('' when the whole row)."""
        for rejected in self.rejected:
            for problem in rejected.problems:
                yield rejected.row, problem.column or "", problem.reason


class _Usage(Exception):
    """Raised when nothing can be imported: unknown workspace, unusable header, bad setting."""


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def customers() -> None:
    """Import customers from CSV files."""


@customers.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--workspace", "workspace_name", default="default", show_default=True, help="Workspace name."
)
@click.option("--dry-run", is_flag=True, help="Check every row, write nothing.")
@click.option(
    "--batch-size",
    type=click.IntRange(1, MAX_BATCH_ROWS),
    default=DEFAULT_BATCH_ROWS,
    show_default=True,
    help="Rows written per transaction.",
)
@click.option(
    "--errors-csv",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Also write the rejected rows (row, column, reason) to this CSV file.",
)
def import_customers(
    file: Path, workspace_name: str, dry_run: bool, batch_size: int, errors_csv: Path | None
) -> None:
    """Create or update customers from FILE, a UTF-8 CSV file whose header names attributes.

    The workspace's primary-key column says which customer each row is; other cells are
    checked against the declared attribute types (undeclared columns are strings) and an
    empty cell sets nothing. Bad rows are reported by row number and column and skipped;
    the good rows are written. Exit code: 0 all imported, 1 some rows rejected, 2 nothing
    imported (bad arguments or header).
    """
    options = Options(workspace_name, dry_run, batch_size)
    report = Report()
    failure: ServiceError | None = None
    try:
        asyncio.run(_import(file, options, report))
    except _Usage as usage:
        _fail(str(usage), EXIT_USAGE)
    except ServiceError as exc:  # a write failed: the batches before it are committed
        failure = exc
    _print_report(file, options, report)
    if errors_csv is not None:
        _write_problems(errors_csv, report)
    if failure is not None:
        _fail(
            f"{failure.message} The import stopped; importing the file again is safe.",
            EXIT_REJECTED,
        )
    sys.exit(EXIT_REJECTED if report.rejected else 0)


async def _import(path: Path, options: Options, report: Report) -> None:
    try:
        store = open_store(Settings.from_env(os.environ), writer=False)
        await store.start()
    except ConfigError as exc:
        raise _Usage(exc.message) from None
    try:
        workspace = await _workspace(store, options.workspace)
        with path.open("rb") as stream, contextlib.closing(decode_lines(stream)) as lines:
            try:
                customers = CustomerCsv(lines, workspace.schema)
            except InvalidRequest as exc:
                raise _Usage(f"{path}: {exc.message}") from None
            await _load(store, workspace, customers, stream, options=options, report=report)
    finally:
        await store.close()


async def _workspace(store: Store, name: str) -> Workspace:
    try:
        return await store.get_workspace(name)
    except NotFound as exc:
        raise _Usage(exc.message) from None


async def _load(
    store: Store,
    workspace: Workspace,
    customers: CustomerCsv,
    stream: IO[bytes],
    *,
    options: Options,
    report: Report,
) -> None:
    """Write the good rows a batch at a time and keep the rejected ones, showing progress."""
    batch: list[CustomerRow] = []
    with _progress() as progress:
        task = progress.add_task("Importing", total=os.fstat(stream.fileno()).st_size, rows=0)
        for read, item in enumerate(customers, start=1):
            if isinstance(item, RejectedRow):
                report.rejected.append(item)
            else:
                batch.append(item)
            if len(batch) >= options.batch_size:
                await _write(store, workspace, batch, options=options, report=report)
                batch = []
            if read % PROGRESS_EVERY_ROWS == 0:
                progress.update(task, completed=stream.tell(), rows=read)
        await _write(store, workspace, batch, options=options, report=report)
        progress.update(task, completed=stream.tell(), rows=report.valid + len(report.rejected))


async def _write(
    store: Store,
    workspace: Workspace,
    batch: list[CustomerRow],
    *,
    options: Options,
    report: Report,
) -> None:
    if not batch:
        return
    if not options.dry_run:
        results = await store.upsert_customers(
            workspace, [(row.key, row.attributes) for row in batch]
        )
        created = sum(1 for _, was_created in results if was_created)
        report.created += created
        report.updated += len(results) - created
    report.valid += len(batch)


def _progress() -> Progress:
    """A progress bar over the file's bytes, on a terminal only (never in a pipe or a log)."""
    console = Console()
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[rows]:,} rows"),
        console=console,
        disable=not console.is_terminal,
    )


def _print_report(path: Path, options: Options, report: Report) -> None:
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(width=200, highlight=False)  # wide enough to keep reasons on a line
    rejected = len(report.rejected)
    if options.dry_run:
        summary = (
            f"Dry run of {path} for workspace {options.workspace!r}: {report.valid} rows would "
            f"be imported, {rejected} rejected; nothing was written."
        )
    else:
        summary = (
            f"Imported {path} into workspace {options.workspace!r}: {report.created} created, "
            f"{report.updated} updated, {rejected} rejected."
        )
    console.print(Text(summary))
    if rejected:
        console.print(_problems_table(report))


def _problems_table(report: Report) -> Table:
    table = Table("row", "column", "reason", title="Rejected rows", title_justify="left")
    problems = list(report.problems())
    for row, column, reason in problems[:SHOWN_PROBLEMS]:
        table.add_row(str(row), Text(column or "(row)"), Text(reason))
    if len(problems) > SHOWN_PROBLEMS:
        more = len(problems) - SHOWN_PROBLEMS
        table.caption = f"… and {more} more; --errors-csv PATH writes them all."
        table.caption_justify = "left"
    return table


def _write_problems(path: Path, report: Report) -> None:
    try:
        with path.open("w", encoding="utf-8", newline="") as output:
            writer = csv.writer(output)
            writer.writerow(("row", "column", "reason"))
            writer.writerows(report.problems())
    except OSError as exc:
        _fail(f"Cannot write {path}: {exc.strerror}.", EXIT_REJECTED)
    click.echo(f"Wrote the rejected rows to {path}.", err=True)


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)
