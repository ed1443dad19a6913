"""Shared resources: a real SQLite store in tmp_path, the real ASGI app, and API keys."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from herald.api.app import create_app
from herald.core.keys import KeyKind
from herald.settings import Settings
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


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'herald.db'}", key_cache_ttl_s=0.0)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "herald.db")
    await store.start()
    yield store
    await store.close()


@pytest.fixture
async def keys(store: SqliteStore) -> Keys:
    keys = Keys()
    default = await store.create_workspace("default")
    other = await store.create_workspace("other")
    await store.create_key(default.id, KeyKind.WRITE, keys.write)
    await store.create_key(default.id, KeyKind.ADMIN, keys.admin)
    await store.create_key(other.id, KeyKind.WRITE, keys.other_write)
    await store.create_key(other.id, KeyKind.ADMIN, keys.other_admin)
    return keys


@pytest.fixture
async def client(
    settings: Settings, store: SqliteStore, keys: Keys
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, store, manage_store=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def postgres_url() -> str | None:
    """HERALD_TEST_DATABASE_URL, for the PostgreSQL tests (CI sets it)."""
    return os.environ.get("HERALD_TEST_DATABASE_URL")
