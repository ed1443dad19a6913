"""Identity decisions (DESIGN §3): attribution, new customers, $identify, merges, $set."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from herald.core.identity import Customer, Decision, Found, Outcome, decide
from herald.core.schema import CustomerSchema

SCHEMA = CustomerSchema()  # primary key: email
ANON = "FBBBCB26-B75E-4342-B40B-568BF879F7C5"


def ids() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"new-{next(counter)}"


def run(
    event: str = "purchase",
    *,
    key: str = "_id",
    value: str = ANON,
    payload: dict[str, Any] | None = None,
    resolved: Customer | None = None,
    owner: Customer | None = None,
) -> Decision:
    return decide(
        event=event,
        correlation_key=key,
        correlation_value=value,
        payload=payload or {},
        schema=SCHEMA,
        found=Found(resolved, owner),
        new_id=ids(),
    )


def test_an_event_of_a_known_id_is_attributed_to_its_customer() -> None:
    decision = run(resolved=Customer("c1"))

    assert decision == Decision("c1", Outcome.ATTRIBUTED)


def test_an_unknown_anonymous_id_creates_an_anonymous_customer_with_that_id() -> None:
    decision = run()

    assert decision == Decision("new-1", Outcome.CREATED, create=True, identifier=ANON)


def test_an_unknown_attribute_value_creates_a_customer_with_that_attribute() -> None:
    decision = run(key="email", value="ada@example.com")

    assert decision.create
    assert decision.attributes == {"email": "ada@example.com"}
    assert decision.identifier is None


def test_identify_of_a_new_anonymous_id_with_a_free_key_identifies_the_new_customer() -> None:
    decision = run("$identify", payload={"distinct_id": "ada@example.com"})

    assert decision.outcome is Outcome.IDENTIFIED
    assert decision.create and decision.identifier == ANON
    assert decision.attributes == {"email": "ada@example.com"}


def test_identify_of_an_anonymous_customer_with_a_free_key_gives_it_the_key() -> None:
    decision = run("$identify", payload={"distinct_id": "ada@example.com"}, resolved=Customer("a"))

    assert decision == Decision("a", Outcome.IDENTIFIED, attributes={"email": "ada@example.com"})


def test_identify_of_an_anonymous_customer_merges_it_into_the_key_owner() -> None:
    owner = Customer("b", "ada@example.com")

    decision = run(
        "$identify",
        payload={"distinct_id": "ada@example.com"},
        resolved=Customer("a"),
        owner=owner,
    )

    assert decision == Decision("b", Outcome.MERGED, merge_from="a")


def test_identify_of_a_new_anonymous_id_attaches_the_id_to_the_key_owner() -> None:
    decision = run(
        "$identify", payload={"distinct_id": "ada@example.com"}, owner=Customer("b", "x")
    )

    assert decision == Decision("b", Outcome.MERGED, identifier=ANON)


def test_identify_of_the_key_owner_itself_changes_nothing() -> None:
    ada = Customer("b", "ada@example.com")

    decision = run("$identify", payload={"distinct_id": "ada@example.com"}, resolved=ada, owner=ada)

    assert decision == Decision("b", Outcome.ATTRIBUTED)


def test_two_identified_customers_are_never_merged_the_conflict_is_recorded() -> None:
    decision = run(
        "$identify",
        payload={"distinct_id": "ada@example.com"},
        resolved=Customer("a", "bob@example.com"),
        owner=Customer("b", "ada@example.com"),
    )

    assert decision.customer_id == "a"
    assert decision.outcome is Outcome.CONFLICT
    assert decision.merge_from is None
    assert "never merged" in (decision.conflict or "")


def test_an_identified_customer_is_not_renamed_by_an_identify_with_a_free_key() -> None:
    decision = run(
        "$identify",
        payload={"distinct_id": "new@example.com"},
        resolved=Customer("a", "old@example.com"),
    )

    assert decision.outcome is Outcome.CONFLICT
    assert decision.attributes == {}


def test_set_sets_attributes_but_never_the_primary_key() -> None:
    decision = run(
        "$set",
        payload={"plan": "pro", "email": "other@example.com"},
        resolved=Customer("a", "ada@example.com"),
    )

    assert decision == Decision("a", Outcome.ATTRIBUTED, attributes={"plan": "pro"})


def test_set_on_a_new_customer_creates_it_with_the_attributes() -> None:
    decision = run("$set", payload={"plan": "pro"})

    assert decision.create
    assert decision.identifier == ANON
    assert decision.attributes == {"plan": "pro"}


def test_identify_through_an_attribute_key_merges_its_attributes_except_the_key() -> None:
    decision = run(
        "$identify",
        key="phone",
        value="+33",
        payload={"distinct_id": "ada@example.com"},
        owner=Customer("b", "ada@example.com"),
    )

    assert decision == Decision("b", Outcome.MERGED, attributes={"phone": "+33"})
