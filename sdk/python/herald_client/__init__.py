"""herald_client: send events to Herald (identify, track, set) from Python 3.9+.

The standard library only. `Client` for any code, `AsyncClient` for asyncio; see docs/sdk.md.
"""

from __future__ import annotations

from herald_client.aio import AsyncClient
from herald_client.client import Client
from herald_client.config import Config, Overflow
from herald_client.errors import ClientClosed, HeraldClientError, QueueFileInUse, QueueFull
from herald_client.events import QueuedEvent
from herald_client.reports import Failure, Rejection, Stats

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "Client",
    "ClientClosed",
    "Config",
    "Failure",
    "HeraldClientError",
    "Overflow",
    "QueueFileInUse",
    "QueueFull",
    "QueuedEvent",
    "Rejection",
    "Stats",
    "__version__",
]
