"""The examples of Laudspeaker's documents (tests/seeds), sent to Herald as they are written."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Keys, auth

SEEDS = Path(__file__).resolve().parents[1] / "seeds"


def json_blocks(text: str) -> Iterator[str]:
    """Every top-level {...} of a document (the seeds have no braces inside strings)."""
    depth, start = 0, 0
    for position, character in enumerate(text):
        if character == "{":
            if depth == 0:
                start = position
            depth += 1
        elif character == "}":
            depth -= 1
            if depth == 0:
                yield text[start : position + 1]


def seed_examples() -> Iterator[tuple[str, str]]:
    for path in sorted(SEEDS.glob("*.txt")):
        for number, block in enumerate(json_blocks(path.read_text()), start=1):
            yield f"{path.stem}#{number}", block


def parses(block: str) -> bool:
    try:
        json.loads(block)
    except json.JSONDecodeError:
        return False
    return True


VALID_BATCHES = [
    pytest.param(block, id=name)
    for name, block in seed_examples()
    if parses(block) and "batch" in json.loads(block)
]
BROKEN = [pytest.param(block, id=name) for name, block in seed_examples() if not parses(block)]


def test_the_seeds_hold_valid_batches_and_broken_examples() -> None:
    assert len(VALID_BATCHES) >= 3
    assert len(BROKEN) >= 4


@pytest.mark.parametrize("block", VALID_BATCHES)
async def test_a_valid_batch_of_the_seeds_is_accepted_whole(
    client: httpx.AsyncClient, keys: Keys, block: str
) -> None:
    batch = json.loads(block)["batch"]

    sent = await client.post(
        "/api/events/batch/",
        content=block,
        headers={**auth(keys.write), "Content-Type": "application/json"},
    )

    assert sent.status_code == 201, sent.text
    assert sent.json() == {"accepted": len(batch), "duplicates": 0, "rejected": 0, "errors": []}
    listed = await client.get("/api/events", headers=auth(keys.admin))
    assert sorted(event["event"] for event in listed.json()["events"]) == sorted(
        event["event"] for event in batch
    )
    for event in batch:
        if "uuid" in event:
            read = await client.get(f"/api/events/{event['uuid']}", headers=auth(keys.admin))
            assert read.json()["payload"] == event["payload"]


def offset_of(text: str, line: int, column: int) -> int:
    """The position in `text` of a 1-based line and column."""
    line_start = sum(len(text_line) for text_line in text.splitlines(keepends=True)[: line - 1])
    return line_start + column - 1


def points_at(text: str, position: int, mistake: json.JSONDecodeError) -> bool:
    """True when `position` is at the mistake Python's parser found, or in the blank (or the
    stray comma) just before it: where a missing comma belongs, or the trailing comma itself."""
    start, end = sorted((position, mistake.pos))
    return text[start:end].strip() in ("", ",")


@pytest.mark.parametrize("path", ["/api/events/batch/", "/api/events/"])
@pytest.mark.parametrize("block", BROKEN)
async def test_a_broken_example_of_the_seeds_gets_400_pointing_at_the_mistake(
    client: httpx.AsyncClient, keys: Keys, block: str, path: str
) -> None:
    with pytest.raises(json.JSONDecodeError) as mistake:
        json.loads(block)

    sent = await client.post(path, content=block, headers=auth(keys.write))

    assert sent.status_code == 400
    body = sent.json()
    assert body["error"] == "invalid_json"
    assert f"line {body['line']}, column {body['column']}" in body["message"]
    assert points_at(block, offset_of(block, body["line"], body["column"]), mistake.value)
    stats = await client.get("/api/stats", headers=auth(keys.admin))
    assert stats.json()["accepted"] == stats.json()["rejected"] == 0


async def test_a_trailing_comma_in_the_batch_is_pointed_at(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    last = dict(seed_examples())["events-batch-guide#5"]
    repaired = last.replace('"source": "mobile"\n', '"source": "mobile",\n')
    assert "},\n]" in repaired
    with pytest.raises(json.JSONDecodeError) as mistake:
        json.loads(repaired)

    sent = await client.post("/api/events/batch/", content=repaired, headers=auth(keys.write))

    assert sent.status_code == 400
    body = sent.json()
    assert body["error"] == "invalid_json"
    assert "trailing comma" in body["message"]
    assert points_at(repaired, offset_of(repaired, body["line"], body["column"]), mistake.value)
