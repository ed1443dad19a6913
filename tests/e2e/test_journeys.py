"""Journeys end to end: the seeds' identify-then-trigger batch sent to `herald serve` makes one
webhook and one email reach the identified customer, filled from the customer and the payload."""

from __future__ import annotations

import email
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.channels.conftest import Mailbox, running_smtp
from tests.e2e.conftest import ADMIN_KEY, WRITE_KEY, Herald, Servers, auth, poll_until

SEED_CORRELATION = "FBBBCB26-B75E-4342-B40B-568BF879F7C5"


class Recorder(BaseHTTPRequestHandler):
    """Records every request (the server's `received` list) and answers 200."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        received: list[dict[str, Any]] = self.server.received  # type: ignore[attr-defined]
        received.append({"path": self.path, "headers": dict(self.headers), "body": body})
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def journey(webhook_url: str) -> dict[str, Any]:
    return {
        "name": "welcome",
        "trigger": {"event": "trigger_some_message"},
        "start": "hook",
        "steps": {
            "hook": {
                "type": "webhook",
                "url": webhook_url,
                "body": (
                    '{"email": "{{ customer.email }}", "value": "{{ event.payload.some_value }}"}'
                ),
                "secret": "s3cret",
                "next": "mail",
            },
            "mail": {
                "type": "email",
                "subject": "Hello {{ customer.email }}",
                "body": "You sent {{ event.payload.some_value }}.",
            },
        },
    }


SEED_BATCH = {
    "batch": [
        {
            "timestamp": "2024-03-15T02:31:05.295Z",
            "event": "$identify",
            "source": "custom",
            "correlationKey": "_id",
            "payload": {"distinct_id": "example@youremail.com"},
            "correlationValue": SEED_CORRELATION,
        },
        {
            "timestamp": "2024-03-15T02:31:05.295Z",
            "event": "trigger_some_message",
            "source": "custom",
            "correlationKey": "_id",
            "payload": {"some_value": "the_value"},
            "correlationValue": SEED_CORRELATION,
        },
    ]
}


def test_the_seeds_identify_then_trigger_sends_one_webhook_and_one_email(
    herald: Herald, servers: Servers, receiver: ThreadingHTTPServer
) -> None:
    mailbox = Mailbox()
    with running_smtp(mailbox) as smtp:
        herald = herald.with_settings(
            HERALD_SMTP_HOST="127.0.0.1",
            HERALD_SMTP_PORT=str(smtp.port),
            HERALD_SMTP_SECURITY="none",
            HERALD_SMTP_FROM="journeys@example.com",
        )
        server = servers.start(herald)
        url = f"http://127.0.0.1:{receiver.server_address[1]}/hooks/welcome"
        created = httpx.post(
            f"{server.url}/api/journeys", json=journey(url), headers=auth(ADMIN_KEY)
        )
        assert created.status_code == 201, created.text

        sent = httpx.post(
            f"{server.url}/api/events/batch/", json=SEED_BATCH, headers=auth(WRITE_KEY)
        )
        assert sent.status_code == 201, sent.text

        def delivered() -> bool:
            listing = httpx.get(f"{server.url}/api/messages", headers=auth(ADMIN_KEY)).json()
            statuses = [message["status"] for message in listing["messages"]]
            return statuses == ["sent", "sent"]

        poll_until(delivered, what="the webhook and the email were sent", attempts=300)

    received: list[dict[str, Any]] = receiver.received  # type: ignore[attr-defined]
    [webhook] = received
    assert webhook["path"] == "/hooks/welcome"
    assert json.loads(webhook["body"]) == {"email": "example@youremail.com", "value": "the_value"}
    assert webhook["headers"]["Idempotency-Key"]
    assert webhook["headers"]["Herald-Signature"].startswith("t=")
    [envelope] = mailbox.envelopes
    assert envelope.rcpt_tos == ["example@youremail.com"]
    assert isinstance(envelope.content, bytes)
    mail = email.message_from_bytes(envelope.content)
    assert mail["Subject"] == "Hello example@youremail.com"
    assert mail["From"] == "journeys@example.com"
    assert "You sent the_value." in mail.get_payload()
    customer = httpx.post(
        f"{server.url}/api/customers/read",
        json={"primary_key": "example@youremail.com"},
        headers=auth(ADMIN_KEY),
    ).json()
    assert customer["identifiers"] == [SEED_CORRELATION]


def waiting_journey(base_url: str) -> dict[str, Any]:
    return {
        "name": "cart",
        "trigger": {"event": "added_to_cart"},
        "start": "wait",
        "steps": {
            "wait": {
                "type": "wait_for_event",
                "event": "purchase",
                "timeout": "2s",
                "next": "thanks",
                "timeout_next": "nudge",
            },
            "thanks": {"type": "webhook", "url": f"{base_url}/thanks/{{{{ customer.id }}}}"},
            "nudge": {"type": "webhook", "url": f"{base_url}/nudge/{{{{ customer.id }}}}"},
        },
    }


def an_event(name: str, correlation_value: str) -> dict[str, Any]:
    return {
        "event": name,
        "source": "custom",
        "correlationKey": "_id",
        "correlationValue": correlation_value,
        "payload": {},
    }


def test_a_wait_ends_with_the_event_in_time_or_with_the_timeout_after_a_real_delay(
    herald: Herald, servers: Servers, receiver: ThreadingHTTPServer
) -> None:
    server = servers.start(herald)
    base = f"http://127.0.0.1:{receiver.server_address[1]}"
    created = httpx.post(
        f"{server.url}/api/journeys", json=waiting_journey(base), headers=auth(ADMIN_KEY)
    )
    assert created.status_code == 201, created.text

    batch = [
        an_event("added_to_cart", "buyer"),
        an_event("added_to_cart", "browser"),
        an_event("page_view", "browser"),  # unrelated: changes nothing
        an_event("purchase", "buyer"),
    ]
    sent = httpx.post(
        f"{server.url}/api/events/batch/", json={"batch": batch}, headers=auth(WRITE_KEY)
    )
    assert sent.status_code == 201, sent.text

    received: list[dict[str, Any]] = receiver.received  # type: ignore[attr-defined]
    poll_until(lambda: len(received) >= 2, what="both webhooks arrived", attempts=300)
    customers = httpx.get(f"{server.url}/api/customers", headers=auth(ADMIN_KEY)).json()
    by_identifier = {c["identifiers"][0]: c["id"] for c in customers["customers"]}
    assert sorted(request["path"] for request in received) == sorted(
        [f"/thanks/{by_identifier['buyer']}", f"/nudge/{by_identifier['browser']}"]
    )
    stats = httpx.get(f"{server.url}/api/journeys/cart/stats", headers=auth(ADMIN_KEY)).json()
    assert (stats["entered"], stats["completed"], stats["waiting"]) == (2, 2, 0)
