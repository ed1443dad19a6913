"""What a channel is given (a rendered message) and what it answers (a delivery result)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class Result(StrEnum):
    SENT = "sent"
    RETRY = "retry"  # a transient failure: 5xx, 429, timeout, network error
    FAILED = "failed"  # a permanent one: another 4xx, a refused recipient, a bad address


@dataclass(frozen=True)
class WebhookMessage:
    id: str  # the outbox id: also the Idempotency-Key, so a retry is recognisable
    url: str
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    secret: str | None = None  # signs the body (Herald-Signature)
    timeout_s: float = 10.0


@dataclass(frozen=True)
class EmailMessage:
    id: str  # the outbox id: also the Message-ID
    to: str
    subject: str
    body: str
    html: str | None = None


@dataclass(frozen=True)
class Delivery:
    result: Result
    detail: str = ""  # the status or error, said for a person
    retry_after_s: float | None = None  # the receiver's Retry-After, when it gave one


class Channel(Protocol):
    async def send(self, message: WebhookMessage | EmailMessage) -> Delivery: ...
