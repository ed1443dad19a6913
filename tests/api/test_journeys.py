"""The journeys API (admin key): create, read, list, versions, pause/resume/archive, the
validation of documents (every problem at once, by step and field), keys and workspaces, and
answers shaped as /openapi.json documents them."""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import jsonschema  # type: ignore[import-untyped]  # no stubs in the lock file
import pytest

from herald.core.journeys import STEP_TYPES
from tests.conftest import Keys, auth

JOURNEYS = "/api/journeys"

Document = dict[str, Any]


def a_journey(name: str = "welcome", **fields: Any) -> Document:
    """The seeds' journey: the reference's `trigger_some_message` event (with some_value
    the_value) calls a webhook, then sends an email; `fields` replace top-level fields."""
    return {
        "name": name,
        "trigger": {
            "event": "trigger_some_message",
            "source": "custom",
            "conditions": {
                "all": [{"field": "payload.some_value", "op": "eq", "value": "the_value"}]
            },
        },
        "start": "hook",
        "steps": {
            "hook": {
                "type": "webhook",
                "url": "https://example.com/hooks/{{ customer.id }}",
                "body": '{"value": "{{ event.payload.some_value }}"}',
                "next": "mail",
            },
            "mail": {"type": "email", "subject": "Thank you", "body": "Hello {{ customer.email }}"},
        },
        **fields,
    }


def with_steps(**steps: Any) -> Document:
    """The seeds' journey with `steps` added or replaced (None removes one)."""
    document = a_journey()
    document["steps"].update(steps)
    document["steps"] = {name: step for name, step in document["steps"].items() if step}
    return document


async def create(client: httpx.AsyncClient, keys: Keys, document: Document) -> httpx.Response:
    answer = await client.post(JOURNEYS, json=document, headers=auth(keys.admin))
    assert answer.status_code == 201, answer.text
    return answer


async def problems_of(client: httpx.AsyncClient, keys: Keys, document: Any) -> list[Document]:
    """The problems of an invalid document, after checking nothing was saved."""
    answer = await client.post(JOURNEYS, json=document, headers=auth(keys.admin))
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_journey", answer.text
    listing = await client.get(f"{JOURNEYS}?archived=1", headers=auth(keys.admin))
    assert listing.json() == {"journeys": []}
    problems: list[Document] = answer.json()["problems"]
    return problems


# -- create, read, list -------------------------------------------------------------------


