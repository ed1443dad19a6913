"""API-key authentication with a short cache, so a revoked key dies within seconds everywhere."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from starlette.requests import Request

from herald.core.keys import KeyKind, parse_authorization
from herald.errors import MissingKey, UnknownKey, WrongKeyKind
from herald.store.base import ApiKey, Store
from herald.types import KeyId

MAX_CACHED_KEYS = 10_000  # bounds memory when clients cycle through many (bad) keys


def _missing_key_message(header: str | None) -> str:
    create = "Create a key with `herald keys create --workspace NAME --kind write`."
    if not header:
        return f"Missing API key: send the header 'Authorization: Api-Key <key>'. {create}"
    scheme = header.strip().partition(" ")[0]
    shown = scheme if len(scheme) <= 20 else scheme[:17] + "..."
    return (
        f"The Authorization header is not of the form 'Api-Key <key>' (it starts with "
        f"{shown!r}); send 'Authorization: Api-Key <key>'. {create}"
    )


class Authenticator:
    """Finds the key of a request; remembers answers (known or not) for `ttl_s` seconds."""

    def __init__(self, store: Store, *, ttl_s: float) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._cache: dict[str, tuple[ApiKey | None, float]] = {}
        self.used: dict[KeyId, datetime] = {}

    async def authenticate(self, request: Request, *, admin: bool) -> ApiKey:
        header = request.headers.get("authorization")
        key = parse_authorization(header)
        if key is None:
            raise MissingKey(_missing_key_message(header))
        found = await self._lookup(key)
        if found is None:
            raise UnknownKey(
                f"API key {key[:12]!r}... is not known to Herald, or was revoked; "
                "check it with `herald keys list --workspace NAME`."
            )
        if admin and found.kind is not KeyKind.ADMIN:
            raise WrongKeyKind(
                "This route needs an admin key; write keys can only send events. "
                "Create one with `herald keys create --workspace NAME --kind admin`."
            )
        self.used[found.id] = datetime.now(UTC)
        return found

    async def _lookup(self, key: str) -> ApiKey | None:
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        found = await self._store.find_key(key)
        if len(self._cache) >= MAX_CACHED_KEYS:
            self._cache.clear()
        self._cache[key] = (found, now + self._ttl_s)
        return found

    def forget_workspace(self, workspace_id: int) -> None:
        """Drop cached keys of a workspace whose schema changed, so this process sees it now."""
        self._cache = {
            key: entry
            for key, entry in self._cache.items()
            if entry[0] is None or entry[0].workspace.id != workspace_id
        }

    async def flush_last_used(self) -> None:
        """Write the 'last used' times gathered since the previous flush."""
        if self.used:
            used, self.used = self.used, {}
            await self._store.touch_keys(used)
