"""First-run mistakes: a taken port, an unusable workspace name."""

from __future__ import annotations

import json
import socket

import httpx
import pytest

from tests.e2e.conftest import Herald, Servers


def test_serve_on_a_taken_port_says_so_before_creating_a_database(herald: Herald) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = herald.cli("serve", "--port", str(port))

    assert result.returncode == 1
    assert "--port or HERALD_PORT" in result.stderr
    assert "Traceback" not in result.stderr
    assert not herald.database.exists()


@pytest.mark.parametrize("name", ["", "   ", "two words", ".hidden"])
def test_an_unusable_workspace_name_is_refused(herald: Herald, name: str) -> None:
    result = herald.cli("workspaces", "create", name)

    assert result.returncode == 1
    assert result.stderr.startswith("error: Workspace name")
    assert "Traceback" not in result.stderr


def test_the_access_log_setting_logs_one_line_per_request(herald: Herald, servers: Servers) -> None:
    server = servers.start(herald.with_settings(HERALD_ACCESS_LOG="1", HERALD_LOG_LEVEL="INFO"))

    answer = httpx.get(f"{server.url}/healthz")
    server.interrupt()

    assert answer.status_code == 200
    logged = [json.loads(line) for line in server.stderr().splitlines() if line.startswith("{")]
    assert any(
        entry["logger"] == "uvicorn.access" and "/healthz" in entry["message"] for entry in logged
    )
