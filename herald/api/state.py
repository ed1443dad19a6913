"""Everything a request handler needs, built once per app and passed explicitly."""

from __future__ import annotations

from dataclasses import dataclass

from herald.api.auth import Authenticator
from herald.api.metrics import Metrics
from herald.core.events import Limits
from herald.settings import Settings
from herald.store.base import Store


@dataclass(frozen=True)
class AppState:
    settings: Settings
    store: Store
    auth: Authenticator
    metrics: Metrics
    limits: Limits
