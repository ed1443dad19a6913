"""The SDK on the oldest Python it supports (3.9), for real: a 3.9 interpreter runs Client and
AsyncClient (with a queue file) against `herald serve`. Skipped where no 3.9 is installed; ruff's
py39 target checks the syntax everywhere."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.e2e.conftest import CLI_TIMEOUT_S, Server
from tests.sdk.conftest import WRITE_KEY, HeraldReader

pytestmark = pytest.mark.slow

SDK = Path(__file__).resolve().parents[2] / "sdk" / "python"

SCRIPT = """
import asyncio, json, sys
from herald_client import AsyncClient, Client, Config

key, host, customer, email, queue_path = sys.argv[1:]
with Client(key, host=host, queue_path=queue_path) as client:
    uuids = [client.identify(customer, email, {"plan": "pro"})]
    uuids.append(client.track(customer, "purchase", {"cart": True}))

async def main():
    async with AsyncClient(key, host=host, config=Config(max_batch_events=1)) as client:
        uuids.append(await client.track(customer, "checkout", {"total": 9.5}))
        uuids.append(await client.set(customer, {"age": 42}))

asyncio.run(main())
print(json.dumps({"version": sys.version_info[:2], "uuids": uuids}))
"""


def python39() -> str | None:
    """A Python 3.9 interpreter: installed by pyenv, or on PATH (not a pyenv shim, which may
    not run it)."""
    installed = sorted(Path.home().glob(".pyenv/versions/3.9*/bin/python3.9"))
    if installed:
        return str(installed[-1])
    found = shutil.which("python3.9")
    return found if found is not None and "/shims/" not in found else None


def test_the_sdk_runs_on_python_3_9(herald_server: Server, tmp_path: Path) -> None:
    interpreter = python39()
    if interpreter is None:
        pytest.skip("no Python 3.9 on this machine (python3.9 on PATH or ~/.pyenv/versions/3.9*)")
    customer, email = str(uuid.uuid4()).upper(), f"{uuid.uuid4().hex}@youremail.com"
    arguments = [WRITE_KEY, herald_server.url, customer, email, str(tmp_path / "queue.db")]

    ran = subprocess.run(
        [interpreter, "-W", "error", "-c", SCRIPT, *arguments],
        env={"PYTHONPATH": str(SDK), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )

    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout)
    assert result["version"] == [3, 9]
    stored = HeraldReader(herald_server.url).events(customer)
    assert [event["event"] for event in stored] == [
        "$identify",
        "$set",
        "purchase",
        "checkout",
        "$set",
    ]
    assert [stored[0]["uuid"], *(event["uuid"] for event in stored[2:])] == result["uuids"]
