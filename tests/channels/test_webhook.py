"""The webhook channel against a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from typing import Any

import aiohttp
import pytest

from herald.channels.base import Result, WebhookMessage
from herald.channels.webhook import WebhookChannel, signature
from tests.channels.conftest import DROP, HANG, Receiver, Reply

NOW_S = 1_710_469_865.295  # 2024-03-15T02:31:05.295Z
SECRET = "whsec_test-secret"

# A seeds-style batch as a template renders it: odd spacing, a "$" key, non-ASCII text.
BODY = """{
    "batch": [
    {
      "timestamp": "2024-03-15T02:31:05.295Z",
      "event": "$identify",
      "source": "custom",
      "correlationKey": "_id",
      "payload": {
        "distinct_id": "zoë@example.com",   "note": "caf\\u00e9 ☕"
      },
      "correlationValue": "FBBBCB26-B75E-4342-B40B-568BF879F7C5"
    }
  ]
}
"""


def fixed_clock() -> float:
    return NOW_S


def a_message(receiver: Receiver, **fields: Any) -> WebhookMessage:
    """A message to the receiver with BODY; `fields` replace any field."""
    message = WebhookMessage(id="msg_01HX-outbox-1", url=receiver.url(), body=BODY)
    return dataclasses.replace(message, **fields)


def verifies(header: str, body: bytes, secret: str) -> bool:
    """What a receiver does with Herald-Signature: recompute the HMAC over "<t>.<body>"."""
    parts = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest(expected.hexdigest(), parts["v1"])


async def test_the_rendered_body_arrives_byte_for_byte(
    receiver: Receiver, http_client: aiohttp.ClientSession
) -> None:
    channel = WebhookChannel(http_client, clock=fixed_clock)
    message = a_message(receiver, url=receiver.url("/hooks/herald?journey=welcome"))

    delivery = await channel.send(message)

    assert delivery.result is Result.SENT
    [request] = receiver.requests
    assert request.method == "POST"
    assert request.target == "/hooks/herald?journey=welcome"
    assert request.body == BODY.encode("utf-8")
    assert request.header("content-type") == "application/json"
    assert request.header("content-length") == str(len(BODY.encode("utf-8")))
    assert request.header("user-agent") == "Herald-Webhook/1"


async def test_the_signature_verifies_with_the_secret_and_the_clocks_timestamp(
    receiver: Receiver, http_client: aiohttp.ClientSession
) -> None:
    channel = WebhookChannel(http_client, clock=fixed_clock)

    await channel.send(a_message(receiver, secret=SECRET))

    [request] = receiver.requests
    header = request.header("herald-signature")
    assert header.startswith(f"t={int(NOW_S)},v1=")
    assert verifies(header, request.body, SECRET)
    assert not verifies(header, request.body, "another secret")
    assert not verifies(header, request.body + b" ", SECRET)
    assert header == signature(SECRET, BODY.encode(), int(NOW_S))


async def test_the_signature_follows_the_clock_on_each_attempt(
    receiver: Receiver, http_client: aiohttp.ClientSession
) -> None:
    now_s = [NOW_S, NOW_S + 90]
    channel = WebhookChannel(http_client, clock=lambda: now_s.pop(0))
    message = a_message(receiver, secret=SECRET)

    await channel.send(message)
    await channel.send(message)

    first, second = (request.header("herald-signature") for request in receiver.requests)
    assert first.startswith(f"t={int(NOW_S)},")
    assert second.startswith(f"t={int(NOW_S) + 90},")
    assert verifies(second, receiver.requests[1].body, SECRET)


async def test_without_a_secret_nothing_is_signed(
    receiver: Receiver, http_client: aiohttp.ClientSession
) -> None:
    channel = WebhookChannel(http_client, clock=fixed_clock)

    await channel.send(a_message(receiver, secret=None))

    assert receiver.requests[0].values("herald-signature") == []


async def test_every_attempt_carries_the_same_idempotency_key(
    receiver: Receiver, http_client: aiohttp.ClientSession
) -> None:
    receiver.answer(Reply(503), Reply(503), Reply(200))
    channel = WebhookChannel(http_client, clock=fixed_clock)
    message = a_message(receiver, id="outbox-42")

    for _ in range(3):
        await channel.send(message)

    keys = [request.header("idempotency-key") for request in receiver.requests]
    assert keys == ["outbox-42", "outbox-42", "outbox-42"]


async def test_a_receiver_answering_503_503_200_gives_retry_retry_sent(
    receiver: Receiver, http_client: aiohttp.ClientSession
) -> None:
    receiver.answer(Reply(503, body=b"busy"), Reply(503), Reply(200, body=b"ok"))
    channel = WebhookChannel(http_client, clock=fixed_clock)
    message = a_message(receiver)

    deliveries = [await channel.send(message) for _ in range(3)]

    assert [delivery.result for delivery in deliveries] == [Result.RETRY, Result.RETRY, Result.SENT]
    assert [delivery.detail for delivery in deliveries] == [
        "HTTP 503: busy",
        "HTTP 503",
        "HTTP 200",
    ]
    assert len(receiver.requests) == 3


async def test_custom_headers_are_sent_alongside_heralds_own(
    receiver: Receiver, http_client: aiohttp.ClientSession
) -> None:
    channel = WebhookChannel(http_client, clock=fixed_clock)
    headers = {"Authorization": "Bearer crm-token", "X-Journey": "welcome", "X-Tenant": "acme"}

    await channel.send(a_message(receiver, headers=headers, secret=SECRET))

    [request] = receiver.requests
    assert request.header("authorization") == "Bearer crm-token"
    assert request.header("x-journey") == "welcome"
    assert request.header("x-tenant") == "acme"
    assert request.header("idempotency-key") == "msg_01HX-outbox-1"
    assert verifies(request.header("herald-signature"), request.body, SECRET)


@pytest.mark.parametrize(
    "name",
    [
        "Idempotency-Key",
        pytest.param(
            "idempotency-key",
        ),
        pytest.param(
            "IDEMPOTENCY-KEY",
        ),
    ],
)
async def test_a_step_header_cannot_override_the_idempotency_key(
    receiver: Receiver, http_client: aiohttp.ClientSession, name: str
) -> None:
    channel = WebhookChannel(http_client, clock=fixed_clock)

    await channel.send(a_message(receiver, headers={name: "chosen-by-the-step"}))

    assert receiver.requests[0].values("idempotency-key") == ["msg_01HX-outbox-1"]


async def test_a_step_header_cannot_add_a_second_signature(
    receiver: Receiver, http_client: aiohttp.ClientSession
) -> None:
    channel = WebhookChannel(http_client, clock=fixed_clock)

    await channel.send(
        a_message(receiver, headers={"herald-signature": "t=1,v1=00"}, secret=SECRET)
    )

    values = receiver.requests[0].values("herald-signature")
    assert len(values) == 1, values
    assert verifies(values[0], receiver.requests[0].body, SECRET)


@pytest.mark.parametrize(
    "name",
    [
        "Content-Type",
        pytest.param(
            "content-type",
        ),
    ],
)
async def test_a_step_can_choose_the_content_type(
    receiver: Receiver, http_client: aiohttp.ClientSession, name: str
) -> None:
    channel = WebhookChannel(http_client, clock=fixed_clock)

    await channel.send(a_message(receiver, headers={name: "application/cloudevents+json"}))

    assert receiver.requests[0].values("content-type") == ["application/cloudevents+json"]


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
async def test_the_steps_method_is_used(
    receiver: Receiver, http_client: aiohttp.ClientSession, method: str
) -> None:
    channel = WebhookChannel(http_client, clock=fixed_clock)

    delivery = await channel.send(a_message(receiver, method=method))

    assert delivery.result is Result.SENT
    assert receiver.requests[0].method == method
    assert receiver.requests[0].body == BODY.encode()


async def test_a_message_without_a_body_sends_none_and_signs_the_empty_body(
    receiver: Receiver, http_client: aiohttp.ClientSession
) -> None:
    channel = WebhookChannel(http_client, clock=fixed_clock)

    delivery = await channel.send(a_message(receiver, method="GET", body=None, secret=SECRET))

    assert delivery.result is Result.SENT
    [request] = receiver.requests
    assert (request.method, request.body) == ("GET", b"")
    assert verifies(request.header("herald-signature"), b"", SECRET)


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
async def test_a_2xx_answer_is_sent(
    receiver: Receiver, http_client: aiohttp.ClientSession, status: int
) -> None:
    receiver.answer(Reply(status))
    channel = WebhookChannel(http_client, clock=fixed_clock)

    delivery = await channel.send(a_message(receiver))

    assert delivery.result is Result.SENT
    assert delivery.detail == f"HTTP {status}"


@pytest.mark.parametrize("status", [500, 502, 503, 504, 599, 408, 425, 429])
async def test_a_5xx_408_425_or_429_answer_is_retried(
    receiver: Receiver, http_client: aiohttp.ClientSession, status: int
) -> None:
    receiver.answer(Reply(status, body=b"not now"))
    channel = WebhookChannel(http_client, clock=fixed_clock)

    delivery = await channel.send(a_message(receiver))

    assert delivery.result is Result.RETRY
    assert delivery.detail == f"HTTP {status}: not now"
    assert delivery.retry_after_s is None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 409, 410, 413, 422])
async def test_another_4xx_answer_fails_after_one_try(
    receiver: Receiver, http_client: aiohttp.ClientSession, status: int
) -> None:
    receiver.answer(Reply(status, body=b'{"error":"bad payload"}'))
    channel = WebhookChannel(http_client, clock=fixed_clock)

    delivery = await channel.send(a_message(receiver))

    assert delivery.result is Result.FAILED
    assert delivery.detail == f'HTTP {status}: {{"error":"bad payload"}}'
    assert len(receiver.requests) == 1


async def test_a_long_error_body_is_cut_in_the_detail(
    receiver: Receiver, http_client: aiohttp.ClientSession
) -> None:
    receiver.answer(Reply(400, body=b"x" * 5_000))
    channel = WebhookChannel(http_client, clock=fixed_clock)

    delivery = await channel.send(a_message(receiver))

    assert delivery.detail == "HTTP 400: " + "x" * 200


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_seconds_are_passed_on(
    receiver: Receiver, http_client: aiohttp.ClientSession, status: int
) -> None:
    receiver.answer(Reply(status, headers=(("Retry-After", "7"),)))
    channel = WebhookChannel(http_client, clock=fixed_clock)

    delivery = await channel.send(a_message(receiver))

    assert delivery.result is Result.RETRY
    assert delivery.retry_after_s == 7.0


@pytest.mark.parametrize("value", ["Fri, 15 Mar 2024 02:32:00 GMT", "soon", "-5", "1.5"])
async def test_a_retry_after_that_is_not_whole_seconds_is_left_to_plain_backoff(
    receiver: Receiver, http_client: aiohttp.ClientSession, value: str
) -> None:
    receiver.answer(Reply(429, headers=(("Retry-After", value),)))
    channel = WebhookChannel(http_client, clock=fixed_clock)

    delivery = await channel.send(a_message(receiver))

    assert delivery.result is Result.RETRY
    assert delivery.retry_after_s is None


async def test_a_refused_connection_is_retried(
    closed_port: int, http_client: aiohttp.ClientSession
) -> None:
    channel = WebhookChannel(http_client, clock=fixed_clock)
    message = WebhookMessage(id="m-1", url=f"http://127.0.0.1:{closed_port}/hook", body="{}")

    delivery = await channel.send(message)

    assert delivery.result is Result.RETRY
    assert delivery.detail.startswith(f"cannot connect to 127.0.0.1:{closed_port}: ")


async def test_a_receiver_that_never_answers_is_retried_naming_the_timeout(
    receiver: Receiver, http_client: aiohttp.ClientSession
) -> None:
    receiver.answer(HANG)
    channel = WebhookChannel(http_client, clock=fixed_clock)

    delivery = await channel.send(a_message(receiver, timeout_s=0.25))

    assert delivery.result is Result.RETRY
    assert delivery.detail == "no answer within 0.25 s"
    assert len(receiver.requests) == 1


async def test_a_receiver_hanging_up_without_an_answer_is_retried(
    receiver: Receiver, http_client: aiohttp.ClientSession
) -> None:
    receiver.answer(DROP)
    channel = WebhookChannel(http_client, clock=fixed_clock)

    delivery = await channel.send(a_message(receiver))

    assert delivery.result is Result.RETRY
    assert delivery.detail == "the receiver closed the connection without answering"


async def test_the_next_send_after_a_timeout_goes_through(
    receiver: Receiver, http_client: aiohttp.ClientSession
) -> None:
    receiver.answer(HANG, Reply(200))
    channel = WebhookChannel(http_client, clock=fixed_clock)
    message = a_message(receiver, timeout_s=0.25)

    first = await channel.send(message)
    second = await channel.send(message)

    assert (first.result, second.result) == (Result.RETRY, Result.SENT)
    assert [request.body for request in receiver.requests] == [BODY.encode()] * 2


async def test_a_cookie_one_receiver_sets_never_rides_along_on_the_next_message(
    receiver: Receiver, http_client: aiohttp.ClientSession
) -> None:
    receiver.answer(Reply(200, headers=(("Set-Cookie", "session=customer-a; Path=/"),)))
    channel = WebhookChannel(http_client, clock=fixed_clock)

    await channel.send(a_message(receiver, id="for-customer-a"))
    await channel.send(a_message(receiver, id="for-customer-b"))

    assert receiver.requests[1].values("cookie") == []


async def test_a_redirect_is_not_followed_and_fails_naming_the_status(
    receiver: Receiver, http_client: aiohttp.ClientSession
) -> None:
    receiver.answer(Reply(302, headers=(("Location", receiver.url("/elsewhere")),)))
    channel = WebhookChannel(http_client, clock=fixed_clock)

    delivery = await channel.send(a_message(receiver))

    assert (delivery.result, delivery.detail) == (Result.FAILED, "HTTP 302")
    assert [request.target for request in receiver.requests] == ["/hook"]


async def test_a_huge_answer_is_cut_and_the_next_send_still_goes_through(
    receiver: Receiver, http_client: aiohttp.ClientSession
) -> None:
    receiver.answer(Reply(500, body="é".encode() * 1_000_000), Reply(200))
    channel = WebhookChannel(http_client, clock=fixed_clock)

    first = await channel.send(a_message(receiver))
    second = await channel.send(a_message(receiver))

    assert (first.result, first.detail) == (Result.RETRY, "HTTP 500: " + "é" * 200)
    assert second.result is Result.SENT
    assert len(receiver.requests) == 2


async def test_a_header_value_with_a_line_break_fails_without_reaching_the_receiver(
    receiver: Receiver, http_client: aiohttp.ClientSession
) -> None:
    channel = WebhookChannel(http_client, clock=fixed_clock)

    delivery = await channel.send(a_message(receiver, headers={"X-Note": "a\r\nX-Evil: 1"}))

    assert delivery.result is Result.FAILED
    assert "cannot be sent" in delivery.detail
    assert receiver.requests == []
