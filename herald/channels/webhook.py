"""Webhooks over httpx: signed, idempotent, with explicit timeouts and a sorted outcome.

Every request carries `Idempotency-Key: <message id>` (the same on every retry) and, when the step
has a secret, `Herald-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`: the
receiver recomputes it with the shared secret and refuses old timestamps.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

import httpx

from herald.channels.base import Delivery, Result, WebhookMessage

USER_AGENT = "Herald-Webhook/1"
SIGNATURE_HEADER = "Herald-Signature"
RETRIED_STATUSES = frozenset({408, 425, 429})  # besides every 5xx


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """The Herald-Signature header value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


class WebhookChannel:
    """Sends webhook messages with one shared httpx client."""

    def __init__(
        self, client: httpx.AsyncClient, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._client = client
        self._clock = clock

    async def send(self, message: WebhookMessage) -> Delivery:
        body = (message.body or "").encode()
        headers = httpx.Headers({"User-Agent": USER_AGENT, "Content-Type": "application/json"})
        for name, value in message.headers.items():  # case-insensitive: a step's header
            headers[name] = value  # replaces ours, never doubles it
        headers["Idempotency-Key"] = message.id  # Herald's own: a step cannot change them
        if message.secret:
            headers[SIGNATURE_HEADER] = signature(message.secret, body, int(self._clock()))
        elif SIGNATURE_HEADER in headers:
            del headers[SIGNATURE_HEADER]
        try:
            response = await self._client.request(
                message.method,
                message.url,
                content=body if message.body is not None else None,
                headers=headers,
                timeout=message.timeout_s,
            )
        except httpx.TimeoutException:
            return Delivery(Result.RETRY, f"no answer within {message.timeout_s:g} s")
        except httpx.HTTPError as exc:
            return Delivery(Result.RETRY, f"{type(exc).__name__}: {exc}")
        return _sorted(response)


def _sorted(response: httpx.Response) -> Delivery:
    status = response.status_code
    detail = f"HTTP {status}: {response.text[:200]}".rstrip(": ")
    if 200 <= status < 300:
        return Delivery(Result.SENT, f"HTTP {status}")
    if status >= 500 or status in RETRIED_STATUSES:
        return Delivery(Result.RETRY, detail, _retry_after_s(response))
    return Delivery(Result.FAILED, detail)


def _retry_after_s(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    if value.isascii() and value.isdigit():
        return float(value)
    return None  # an HTTP-date is rare from webhook receivers: plain backoff then
