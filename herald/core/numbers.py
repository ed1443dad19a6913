"""Reading the whole numbers people type: ids, cursors, limits."""

from __future__ import annotations

MAX_WHOLE = 2**63 - 1  # what SQLite and PostgreSQL store as an integer


def whole_number(text: str) -> int | None:
    """`text` as a whole number (ASCII digits only, within 64 bits), or None."""
    if not (text.isascii() and text.isdigit()):
        return None
    number = int(text)
    return number if number <= MAX_WHOLE else None
