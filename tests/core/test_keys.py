"""API keys: their format, the hash stored in their place, and the Authorization header."""

from __future__ import annotations

import pytest

from herald.core.keys import (
    KEY_PREFIX_LENGTH,
    KeyKind,
    format_key,
    hash_key,
    key_prefix,
    parse_authorization,
)


@pytest.mark.parametrize(
    ("kind", "key"), [(KeyKind.WRITE, "hk_w_s3cret"), (KeyKind.ADMIN, "hk_a_s3cret")]
)
def test_a_key_shows_its_kind_in_its_prefix(kind: KeyKind, key: str) -> None:
    formatted = format_key(kind, "s3cret")

    assert formatted == key


def test_key_kinds_are_named_write_and_admin() -> None:
    names = [kind.value for kind in KeyKind]

    assert names == ["write", "admin"]


def test_the_stored_hash_is_the_sha256_of_the_key() -> None:
    key = "hk_w_secret"

    digest = hash_key(key)

    assert digest.hex() == "1c96ec6fbe04ca08034e246c4982c2d1adf0e51f42b076e821bcac2ad4268efd"


def test_different_keys_hash_differently_and_the_hash_does_not_hold_the_key() -> None:
    first, second = "hk_w_secret", "hk_w_secreT"

    first_hash, second_hash = hash_key(first), hash_key(second)

    assert first_hash != second_hash
    assert b"secret" not in first_hash


@pytest.mark.parametrize(
    ("key", "prefix"),
    [("hk_w_abcdefghijklmnop", "hk_w_abcdefg"), ("hk_a_short", "hk_a_short"), ("", "")],
)
def test_the_prefix_shown_in_listings_is_the_first_characters_of_the_key(
    key: str, prefix: str
) -> None:
    shown = key_prefix(key)

    assert shown == prefix
    assert len(shown) <= KEY_PREFIX_LENGTH


@pytest.mark.parametrize(
    "header",
    [
        "Api-Key hk_w_abc",
        "api-key hk_w_abc",
        "API-KEY hk_w_abc",
        "  Api-Key   hk_w_abc  ",
        "Api-Key hk_w_abc\r\n",
    ],
)
def test_the_key_is_read_from_an_api_key_header_whatever_the_scheme_case_and_spacing(
    header: str,
) -> None:
    key = parse_authorization(header)

    assert key == "hk_w_abc"


@pytest.mark.parametrize(
    "header",
    [None, "", "   ", "Api-Key", "Api-Key    ", "Bearer hk_w_abc", "hk_w_abc", "ApiKey hk_w_abc"],
)
def test_a_missing_or_malformed_authorization_header_gives_no_key(header: str | None) -> None:
    key = parse_authorization(header)

    assert key is None


def test_a_formatted_key_round_trips_through_the_authorization_header() -> None:
    key = format_key(KeyKind.ADMIN, "M4jxXt6diYz1Dds1YmhHe93KGPAUi24PlXgaiRXi")

    parsed = parse_authorization(f"Api-Key {key}")

    assert parsed == key
