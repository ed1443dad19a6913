"""Whatever is POSTed to the batch route, the answer is 201, 400 or 413 in the documented shape."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import hypothesis
import jsonschema  # type: ignore[import-untyped]  # no stubs in the lock file
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.conftest import an_event
from tests.conftest import Keys, auth

BATCH = "/api/events/batch/"
SEEDS = Path(__file__).resolve().parents[1] / "seeds"
GUIDE = (SEEDS / "events-batch-guide.txt").read_text()
# The guide's curl example: a valid batch of five events, as Laudspeaker documents it.
SEED_BATCH = GUIDE[GUIDE.index("--data '") + len("--data '") : GUIDE.index("}'") + 1].encode()

EXAMPLES = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
# Values chosen to sit on either side of each rule of the wire schema.
plausible = st.sampled_from(
    [
        "",
        "purchase",
        "$identify",
        "$set",
        "_id",
        "ada@example.com",
        "F451DF0A-D713-4076-AE20-41AB1641BC98",
        "f451df0a-d713-4076-ae20-41ab1641bc98",
        "2024-03-15T02:31:05.295Z",
        "2024-03-15T02:31:05+02:00",
        "Jun 7, 2024 3:04:05 PM",
        "0001-01-01T00:00:00Z",
        "yesterday",
    ]
)
field_values = plausible | json_values
event_like = st.fixed_dictionaries(
    {},
    optional={
        name: field_values
        for name in (
            "event",
            "correlationKey",
            "correlationValue",
            "source",
            "timestamp",
            "uuid",
            "payload",
            "context",
            "$fcm",
        )
    },
)
# A valid event with at most one field replaced: most of them are stored, some are duplicates.
near_valid = st.builds(
    lambda uuid, changes: {**an_event(uuid=str(uuid)), **changes},
    st.uuids() | st.sampled_from([UUID(int=1), UUID(int=2)]),
    st.dictionaries(st.sampled_from(list(an_event())), field_values, max_size=1),
)
timestamps = st.sampled_from(["2024-03-15T02:31:06Z", "2024-03-15T02:31:06.5+09:00"])
batches = st.fixed_dictionaries(
    {"batch": st.lists(near_valid | event_like | json_values, min_size=1, max_size=4)},
    optional={"sent_at": timestamps | field_values, "sentAt": timestamps},
)


@st.composite
def mutated_seed(draw: st.DrawFn) -> bytes:
    """The seed batch with a few bytes deleted, replaced or inserted (JSON punctuation is
    drawn often, to break the structure as typos do; any byte may land inside a string)."""
    body = bytearray(SEED_BATCH)
    for _ in range(draw(st.integers(1, 3))):
        position = draw(st.integers(0, len(body) - 1))
        kind = draw(st.sampled_from(["delete", "replace", "insert"]))
        byte = draw(st.sampled_from(list(b'{}[]:," \n0a\\')) | st.integers(0, 255))
        if kind == "delete":
            del body[position]
        elif kind == "replace":
            body[position] = byte
        else:
            body.insert(position, byte)
    return bytes(body)


def strict_schema(document: dict[str, Any], status: int) -> dict[str, Any]:
    """The documented schema of the batch route's answer with `status`, refusing any field the
    document does not declare, with its $refs resolvable."""
    response = document["paths"][BATCH]["post"]["responses"][str(status)]
    components = json.loads(json.dumps(document["components"]))
    for schema in components["schemas"].values():
        if "properties" in schema:
            schema.setdefault("additionalProperties", False)
    return {**response["content"]["application/json"]["schema"], "components": components}


async def post_and_check(
    client: httpx.AsyncClient, keys: Keys, body: bytes, headers: dict[str, str]
) -> httpx.Response:
    document = (await client.get("/openapi.json")).json()

    answer = await client.post(BATCH, content=body, headers={**auth(keys.write), **headers})

    assert answer.status_code in (201, 400, 413), answer.text
    hypothesis.event(f"{answer.status_code} {answer.json().get('error', '')}")
    jsonschema.validate(answer.json(), strict_schema(document, answer.status_code))
    return answer


@EXAMPLES
@given(body=batches, strict=st.booleans(), compress=st.booleans())
async def test_any_batch_shaped_body_gets_a_documented_answer_whose_counts_add_up(
    small_limits_client: httpx.AsyncClient,
    keys: Keys,
    body: dict[str, Any],
    strict: bool,
    compress: bool,
) -> None:
    raw = json.dumps(body).encode()
    headers = {"Herald-Strict": "1"} if strict else {}
    if compress:
        raw, headers = gzip.compress(raw), {**headers, "Content-Encoding": "gzip"}

    answer = await post_and_check(small_limits_client, keys, raw, headers)

    if answer.status_code == 201:
        result = answer.json()
        assert result["accepted"] + result["duplicates"] + result["rejected"] == len(body["batch"])
        assert len({error["index"] for error in result["errors"]}) == result["rejected"]
        assert all(0 <= error["index"] < len(body["batch"]) for error in result["errors"])
        assert not (strict and result["rejected"])


@EXAMPLES
@given(value=json_values)
async def test_any_json_value_gets_a_documented_answer(
    small_limits_client: httpx.AsyncClient, keys: Keys, value: Any
) -> None:
    raw = json.dumps(value).encode()

    answer = await post_and_check(small_limits_client, keys, raw, {})

    assert answer.status_code != 201 or isinstance(value, dict)


@EXAMPLES
@given(raw=st.binary(max_size=200), encoding=st.sampled_from(["", "gzip"]))
async def test_any_bytes_get_a_documented_answer(
    small_limits_client: httpx.AsyncClient, keys: Keys, raw: bytes, encoding: str
) -> None:
    headers = {"Content-Encoding": encoding} if encoding else {}

    await post_and_check(small_limits_client, keys, raw, headers)


@EXAMPLES
@given(raw=mutated_seed())
async def test_a_mutated_seed_batch_gets_a_documented_answer(
    client: httpx.AsyncClient, keys: Keys, raw: bytes
) -> None:
    answer = await post_and_check(client, keys, raw, {})

    if answer.status_code == 400 and answer.json()["error"] == "invalid_json":
        assert answer.json()["line"] >= 1 and answer.json()["column"] >= 1
