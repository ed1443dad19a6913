"""Shared resources: a real store (SQLite in tmp_path, or a PostgreSQL schema of its own), the
real ASGI app, and API keys.

PostgreSQL tests run when HERALD_TEST_DATABASE_URL names a database; each test gets a fresh schema
in it (`postgres_schema()`), dropped at teardown. Without the variable they are skipped, unless
HERALD_TEST_REQUIRE_POSTGRES=1 (CI): then they fail, so that CI never passes without PostgreSQL.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import httpx
import psycopg
import pytest
from psycopg import sql

from herald.api.app import create_app
from herald.core.keys import KeyKind
from herald.settings import Settings
from herald.store import open_store
from herald.store.base import Store
from herald.store.postgres import PostgresStore
from herald.store.sqlite import SqliteStore

SEEDS = Path(__file__).resolve().parent / "seeds"


@dataclass(frozen=True)
class Keys:
    """A write and an admin key for workspace `default`, and the same for workspace `other`."""

    write: str = "hk_w_test-write-key"
    admin: str = "hk_a_test-admin-key"
    other_write: str = "hk_w_other-write-key"
    other_admin: str = "hk_a_other-admin-key"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Api-Key {key}"}


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The tests using the store run on a SQLite file in tmp_path and on a PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'herald.db'}"
        return
    with postgres_schema() as url:
        yield url


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, key_cache_ttl_s=0.0)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    store = open_store(settings)
    await store.start()
    yield store
    await store.close()


def location_of(store: Store) -> Path | str:
    """What a processor or delivery worker opens for `store`: its SQLite file or its URL."""
    if isinstance(store, PostgresStore):
        return store.url
    assert isinstance(store, SqliteStore), f"no location for {store!r}"
    return store.path


@pytest.fixture
async def keys(store: Store) -> Keys:
    keys = Keys()
    default = await store.create_workspace("default")
    other = await store.create_workspace("other")
    await store.create_key(default.id, KeyKind.WRITE, keys.write)
    await store.create_key(default.id, KeyKind.ADMIN, keys.admin)
    await store.create_key(other.id, KeyKind.WRITE, keys.other_write)
    await store.create_key(other.id, KeyKind.ADMIN, keys.other_admin)
    return keys


@pytest.fixture
async def client(settings: Settings, store: Store, keys: Keys) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, store, manage_store=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def postgres_url() -> str | None:
    """HERALD_TEST_DATABASE_URL, for the PostgreSQL tests (CI sets it)."""
    return os.environ.get("HERALD_TEST_DATABASE_URL")


DROP_LOCK_TIMEOUT = "10s"  # a connection left open in a test's schema fails teardown, not hangs


@contextlib.contextmanager
def postgres_schema() -> Iterator[str]:
    """A fresh schema in the test database, dropped on the way out: yields a URL that makes it
    the only schema on the search path (what Herald's processes are given in the tests)."""
    base = postgres_url()
    if not base:
        no_postgres()
    schema = f"herald_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield with_search_path(base, schema)
    finally:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(sql.SQL("SET lock_timeout = {}").format(DROP_LOCK_TIMEOUT))
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def postgres_schema_url() -> Iterator[str]:
    """A URL to a fresh PostgreSQL schema of this test's own (see `postgres_schema`)."""
    with postgres_schema() as url:
        yield url


def with_search_path(url: str, schema: str) -> str:
    """`url` with `options=-csearch_path=<schema>` added to its query string."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query["options"] = f"{query.get('options', '')} -csearch_path={schema}".strip()
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def no_postgres() -> NoReturn:
    """Skip a PostgreSQL test for want of a database, or fail it where one is required (CI)."""
    enable = (
        "PostgreSQL tests need a database: "
        "set HERALD_TEST_DATABASE_URL=postgresql://user@host:5432/db to run them"
    )
    if os.environ.get("HERALD_TEST_REQUIRE_POSTGRES") == "1":
        pytest.fail(
            f"HERALD_TEST_REQUIRE_POSTGRES=1 and HERALD_TEST_DATABASE_URL is unset. {enable}"
        )
    pytest.skip(enable)
