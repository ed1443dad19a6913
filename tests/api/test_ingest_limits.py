"""Encodings and limits: gzip, bombs, body size, batch size and event size."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from herald.settings import Settings
from tests.api.conftest import (
    SMALL_BATCH_EVENTS,
    SMALL_BODY_BYTES,
    SMALL_EVENT_BYTES,
    Event,
    an_event,
)
from tests.conftest import Keys, auth

BATCH = "/api/events/batch/"
MIB = 1024 * 1024


def gzipped(body: dict[str, list[Event]] | bytes) -> bytes:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return gzip.compress(raw, compresslevel=9)


@pytest.mark.parametrize("encoding", ["gzip", "GZIP", " gzip "])
async def test_a_gzip_body_is_accepted(
    client: httpx.AsyncClient, keys: Keys, encoding: str
) -> None:
    event = an_event()

    sent = await client.post(
        BATCH,
        content=gzipped({"batch": [event]}),
        headers={**auth(keys.write), "Content-Encoding": encoding},
    )

    assert sent.status_code == 201, sent.text
    assert sent.json()["accepted"] == 1
    read = await client.get(f"/api/events/{event['uuid']}", headers=auth(keys.admin))
    assert read.status_code == 200


async def test_a_gzip_bomb_gets_413_stating_the_limit_and_herald_serves_the_next_request(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    # Valid JSON once inflated: only the limit, not the parser, can stop it.
    padding = b" " * (50 * MIB)
    bomb = gzipped(b'{"batch": [' + json.dumps(an_event()).encode() + padding + b"]}")
    assert len(bomb) < 100 * 1024

    refused = await client.post(
        BATCH, content=bomb, headers={**auth(keys.write), "Content-Encoding": "gzip"}
    )
    after = await client.post(BATCH, json={"batch": [an_event()]}, headers=auth(keys.write))

    assert refused.status_code == 413
    assert refused.json()["error"] == "payload_too_large"
    assert f"{Settings().max_body_bytes:,} bytes" in refused.json()["message"]
    assert after.status_code == 201
    assert after.json()["accepted"] == 1
    ready = await client.get("/readyz")
    assert ready.json()["status"] == "ready"


async def test_a_body_small_when_compressed_but_over_the_limit_inflated_gets_413(
    small_limits_client: httpx.AsyncClient, keys: Keys
) -> None:
    batch = [an_event(payload={"note": "x" * 700}) for _ in range(SMALL_BATCH_EVENTS)]
    body = gzipped({"batch": batch})
    assert len(body) < SMALL_BODY_BYTES < len(json.dumps({"batch": batch}))

    sent = await small_limits_client.post(
        BATCH, content=body, headers={**auth(keys.write), "Content-Encoding": "gzip"}
    )

    assert sent.status_code == 413
    assert f"{SMALL_BODY_BYTES:,} bytes" in sent.json()["message"]


@pytest.mark.parametrize(
    "body",
    [b"this is not gzip", gzipped({"batch": [an_event()]})[:-8], b"\x1f\x8b\x08\x00garbage"],
    ids=["not gzip", "truncated", "corrupt"],
)
async def test_a_body_declared_gzip_that_is_not_gets_400(
    client: httpx.AsyncClient, keys: Keys, body: bytes
) -> None:
    sent = await client.post(
        BATCH, content=body, headers={**auth(keys.write), "Content-Encoding": "gzip"}
    )

    assert sent.status_code == 400
    assert sent.json()["error"] == "invalid_gzip"
    assert "gzip" in sent.json()["message"]


@pytest.mark.parametrize("encoding", ["br", "deflate", "zstd", "gzip, br"])
async def test_an_unknown_content_encoding_gets_415_naming_it(
    client: httpx.AsyncClient, keys: Keys, encoding: str
) -> None:
    sent = await client.post(
        BATCH,
        json={"batch": [an_event()]},
        headers={**auth(keys.write), "Content-Encoding": encoding},
    )

    assert sent.status_code == 415
    assert sent.json()["error"] == "unsupported_encoding"
    assert encoding in sent.json()["message"]


async def test_a_body_over_the_limit_gets_413_stating_it_and_nothing_is_stored(
    small_limits_client: httpx.AsyncClient, keys: Keys
) -> None:
    batch = [an_event(payload={"note": "x" * 700}) for _ in range(SMALL_BATCH_EVENTS)]
    body = json.dumps({"batch": batch}).encode()
    assert len(body) > SMALL_BODY_BYTES

    sent = await small_limits_client.post(BATCH, content=body, headers=auth(keys.write))

    assert sent.status_code == 413
    assert f"{SMALL_BODY_BYTES:,} bytes" in sent.json()["message"]
    stats = await small_limits_client.get("/api/stats", headers=auth(keys.admin))
    assert stats.json()["accepted"] == stats.json()["rejected"] == 0


async def test_a_streamed_body_over_the_limit_without_content_length_gets_413(
    small_limits_client: httpx.AsyncClient, keys: Keys
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"batch": ['
        for _ in range(10):
            yield json.dumps(an_event(payload={"note": "x" * 300})).encode() + b","
        yield json.dumps(an_event()).encode() + b"]}"

    sent = await small_limits_client.post(BATCH, content=chunks(), headers=auth(keys.write))

    assert sent.status_code == 413
    assert f"{SMALL_BODY_BYTES:,} bytes" in sent.json()["message"]


async def test_the_413_for_a_declared_length_reads_as_one_sentence(
    small_limits_client: httpx.AsyncClient, keys: Keys
) -> None:
    body = json.dumps({"batch": [an_event(payload={"note": "x" * SMALL_BODY_BYTES})]})

    sent = await small_limits_client.post(BATCH, content=body, headers=auth(keys.write))

    assert sent.status_code == 413
    assert "bytes is over" not in sent.json()["message"]


async def test_a_batch_over_the_event_limit_gets_413_stating_it(
    small_limits_client: httpx.AsyncClient, keys: Keys
) -> None:
    batch = [an_event() for _ in range(SMALL_BATCH_EVENTS + 1)]

    sent = await small_limits_client.post(BATCH, json={"batch": batch}, headers=auth(keys.write))

    assert sent.status_code == 413
    assert sent.json()["error"] == "payload_too_large"
    assert f"the limit is {SMALL_BATCH_EVENTS:,}" in sent.json()["message"]
    listed = await small_limits_client.get("/api/events", headers=auth(keys.admin))
    assert listed.json()["events"] == []


async def test_a_batch_at_the_event_limit_is_accepted(
    small_limits_client: httpx.AsyncClient, keys: Keys
) -> None:
    batch = [an_event() for _ in range(SMALL_BATCH_EVENTS)]

    sent = await small_limits_client.post(BATCH, json={"batch": batch}, headers=auth(keys.write))

    assert sent.status_code == 201
    assert sent.json()["accepted"] == SMALL_BATCH_EVENTS


async def test_an_event_over_the_event_size_limit_is_rejected_alone_and_quarantined(
    small_limits_client: httpx.AsyncClient, keys: Keys
) -> None:
    small, big, other = an_event(), an_event(payload={"note": "x" * SMALL_EVENT_BYTES}), an_event()

    sent = await small_limits_client.post(
        BATCH, json={"batch": [small, big, other]}, headers=auth(keys.write)
    )

    assert sent.status_code == 201, sent.text
    result = sent.json()
    assert (result["accepted"], result["rejected"]) == (2, 1)
    assert [error["index"] for error in result["errors"]] == [1]
    assert f"{SMALL_EVENT_BYTES:,} bytes" in result["errors"][0]["message"]
    quarantine = await small_limits_client.get("/api/quarantine", headers=auth(keys.admin))
    assert [json.loads(item["raw"])["uuid"] for item in quarantine.json()["items"]] == [big["uuid"]]


async def test_a_body_compressed_as_several_gzip_members_is_read_whole(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    first, second = an_event(), an_event()
    text = json.dumps({"batch": [first, second]}).encode()
    middle = len(text) // 2
    body = gzip.compress(text[:middle]) + gzip.compress(text[middle:])

    sent = await client.post(
        BATCH, content=body, headers={**auth(keys.write), "Content-Encoding": "gzip"}
    )

    assert sent.status_code == 201, sent.text
    assert sent.json()["accepted"] == 2
