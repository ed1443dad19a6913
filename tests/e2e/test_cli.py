"""The `herald` command as a user runs it: a real process, its exit code, stdout and stderr."""

from __future__ import annotations

import json

import click
import httpx
import pytest

from herald.cli import main
from tests.e2e.conftest import (
    WRITE_KEY,
    Herald,
    Server,
    Servers,
    auth,
    free_port,
    make_event,
    poll_until,
)

pytestmark = pytest.mark.slow


def command_paths(group: click.Group, parents: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and subcommand of `group`, as the words a user types."""
    paths: list[tuple[str, ...]] = []
    for name, command in sorted(group.commands.items()):
        paths.append((*parents, name))
        if isinstance(command, click.Group):
            paths.extend(command_paths(command, (*parents, name)))
    return paths


def assert_one_line_error(stderr: str, *fragments: str) -> None:
    """A friendly failure: one `error: ...` line naming what is wrong, and no traceback."""
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert stderr.startswith("error: "), stderr
    for fragment in fragments:
        assert fragment in stderr


# -- help ---------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [(), *command_paths(main)], ids=" ".join)
def test_every_command_has_help_that_exits_zero(herald: Herald, command: tuple[str, ...]) -> None:
    result = herald.cli(*command, "--help")

    assert result.returncode == 0, result.stderr
    usage = result.stdout.splitlines()[0]
    assert usage.startswith("Usage: ")
    assert f"herald {' '.join(command)}".rstrip() in usage
    assert not herald.database.exists(), "--help must not create a database"


# -- workspaces ---------------------------------------------------------------------------


def test_created_workspace_is_listed(herald: Herald) -> None:
    created = herald.cli("workspaces", "create", "acme")

    listed = herald.cli("workspaces", "list")

    assert created.returncode == 0, created.stderr
    assert "acme" in created.stderr
    assert listed.returncode == 0, listed.stderr
    assert "acme" in listed.stdout


def test_creating_a_workspace_twice_fails_with_one_error_line(herald: Herald) -> None:
    herald.cli("workspaces", "create", "acme")

    again = herald.cli("workspaces", "create", "acme")

    assert again.returncode == 1
    assert_one_line_error(again.stderr, "'acme'", "already exists")


# -- keys ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["write", "admin"])
def test_keys_create_prints_the_key_alone_on_stdout(herald: Herald, kind: str) -> None:
    herald.cli("workspaces", "create", "acme")

    result = herald.cli("keys", "create", "--workspace", "acme", "--kind", kind)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"hk_{kind[0]}_")
    assert lines[0] not in result.stderr


def test_keys_list_shows_the_prefix_but_never_the_key(herald: Herald) -> None:
    herald.cli("workspaces", "create", "acme")
    key = herald.cli("keys", "create", "--workspace", "acme", "--kind", "write").stdout.strip()

    listed = herald.cli("keys", "list", "--workspace", "acme")

    assert listed.returncode == 0, listed.stderr
    assert key[:12] in listed.stdout
    assert key not in listed.stdout + listed.stderr
    assert "write" in listed.stdout


def test_a_created_key_is_accepted_by_the_running_server(herald: Herald, server: Server) -> None:
    herald.cli("workspaces", "create", "acme")
    key = herald.cli("keys", "create", "--workspace", "acme", "--kind", "write").stdout.strip()

    sent = httpx.post(
        f"{server.url}/api/events/batch/", json={"batch": [make_event("ada")]}, headers=auth(key)
    )

    assert sent.status_code == 201, sent.text
    assert sent.json()["accepted"] == 1


def test_a_revoked_key_is_refused_by_the_running_server(herald: Herald, servers: Servers) -> None:
    live = herald.with_settings(HERALD_KEY_CACHE_TTL_S="0.5")
    server = servers.start(live)
    live.cli("workspaces", "create", "acme")
    key = live.cli("keys", "create", "--workspace", "acme", "--kind", "write").stdout.strip()
    url = f"{server.url}/api/events/batch/"

    def send() -> httpx.Response:
        return httpx.post(url, json={"batch": [make_event("ada")]}, headers=auth(key))

    before = send()
    revoked = live.cli("keys", "revoke", "--workspace", "acme", key[:12])
    poll_until(lambda: send().status_code == 401, what="the revoked key to be refused")

    assert before.status_code == 201, before.text
    assert revoked.returncode == 0, revoked.stderr
    assert key[:12] in revoked.stderr
    refused = send()
    assert refused.status_code == 401
    assert "revoked" in refused.json()["message"]


@pytest.mark.parametrize(
    "command",
    [
        ("keys", "create", "--workspace", "nope", "--kind", "write"),
        ("keys", "list", "--workspace", "nope"),
        ("keys", "revoke", "--workspace", "nope", "hk_w_abcdefg"),
    ],
    ids=lambda command: " ".join(command[:2]),
)
def test_an_unknown_workspace_fails_naming_it_and_how_to_list_them(
    herald: Herald, command: tuple[str, ...]
) -> None:
    herald.cli("workspaces", "create", "acme")

    result = herald.cli(*command)

    assert result.returncode == 1
    assert result.stdout == ""
    assert_one_line_error(result.stderr, "'nope'", "herald workspaces list")


def test_revoking_an_unknown_prefix_fails_with_one_error_line(herald: Herald) -> None:
    herald.cli("workspaces", "create", "acme")

    result = herald.cli("keys", "revoke", "--workspace", "acme", "hk_w_missing")

    assert result.returncode == 1
    assert_one_line_error(result.stderr, "'hk_w_missing'", "herald keys list")


# -- migrate and settings ------------------------------------------------------------------


def test_migrate_creates_the_database_and_can_run_again(herald: Herald) -> None:
    first = herald.cli("migrate")
    second = herald.cli("migrate")
    listed = herald.cli("workspaces", "list")

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert herald.database.exists()
    assert listed.returncode == 0, listed.stderr


@pytest.mark.parametrize("command", ["serve", "migrate"])
@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HERALD_SQLITE_SYNCHRONOUS", "sometimes"),
        ("HERALD_PORT", "abc"),
        ("HERALD_PORT", "70000"),
        ("HERALD_MAX_BATCH_EVENTS", "-1"),
        ("HERALD_MAX_PENDING_EVENTS", "0"),
        ("HERALD_KEY_CACHE_TTL_S", "soon"),
        ("HERALD_LOG_LEVEL", "verbose"),
        ("HERALD_DATABASE_URL", "mysql://localhost/herald"),
    ],
)
def test_a_bad_setting_stops_herald_naming_the_variable(
    herald: Herald, command: str, variable: str, value: str
) -> None:
    # A free port, so that a `serve` that wrongly starts cannot clash with anything.
    bad = herald.with_settings(**{"HERALD_PORT": str(free_port()), variable: value})

    result = bad.cli(*command.split())

    assert result.returncode == 1
    assert_one_line_error(result.stderr, variable)


# -- events tail ---------------------------------------------------------------------------


def send_events(server: Server, count: int) -> list[str]:
    """Send `count` events of one customer in one batch; return their uuids in order."""
    batch = [make_event("ada", payload={"n": n}) for n in range(count)]
    sent = httpx.post(
        f"{server.url}/api/events/batch/", json={"batch": batch}, headers=auth(WRITE_KEY)
    )
    assert sent.status_code == 201, sent.text
    return [event["uuid"] for event in batch]


@pytest.mark.parametrize(("sent", "count"), [(5, 5), (5, 3)])
def test_events_tail_from_start_prints_count_events_as_json_lines(
    herald: Herald, server: Server, sent: int, count: int
) -> None:
    uuids = send_events(server, sent)

    result = herald.cli("events", "tail", "--from-start", "--count", str(count))

    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["uuid"] for line in lines] == uuids[:count]
    assert [line["event"]["payload"] for line in lines] == [{"n": n} for n in range(count)]
    assert all(line["event"]["event"] == "purchase" for line in lines)


def test_events_tail_for_one_workspace_shows_only_its_events_named(
    herald: Herald, server: Server
) -> None:
    assert herald.cli("workspaces", "create", "acme").returncode == 0
    other_key = herald.cli("keys", "create", "--workspace", "acme", "--kind", "write").stdout
    other = [make_event("bob") for _ in range(2)]
    answer = httpx.post(
        f"{server.url}/api/events/batch/",
        json={"batch": other},
        headers=auth(other_key.strip()),
    )
    assert answer.status_code == 201, answer.text
    mine = send_events(server, 3)

    result = herald.cli("events", "tail", "--from-start", "--count", "3", "--workspace", "default")

    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["uuid"] for line in lines] == mine
    assert {line["workspace"] for line in lines} == {"default"}


def test_events_tail_refuses_a_count_below_one(herald: Herald) -> None:
    result = herald.cli("events", "tail", "--count", "-1")

    assert result.returncode == 2
    assert "--count" in result.stderr


def test_the_schema_commands_show_and_change_the_schema(herald: Herald) -> None:
    assert herald.cli("workspaces", "create", "acme").returncode == 0

    added = herald.cli("schema", "add-attribute", "--workspace", "acme", "user_id", "string")
    moved = herald.cli("schema", "set-primary-key", "--workspace", "acme", "user_id")
    refused = herald.cli("schema", "set-primary-key", "--workspace", "acme", "nobody")
    shown = herald.cli("schema", "show", "--workspace", "acme")

    assert (added.returncode, moved.returncode) == (0, 0)
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: 'nobody' is not a declared attribute")
    assert json.loads(shown.stdout) == {
        "primary_key": "user_id",
        "attributes": {"email": "email", "user_id": "string"},
    }