async def test_create_answers_201_with_version_1_live_and_the_definition(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    document = a_journey()

    answer = await client.post(JOURNEYS, json=document, headers=auth(keys.admin))

    assert answer.status_code == 201
    body = answer.json()
    assert body["change"] == "created"
    journey = body["journey"]
    assert journey["name"] == "welcome"
    assert journey["status"] == "live"
    assert journey["version"] == 1
    assert journey["created_at"] == journey["updated_at"]
    assert journey["definition"] == document


async def test_create_of_an_existing_name_is_409_and_keeps_the_first(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await create(client, keys, a_journey())
    changed = with_steps(mail={"type": "email", "subject": "Other", "body": "x"})

    answer = await client.post(JOURNEYS, json=changed, headers=auth(keys.admin))
    read = await client.get(f"{JOURNEYS}/welcome", headers=auth(keys.admin))

    assert answer.status_code == 409
    assert answer.json()["error"] == "conflict"
    assert "PUT /api/journeys/welcome" in answer.json()["message"]
    assert read.json()["version"] == 1
    assert read.json()["definition"] == a_journey()


async def test_read_answers_the_current_journey(client: httpx.AsyncClient, keys: Keys) -> None:
    created = (await create(client, keys, a_journey())).json()["journey"]

    answer = await client.get(f"{JOURNEYS}/welcome", headers=auth(keys.admin))

    assert answer.status_code == 200
    assert answer.json() == created


async def test_read_of_an_unknown_journey_is_404(client: httpx.AsyncClient, keys: Keys) -> None:
    answer = await client.get(f"{JOURNEYS}/nope", headers=auth(keys.admin))

    assert answer.status_code == 404
    assert answer.json()["error"] == "not_found"


async def test_list_answers_every_journey_by_name(client: httpx.AsyncClient, keys: Keys) -> None:
    await create(client, keys, a_journey("zeta"))
    await create(client, keys, a_journey("alpha"))

    answer = await client.get(JOURNEYS, headers=auth(keys.admin))

    assert answer.status_code == 200
    assert [j["name"] for j in answer.json()["journeys"]] == ["alpha", "zeta"]
    assert all(j["version"] == 1 for j in answer.json()["journeys"])


async def test_list_of_a_workspace_without_journeys_is_empty(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    answer = await client.get(JOURNEYS, headers=auth(keys.admin))

    assert answer.status_code == 200
    assert answer.json() == {"journeys": []}


async def test_a_document_spelling_out_the_default_entry_is_the_same_document(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    created = (await create(client, keys, a_journey(entry="once"))).json()["journey"]

    answer = await client.put(f"{JOURNEYS}/welcome", json=a_journey(), headers=auth(keys.admin))

    assert created["definition"] == a_journey()
    assert answer.json()["change"] == "unchanged"
    assert answer.json()["journey"]["version"] == 1


async def test_a_document_spelling_out_every_default_is_the_same_document(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    explicit = a_journey(entry="once", timezone="UTC")
    explicit["steps"]["hook"].update(method="POST", timeout_s=10.0, headers={})
    await create(client, keys, explicit)

    answer = await client.put(f"{JOURNEYS}/welcome", json=a_journey(), headers=auth(keys.admin))
    again = await client.put(f"{JOURNEYS}/welcome", json=explicit, headers=auth(keys.admin))

    assert answer.json()["change"] == "unchanged"
    assert again.json()["change"] == "unchanged"
    assert again.json()["journey"]["version"] == 1


# -- versions -----------------------------------------------------------------------------


async def test_update_with_a_changed_document_makes_version_2(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await create(client, keys, a_journey())
    changed = with_steps(mail={"type": "email", "subject": "Thanks again", "body": "Hi"})

    answer = await client.put(f"{JOURNEYS}/welcome", json=changed, headers=auth(keys.admin))

    assert answer.status_code == 200
    assert answer.json()["change"] == "updated"
    assert answer.json()["journey"]["version"] == 2
    assert answer.json()["journey"]["definition"] == changed
    current = await client.get(f"{JOURNEYS}/welcome", headers=auth(keys.admin))
    assert current.json()["version"] == 2
    assert current.json()["definition"] == changed


async def test_version_1_stays_readable_after_an_update(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await create(client, keys, a_journey())
    changed = with_steps(mail={"type": "email", "subject": "Thanks again", "body": "Hi"})
    await client.put(f"{JOURNEYS}/welcome", json=changed, headers=auth(keys.admin))

    first = await client.get(f"{JOURNEYS}/welcome?version=1", headers=auth(keys.admin))
    second = await client.get(f"{JOURNEYS}/welcome?version=2", headers=auth(keys.admin))
    third = await client.get(f"{JOURNEYS}/welcome?version=3", headers=auth(keys.admin))

    assert first.status_code == 200
    assert first.json()["definition"] == a_journey()
    assert second.json()["definition"] == changed
    assert third.status_code == 404
    assert "version 3" in third.json()["message"]


async def test_a_past_version_is_answered_with_its_own_version_number(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await create(client, keys, a_journey())
    changed = with_steps(mail={"type": "email", "subject": "Thanks again", "body": "Hi"})
    await client.put(f"{JOURNEYS}/welcome", json=changed, headers=auth(keys.admin))

    first = await client.get(f"{JOURNEYS}/welcome?version=1", headers=auth(keys.admin))

    assert first.json()["definition"] == a_journey()
    assert first.json()["version"] == 1


async def test_list_shows_the_current_version(client: httpx.AsyncClient, keys: Keys) -> None:
    await create(client, keys, a_journey())
    changed = with_steps(mail={"type": "email", "subject": "Thanks again", "body": "Hi"})
    await client.put(f"{JOURNEYS}/welcome", json=changed, headers=auth(keys.admin))

    answer = await client.get(JOURNEYS, headers=auth(keys.admin))

    [journey] = answer.json()["journeys"]
    assert journey["version"] == 2
    assert journey["definition"] == changed


async def test_update_with_the_same_document_is_unchanged_and_keeps_the_version(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    created = (await create(client, keys, a_journey())).json()["journey"]

    answer = await client.put(f"{JOURNEYS}/welcome", json=a_journey(), headers=auth(keys.admin))

    assert answer.status_code == 200
    assert answer.json()["change"] == "unchanged"
    assert answer.json()["journey"] == created
    missing = await client.get(f"{JOURNEYS}/welcome?version=2", headers=auth(keys.admin))
    assert missing.status_code == 404


async def test_update_with_the_same_document_in_another_key_order_is_unchanged(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await create(client, keys, a_journey())
    reordered = dict(reversed(list(a_journey().items())))

    answer = await client.put(f"{JOURNEYS}/welcome", json=reordered, headers=auth(keys.admin))

    assert answer.status_code == 200
    assert answer.json()["change"] == "unchanged"
    assert answer.json()["journey"]["version"] == 1


async def test_update_whose_document_names_another_journey_is_400_on_name(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await create(client, keys, a_journey())

    answer = await client.put(
        f"{JOURNEYS}/welcome", json=a_journey("goodbye"), headers=auth(keys.admin)
    )

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"
    assert answer.json()["field"] == "name"
    listing = await client.get(JOURNEYS, headers=auth(keys.admin))
    assert [j["name"] for j in listing.json()["journeys"]] == ["welcome"]


async def test_update_of_an_unknown_journey_is_404_and_creates_nothing(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    answer = await client.put(f"{JOURNEYS}/welcome", json=a_journey(), headers=auth(keys.admin))

    assert answer.status_code == 404
    listing = await client.get(JOURNEYS, headers=auth(keys.admin))
    assert listing.json() == {"journeys": []}


async def test_update_with_an_invalid_document_is_400_and_keeps_the_version(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await create(client, keys, a_journey())
    broken = with_steps(hook={"type": "webhook", "url": "ftp://example.com", "next": "mail"})

    answer = await client.put(f"{JOURNEYS}/welcome", json=broken, headers=auth(keys.admin))

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_journey"
    current = await client.get(f"{JOURNEYS}/welcome", headers=auth(keys.admin))
    assert current.json()["version"] == 1


# -- pause, resume, archive ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "status"), [("pause", "paused"), ("resume", "live"), ("archive", "archived")]
)
async def test_status_actions_set_the_status_and_keep_the_version(
    client: httpx.AsyncClient, keys: Keys, action: str, status: str
) -> None:
    await create(client, keys, a_journey())

    answer = await client.post(f"{JOURNEYS}/welcome/{action}", headers=auth(keys.admin))

    assert answer.status_code == 200
    assert answer.json()["status"] == status
    assert answer.json()["version"] == 1
    assert answer.json()["definition"] == a_journey()
    read = await client.get(f"{JOURNEYS}/welcome", headers=auth(keys.admin))
    assert read.json()["status"] == status


async def test_resume_after_pause_makes_the_journey_live_again(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await create(client, keys, a_journey())
    paused = await client.post(f"{JOURNEYS}/welcome/pause", headers=auth(keys.admin))

    resumed = await client.post(f"{JOURNEYS}/welcome/resume", headers=auth(keys.admin))

    assert paused.json()["status"] == "paused"
    assert resumed.json()["status"] == "live"


@pytest.mark.parametrize("action", ["pause", "resume", "archive"])
async def test_status_actions_on_an_unknown_journey_are_404(
    client: httpx.AsyncClient, keys: Keys, action: str
) -> None:
    answer = await client.post(f"{JOURNEYS}/nope/{action}", headers=auth(keys.admin))

    assert answer.status_code == 404
    assert answer.json()["error"] == "not_found"


async def test_archived_journeys_are_listed_only_with_archived_1(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await create(client, keys, a_journey("kept"))
    await create(client, keys, a_journey("paused"))
    await create(client, keys, a_journey("retired"))
    await client.post(f"{JOURNEYS}/paused/pause", headers=auth(keys.admin))
    await client.post(f"{JOURNEYS}/retired/archive", headers=auth(keys.admin))

    default = await client.get(JOURNEYS, headers=auth(keys.admin))
    with_archived = await client.get(f"{JOURNEYS}?archived=1", headers=auth(keys.admin))
    without_archived = await client.get(f"{JOURNEYS}?archived=0", headers=auth(keys.admin))

    assert [j["name"] for j in default.json()["journeys"]] == ["kept", "paused"]
    assert [j["name"] for j in without_archived.json()["journeys"]] == ["kept", "paused"]
    assert [(j["name"], j["status"]) for j in with_archived.json()["journeys"]] == [
        ("kept", "live"),
        ("paused", "paused"),
        ("retired", "archived"),
    ]


async def test_an_archived_journey_is_still_readable_by_name(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await create(client, keys, a_journey())
    await client.post(f"{JOURNEYS}/welcome/archive", headers=auth(keys.admin))

    answer = await client.get(f"{JOURNEYS}/welcome", headers=auth(keys.admin))

    assert answer.status_code == 200
    assert answer.json()["status"] == "archived"


# -- valid documents ----------------------------------------------------------------------


async def test_the_seeds_journey_is_accepted(client: httpx.AsyncClient, keys: Keys) -> None:
    document = a_journey()

    answer = await client.post(JOURNEYS, json=document, headers=auth(keys.admin))

    assert answer.status_code == 201, answer.text
    definition = answer.json()["journey"]["definition"]
    assert definition["trigger"]["event"] == "trigger_some_message"
    assert definition["steps"]["hook"]["type"] == "webhook"
    assert definition["steps"]["mail"]["type"] == "email"


async def test_the_readme_journey_with_every_step_type_is_accepted(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    document = with_steps(
        mail={"type": "email", "subject": "Hi", "body": "x", "next": "wait"},
        wait={
            "type": "wait_for_event",
            "event": "purchase",
            "timeout": "3d",
            "next": "thanks",
            "timeout_next": "nudge",
        },
        thanks={"type": "email", "subject": "Thank you", "body": "..."},
        nudge={"type": "delay", "until": "09:00", "timezone": "customer", "next": "choose"},
        choose={
            "type": "branch",
            "branches": [
                {
                    "when": {"all": [{"field": "customer.plan", "op": "eq", "value": "pro"}]},
                    "next": "mark",
                }
            ],
            "default": "remind",
        },
        mark={"type": "update_attributes", "set": {"nudged": True}, "next": "done"},
        remind={
            "type": "email",
            "subject": "Still thinking, {{ customer.name | default: 'friend' }}?",
            "body": "...",
        },
        done={"type": "exit"},
    )

    answer = await client.post(JOURNEYS, json=document, headers=auth(keys.admin))

    assert answer.status_code == 201, answer.text
    assert set(answer.json()["journey"]["definition"]["steps"]) == {
        "hook",
        "mail",
        "wait",
        "thanks",
        "nudge",
        "choose",
        "mark",
        "remind",
        "done",
    }


async def test_a_loop_through_a_wait_is_accepted(client: httpx.AsyncClient, keys: Keys) -> None:
    document = with_steps(
        mail={"type": "email", "subject": "Hi", "body": "x", "next": "pause"},
        pause={"type": "delay", "duration": "1d", "next": "hook"},
    )

    answer = await client.post(JOURNEYS, json=document, headers=auth(keys.admin))

    assert answer.status_code == 201, answer.text


# -- invalid documents --------------------------------------------------------------------


async def test_a_next_naming_no_step_is_reported_on_its_step_and_field(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    document = with_steps(mail={"type": "email", "subject": "Hi", "body": "x", "next": "ghost"})

    problems = await problems_of(client, keys, document)

    assert len(problems) == 1
    assert problems[0]["step"] == "mail"
    assert problems[0]["field"] == "next"
    assert "'ghost'" in problems[0]["message"]


async def test_a_start_naming_no_step_is_reported_on_start(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    problems = await problems_of(client, keys, a_journey(start="ghost"))

    assert [(p.get("step"), p["field"]) for p in problems] == [(None, "start")]


async def test_an_unreachable_step_is_reported_on_that_step(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    document = with_steps(orphan={"type": "email", "subject": "Hi", "body": "x"})

    problems = await problems_of(client, keys, document)

    assert len(problems) == 1
    assert problems[0]["step"] == "orphan"
    assert "orphan" in problems[0]["message"]


async def test_a_loop_without_a_wait_is_reported_with_its_steps(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    document = with_steps(mail={"type": "email", "subject": "Hi", "body": "x", "next": "hook"})

    problems = await problems_of(client, keys, document)

    assert len(problems) == 1
    assert problems[0]["step"] in ("hook", "mail")
    assert "loop" in problems[0]["message"]
    assert "hook" in problems[0]["message"]
    assert "mail" in problems[0]["message"]


async def test_a_template_that_does_not_parse_is_reported_on_its_field(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    document = with_steps(mail={"type": "email", "subject": "Hi {{ customer.name", "body": "x"})

    problems = await problems_of(client, keys, document)

    assert len(problems) == 1
    assert (problems[0]["step"], problems[0]["field"]) == ("mail", "subject")
    assert "template" in problems[0]["message"]


async def test_an_ftp_url_is_reported_on_the_webhook_url(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    document = with_steps(hook={"type": "webhook", "url": "ftp://example.com/x", "next": "mail"})

    problems = await problems_of(client, keys, document)

    assert len(problems) == 1
    assert (problems[0]["step"], problems[0]["field"]) == ("hook", "url")
    assert "http" in problems[0]["message"]


@pytest.mark.parametrize(
    "duration", ["", "soon", "10", "5y", "-1d", "1 day", "1e999d", "99999999999999999999w"]
)
async def test_a_bad_duration_is_reported_on_the_delay(
    client: httpx.AsyncClient, keys: Keys, duration: str
) -> None:
    document = with_steps(
        mail={"type": "email", "subject": "Hi", "body": "x", "next": "later"},
        later={"type": "delay", "duration": duration},
    )

    problems = await problems_of(client, keys, document)

    assert [(p["step"], p["field"]) for p in problems] == [("later", "duration")]
    assert "duration" in problems[0]["message"]


async def test_a_bad_wait_timeout_is_reported_on_the_wait(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    document = with_steps(
        mail={"type": "email", "subject": "Hi", "body": "x", "next": "wait"},
        wait={"type": "wait_for_event", "event": "purchase", "timeout": "forever"},
    )

    problems = await problems_of(client, keys, document)

    assert [(p["step"], p["field"]) for p in problems] == [("wait", "timeout")]


async def test_an_unknown_step_type_names_the_step_and_lists_the_types(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    document = with_steps(mail={"type": "sms", "body": "x"})

    problems = await problems_of(client, keys, document)

    assert len(problems) == 1
    assert (problems[0]["step"], problems[0]["field"]) == ("mail", "type")
    assert "'sms'" in problems[0]["message"]
    assert all(kind in problems[0]["message"] for kind in STEP_TYPES)


async def test_a_step_without_a_type_names_the_step(client: httpx.AsyncClient, keys: Keys) -> None:
    document = with_steps(mail={"subject": "Hi", "body": "x"})

    problems = await problems_of(client, keys, document)

    assert [(p["step"], p["field"]) for p in problems] == [("mail", "type")]


async def test_a_field_of_the_wrong_type_inside_a_step_names_the_step(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    document = with_steps(mail={"type": "email", "subject": 42, "body": "x"})

    problems = await problems_of(client, keys, document)

    assert len(problems) == 1
    assert problems[0]["step"] == "mail"
    assert problems[0]["field"] == "subject"


async def test_an_unknown_field_inside_a_step_names_the_step(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    document = with_steps(mail={"type": "email", "subject": "Hi", "body": "x", "cc": "a@b.co"})

    problems = await problems_of(client, keys, document)

    assert len(problems) == 1
    assert problems[0]["step"] == "mail"
    assert "cc" in problems[0]["message"] or problems[0].get("field") == "cc"


async def test_a_step_that_is_not_an_object_names_the_step(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    problems = await problems_of(client, keys, with_steps(mail="send an email"))

    assert [p["step"] for p in problems] == ["mail"]


async def test_a_trigger_condition_on_an_unknown_field_is_reported_on_its_field(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    document = a_journey()
    document["trigger"]["conditions"] = {"all": [{"field": "plan", "op": "eq", "value": "pro"}]}

    problems = await problems_of(client, keys, document)

    assert [(p.get("step"), p["field"]) for p in problems] == [
        (None, "trigger.conditions.all[0].field")
    ]


async def test_an_unknown_top_level_field_is_reported(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    problems = await problems_of(client, keys, a_journey(description="hello"))

    assert len(problems) == 1
    assert problems[0].get("step") is None
    assert "description" in problems[0]["message"] or problems[0].get("field") == "description"


async def test_a_missing_top_level_field_is_reported(client: httpx.AsyncClient, keys: Keys) -> None:
    document = a_journey()
    del document["trigger"]

    problems = await problems_of(client, keys, document)

    assert len(problems) == 1
    assert "trigger" in problems[0]["message"] or problems[0].get("field") == "trigger"


async def test_every_problem_of_a_document_is_reported_at_once(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    document = with_steps(
        hook={"type": "webhook", "url": "ftp://example.com", "next": "mail"},
        mail={"type": "email", "subject": "{% if %}", "body": "x", "next": "ghost"},
        later={"type": "delay", "duration": "soon"},
    )
    document["timezone"] = "Mars/Olympus"

    answer = await client.post(JOURNEYS, json=document, headers=auth(keys.admin))

    assert answer.status_code == 400
    body = answer.json()
    where = {(p.get("step"), p.get("field")) for p in body["problems"]}
    assert where == {
        (None, "timezone"),
        ("hook", "url"),
        ("mail", "next"),
        ("mail", "subject"),
        ("later", "duration"),
    }
    assert f"(and {len(body['problems']) - 1} more)" in body["message"]


async def test_every_unknown_step_type_is_reported_at_once(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    document = with_steps(hook={"type": "sms"}, mail={"type": "push"})

    problems = await problems_of(client, keys, document)

    assert {(p["step"], p["field"]) for p in problems} == {("hook", "type"), ("mail", "type")}


async def test_wrong_fields_in_several_steps_are_reported_at_once(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    document = with_steps(
        hook={"type": "webhook", "url": 1, "next": "mail"},
        mail={"type": "email", "subject": [], "body": "x"},
    )

    problems = await problems_of(client, keys, document)

    assert {p["step"] for p in problems} == {"hook", "mail"}


async def test_broken_json_is_400_invalid_json_with_line_and_column(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    body = '{\n  "name": "welcome",\n  "start": "hook"\n  "steps": {}\n}'

    answer = await client.post(
        JOURNEYS,
        content=body,
        headers={**auth(keys.admin), "Content-Type": "application/json"},
    )

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_json"
    assert (answer.json()["line"], answer.json()["column"]) == (3, 18)  # where ',' is missing
    assert "line 3, column 18" in answer.json()["message"]


@pytest.mark.parametrize("body", [[], "welcome", 42, None, [a_journey()]])
async def test_a_body_that_is_not_an_object_is_400(
    client: httpx.AsyncClient, keys: Keys, body: Any
) -> None:
    answer = await client.post(
        JOURNEYS,
        content=json.dumps(body),
        headers={**auth(keys.admin), "Content-Type": "application/json"},
    )

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_journey"
    assert "object" in answer.json()["message"]
    assert len(answer.json()["problems"]) == 1


async def test_a_body_that_is_not_an_object_is_refused_in_words_about_journeys(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    answer = await client.post(
        JOURNEYS, content="[]", headers={**auth(keys.admin), "Content-Type": "application/json"}
    )

    assert answer.status_code == 400
    assert "event" not in answer.json()["message"]
    assert "event" not in answer.json()["problems"][0]["message"]


@pytest.mark.parametrize("name", ["my journey", "", " ", "-dash", "x" * 65, "a/b", "é"])
async def test_an_unusable_journey_name_is_400_on_name(
    client: httpx.AsyncClient, keys: Keys, name: str
) -> None:
    answer = await client.post(JOURNEYS, json=a_journey(name), headers=auth(keys.admin))

    assert answer.status_code == 400
    body = answer.json()
    fields = [body.get("field"), *(p.get("field") for p in body.get("problems", []))]
    assert "name" in fields
    listing = await client.get(f"{JOURNEYS}?archived=1", headers=auth(keys.admin))
    assert listing.json() == {"journeys": []}


# -- keys and workspaces ------------------------------------------------------------------

# Every journeys route as (method, path, body).
ROUTES: list[tuple[str, str, Document | None]] = [
    ("POST", JOURNEYS, a_journey()),
    ("GET", JOURNEYS, None),
    ("GET", f"{JOURNEYS}/welcome", None),
    ("PUT", f"{JOURNEYS}/welcome", a_journey()),
    ("POST", f"{JOURNEYS}/welcome/pause", None),
    ("POST", f"{JOURNEYS}/welcome/resume", None),
    ("POST", f"{JOURNEYS}/welcome/archive", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
async def test_a_write_key_is_403(
    client: httpx.AsyncClient, keys: Keys, method: str, path: str, body: Document | None
) -> None:
    await create(client, keys, a_journey())

    answer = await client.request(method, path, json=body, headers=auth(keys.write))

    assert answer.status_code == 403
    assert answer.json()["error"] == "admin_key_required"


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
async def test_no_key_is_401(
    client: httpx.AsyncClient, keys: Keys, method: str, path: str, body: Document | None
) -> None:
    answer = await client.request(method, path, json=body)

    assert answer.status_code == 401
    assert answer.json()["error"] == "missing_api_key"


@pytest.mark.parametrize(("method", "path", "body"), ROUTES[2:])
async def test_another_workspaces_admin_key_does_not_find_the_journey(
    client: httpx.AsyncClient, keys: Keys, method: str, path: str, body: Document | None
) -> None:
    await create(client, keys, a_journey())

    answer = await client.request(method, path, json=body, headers=auth(keys.other_admin))

    assert answer.status_code == 404
    mine = await client.get(f"{JOURNEYS}/welcome", headers=auth(keys.admin))
    assert mine.json()["status"] == "live"
    assert mine.json()["version"] == 1


async def test_another_workspace_lists_none_of_the_journeys(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    await create(client, keys, a_journey())
    await client.post(f"{JOURNEYS}/welcome/archive", headers=auth(keys.admin))

    answer = await client.get(f"{JOURNEYS}?archived=1", headers=auth(keys.other_admin))

    assert answer.status_code == 200
    assert answer.json() == {"journeys": []}


async def test_two_workspaces_may_use_the_same_name(client: httpx.AsyncClient, keys: Keys) -> None:
    await create(client, keys, a_journey())
    other = with_steps(mail={"type": "email", "subject": "Other", "body": "x"})

    answer = await client.post(JOURNEYS, json=other, headers=auth(keys.other_admin))

    assert answer.status_code == 201
    mine = await client.get(f"{JOURNEYS}/welcome", headers=auth(keys.admin))
    assert mine.json()["definition"] == a_journey()


# -- query parameters ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "version", ["0", "-1", "abc", "²", "1.0", "", " 1", "99999999999999999999"]
)
async def test_a_version_that_is_not_a_positive_whole_number_is_400(
    client: httpx.AsyncClient, keys: Keys, version: str
) -> None:
    await create(client, keys, a_journey())

    answer = await client.get(
        f"{JOURNEYS}/welcome", params={"version": version}, headers=auth(keys.admin)
    )

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"
    assert answer.json()["field"] == "version"


@pytest.mark.parametrize(
    "url", [f"{JOURNEYS}?archive=1", f"{JOURNEYS}?limit=10", f"{JOURNEYS}/welcome?v=1"]
)
async def test_an_unknown_query_parameter_is_400(
    client: httpx.AsyncClient, keys: Keys, url: str
) -> None:
    await create(client, keys, a_journey())

    answer = await client.get(url, headers=auth(keys.admin))

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"
    assert answer.json()["field"] in url


# -- the OpenAPI document describes these answers -----------------------------------------


def documented_schema(document: Document, method: str, path: str, status: int) -> Any:
    """The documented schema of an answer, refusing any field the document does not declare."""
    responses = document["paths"][path][method.lower()]["responses"]
    assert str(status) in responses, f"{method} {path} answered {status}, which is undocumented"
    components = copy.deepcopy(document["components"])
    for schema in components["schemas"].values():
        if "properties" in schema:
            schema.setdefault("additionalProperties", False)
    return {
        **responses[str(status)]["content"]["application/json"]["schema"],
        "components": components,
    }


async def test_every_journeys_answer_has_a_documented_status_and_shape(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    document = (await client.get("/openapi.json")).json()
    admin = auth(keys.admin)
    one = f"{JOURNEYS}/{{name}}"
    changed = with_steps(mail={"type": "email", "subject": "Again", "body": "x"})
    invalid = with_steps(hook={"type": "sms"}, mail={"type": "email", "subject": 1, "body": "x"})
    calls: list[tuple[str, str, str, Any, dict[str, str]]] = [
        ("POST", JOURNEYS, JOURNEYS, a_journey(), admin),
        ("POST", JOURNEYS, JOURNEYS, a_journey(), admin),
        ("POST", JOURNEYS, JOURNEYS, invalid, admin),
        ("POST", JOURNEYS, JOURNEYS, with_steps(hook={"type": "sms"}), admin),
        ("POST", JOURNEYS, JOURNEYS, a_journey(start="ghost"), admin),
        ("POST", JOURNEYS, JOURNEYS, a_journey("a b"), admin),
        ("POST", JOURNEYS, JOURNEYS, [], admin),
        ("POST", JOURNEYS, JOURNEYS, a_journey(), auth(keys.write)),
        ("POST", JOURNEYS, JOURNEYS, a_journey(), {}),
        ("GET", JOURNEYS, JOURNEYS, None, admin),
        ("GET", JOURNEYS, f"{JOURNEYS}?archived=1", None, admin),
        ("GET", JOURNEYS, f"{JOURNEYS}?x=1", None, admin),
        ("GET", JOURNEYS, JOURNEYS, None, auth(keys.write)),
        ("GET", JOURNEYS, JOURNEYS, None, {}),
        ("PUT", one, f"{JOURNEYS}/welcome", changed, admin),
        ("PUT", one, f"{JOURNEYS}/welcome", changed, admin),
        ("PUT", one, f"{JOURNEYS}/welcome", a_journey("other"), admin),
        ("PUT", one, f"{JOURNEYS}/welcome", invalid, admin),
        ("PUT", one, f"{JOURNEYS}/nope", a_journey("nope"), admin),
        ("PUT", one, f"{JOURNEYS}/welcome", changed, auth(keys.write)),
        ("PUT", one, f"{JOURNEYS}/welcome", changed, {}),
        ("GET", one, f"{JOURNEYS}/welcome", None, admin),
        ("GET", one, f"{JOURNEYS}/welcome?version=1", None, admin),
        ("GET", one, f"{JOURNEYS}/welcome?version=0", None, admin),
        ("GET", one, f"{JOURNEYS}/welcome?version=9", None, admin),
        ("GET", one, f"{JOURNEYS}/nope", None, admin),
        ("GET", one, f"{JOURNEYS}/welcome", None, auth(keys.other_admin)),
        ("GET", one, f"{JOURNEYS}/welcome", None, auth(keys.write)),
        ("GET", one, f"{JOURNEYS}/welcome", None, {}),
    ]
    for action in ("pause", "resume", "archive"):
        template = f"{JOURNEYS}/{{name}}/{action}"
        calls += [
            ("POST", template, f"{JOURNEYS}/welcome/{action}", None, admin),
            ("POST", template, f"{JOURNEYS}/nope/{action}", None, admin),
            ("POST", template, f"{JOURNEYS}/welcome/{action}", None, auth(keys.write)),
            ("POST", template, f"{JOURNEYS}/welcome/{action}", None, {}),
        ]
    statuses = set()

    for method, template, url, body, headers in calls:
        content = None if body is None else json.dumps(body)
        answer = await client.request(
            method, url, content=content, headers={**headers, "Content-Type": "application/json"}
        )
        statuses.add(answer.status_code)
        jsonschema.validate(
            answer.json(), documented_schema(document, method, template, answer.status_code)
        )

    assert statuses == {200, 201, 400, 401, 403, 404, 409}


async def test_broken_json_answer_has_the_documented_shape(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    document = (await client.get("/openapi.json")).json()

    answer = await client.post(
        JOURNEYS,
        content='{"name": "welcome",}',
        headers={**auth(keys.admin), "Content-Type": "application/json"},
    )

    assert answer.status_code == 400
    jsonschema.validate(answer.json(), documented_schema(document, "POST", JOURNEYS, 400))


async def test_the_documented_request_body_takes_the_seeds_journey(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()

    for path, method in ((JOURNEYS, "post"), (f"{JOURNEYS}/{{name}}", "put")):
        request = document["paths"][path][method]["requestBody"]
        schema = {
            **request["content"]["application/json"]["schema"],
            "components": document["components"],
        }
        assert request["required"] is True
        jsonschema.validate(a_journey(), schema)
