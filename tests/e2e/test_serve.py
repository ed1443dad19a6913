"""`herald serve` as the README's quick start runs it: where it listens, where it stores, what it
says, and what a second server on the same file does."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import (
    ADMIN_KEY,
    EXIT_TIMEOUT_S,
    WRITE_KEY,
    Herald,
    Servers,
    auth,
    free_port,
    herald_env,
    make_event,
)

pytestmark = pytest.mark.slow

README_BATCH = {
    "batch": [
        {
            "timestamp": "2024-03-15T02:31:05.295Z",
            "uuid": "F451DF0A-D713-4076-AE20-41AB1641BC98",
            "event": "purchase",
            "source": "mobile",
            "correlationKey": "_id",
            "correlationValue": "FBBBCB26-B75E-4342-B40B-568BF879F7C5",
            "payload": {"cart": True},
        }
    ]
}


@pytest.fixture
def quick_start(tmp_path: Path) -> Herald:
    """Herald as a new user starts it: no settings at all, run from an empty directory."""
    env = herald_env(tmp_path / "unused.db")
    del env["HERALD_DATABASE_URL"]
    return Herald(tmp_path, tmp_path / "herald.db", env)


def test_serve_tells_how_to_get_an_api_key(quick_start: Herald, servers: Servers) -> None:
    server = servers.start(quick_start)

    assert "herald keys create --workspace default --kind write" in server.stderr()


def test_serve_stores_in_herald_db_of_the_working_directory_by_default(
    quick_start: Herald, servers: Servers
) -> None:
    servers.start(quick_start)

    assert (quick_start.home / "herald.db").exists()


def test_readme_quick_start_key_and_example_batch_are_accepted(
    quick_start: Herald, servers: Servers
) -> None:
    server = servers.start(quick_start)
    created = quick_start.cli("keys", "create", "--workspace", "default", "--kind", "write")
    key = created.stdout.strip()

    sent = httpx.post(f"{server.url}/api/events/batch/", json=README_BATCH, headers=auth(key))
    resent = httpx.post(f"{server.url}/api/events/batch/", json=README_BATCH, headers=auth(key))

    assert created.returncode == 0, created.stderr
    assert sent.status_code == 201, sent.text
    assert sent.json() == {"accepted": 1, "duplicates": 0, "rejected": 0, "errors": []}
    assert resent.json() == {"accepted": 0, "duplicates": 1, "rejected": 0, "errors": []}


def test_a_second_server_on_the_same_database_fails_naming_the_other_process(
    herald: Herald, servers: Servers
) -> None:
    first = servers.start(herald)

    second = herald.cli("serve", "--port", str(free_port()))

    assert second.returncode != 0
    assert "Another Herald process" in second.stderr
    assert str(herald.database) in second.stderr
    assert "Traceback" not in second.stderr
    assert first.is_ready()


def test_serve_listens_on_the_host_and_port_given_as_flags(
    herald: Herald, servers: Servers
) -> None:
    port = free_port()

    server = servers.start(herald, port=port, args=("--host", "127.0.0.1", "--port", str(port)))

    assert server.is_ready()
    assert f"http://127.0.0.1:{port}" in server.stderr()


def test_serve_listens_on_herald_host_and_herald_port(herald: Herald, servers: Servers) -> None:
    port = free_port()
    configured = herald.with_settings(HERALD_HOST="127.0.0.1", HERALD_PORT=str(port))

    server = servers.start(configured, port=port, args=())

    assert server.is_ready()


def test_port_flag_wins_over_herald_port(herald: Herald, servers: Servers) -> None:
    configured_port, flag_port = free_port(), free_port()
    configured = herald.with_settings(HERALD_PORT=str(configured_port))

    server = servers.start(configured, port=flag_port, args=("--port", str(flag_port)))

    assert server.is_ready()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{configured_port}/readyz")


def test_serve_creates_the_database_where_herald_database_url_says(
    herald: Herald, servers: Servers, tmp_path: Path
) -> None:
    database = tmp_path / "data" / "nested" / "events.db"
    configured = herald.with_settings(HERALD_DATABASE_URL=f"sqlite:///{database}")

    servers.start(configured)

    assert database.exists()
    assert not (tmp_path / "herald.db").exists()


def test_ctrl_c_stops_the_server_cleanly(herald: Herald, servers: Servers) -> None:
    server = servers.start(herald)

    exit_code = server.interrupt()

    assert exit_code == 0
    assert "Traceback" not in server.stderr()


def test_events_sent_before_a_graceful_stop_are_there_after_a_restart(
    herald: Herald, servers: Servers
) -> None:
    first = servers.start(herald)
    event = make_event("ada")
    sent = httpx.post(
        f"{first.url}/api/events/batch/", json={"batch": [event]}, headers=auth(WRITE_KEY)
    )
    first.process.send_signal(signal.SIGTERM)
    first.process.wait(timeout=EXIT_TIMEOUT_S)

    second = servers.start(herald)
    read = httpx.get(f"{second.url}/api/events/{event['uuid']}", headers=auth(ADMIN_KEY))

    assert sent.status_code == 201, sent.text
    assert read.status_code == 200, read.text
    assert read.json()["correlationValue"] == "ada"


def test_a_clean_start_prints_nothing_but_the_welcome(herald: Herald, servers: Servers) -> None:
    server = servers.start(herald)  # HERALD_LOG_LEVEL=WARNING: no info logs

    assert server.stderr().startswith("Herald ")
    assert "Warning" not in server.stderr()
