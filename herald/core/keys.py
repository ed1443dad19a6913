"""API keys: their format, kinds and the hash Herald stores instead of the key."""

from __future__ import annotations

import hashlib
from enum import StrEnum

KEY_PREFIX_LENGTH = 12  # shown in listings: enough to tell keys apart, useless to an attacker


class KeyKind(StrEnum):
    WRITE = "write"  # ingestion only: safe inside a mobile app
    ADMIN = "admin"  # the management API


def format_key(kind: KeyKind, secret: str) -> str:
    """Build the key a user sees from its kind and a random secret (made by the caller)."""
    return f"hk_{kind.value[0]}_{secret}"


def hash_key(key: str) -> bytes:
    """The only form in which a key is stored."""
    return hashlib.sha256(key.encode()).digest()


def key_prefix(key: str) -> str:
    return key[:KEY_PREFIX_LENGTH]


def parse_authorization(header: str | None) -> str | None:
    """The key in 'Api-Key <key>' (scheme case-insensitive); None when absent or malformed."""
    if not header:
        return None
    scheme, _, key = header.strip().partition(" ")
    key = key.strip()
    if scheme.lower() != "api-key" or not key:
        return None
    return key
