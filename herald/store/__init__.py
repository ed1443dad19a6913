"""Persistence behind one interface; `open_store` picks the adapter from the URL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from herald.errors import ConfigError
from herald.settings import Settings
from herald.store.base import Store
from herald.store.groupcommit import Observer
from herald.store.sqlite import SqliteStore


def sqlite_path(url: str) -> Path:
    """`sqlite:///herald.db` → herald.db (relative); `sqlite:////var/lib/h.db` → absolute."""
    parsed = urlparse(url)
    path = parsed.path[1:] if parsed.path.startswith("/") else parsed.path
    if not path:
        raise ConfigError(f"HERALD_DATABASE_URL {url!r} names no file; use sqlite:///herald.db.")
    return Path(path)


def shown_url(url: str) -> str:
    """`url` as logs and messages show it: without a password."""
    parsed = urlparse(url)
    if parsed.password is None:
        return url
    netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@", 1)
    return parsed._replace(netloc=netloc).geturl()


def database_of(url: str) -> Path | str:
    """What the processor and delivery open: the SQLite log file, or the PostgreSQL URL."""
    return sqlite_path(url) if url.startswith("sqlite://") else url


def open_store(
    settings: Settings,
    *,
    writer: bool = True,
    writer_process: bool = False,
    observe: Observer | None = None,
    on_writer_lost: Callable[[], None] | None = None,
) -> Store:
    """The store for `settings.database_url`; `writer=False` for the CLI's reads and admin.

    `writer_process=True` commits in a process of its own (what `herald serve` uses).
    """
    if settings.database_url.startswith("sqlite://"):
        return SqliteStore(
            sqlite_path(settings.database_url),
            synchronous=settings.sqlite_synchronous,
            writer=writer,
            writer_process=writer_process,
            max_pending_events=settings.max_pending_events,
            max_commit_events=settings.max_commit_events,
            observe_commit=observe,
            on_writer_lost=on_writer_lost,
        )
    from herald.store.postgres import PostgresStore  # psycopg only when it is used

    return PostgresStore(
        settings.database_url,
        writer=writer,
        max_pending_events=settings.max_pending_events,
        max_commit_events=settings.max_commit_events,
        observe_commit=observe,
    )
