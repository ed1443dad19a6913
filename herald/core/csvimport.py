"""Customers from a CSV file: the header names attributes, and each row is one customer.

`CustomerCsv(lines, schema)` reads the header at once (InvalidRequest when it cannot be used),
then yields every row as a `CustomerRow` to upsert or a `RejectedRow` saying what to fix. Values
take the type their column is declared with; undeclared columns are strings; an empty cell sets
nothing. `decode_lines(stream)` turns a file's bytes into lines without failing the whole file
on bytes that are not UTF-8: they become lone surrogates ('surrogateescape'), and only the rows
holding one are rejected.

Row numbers count records with the header as row 1, as a spreadsheet numbers them (a quoted
cell may span lines, so a row can be more than one line of the file).
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import msgspec

from herald.core.schema import AttributeType, CustomerSchema, check_value, described_type
from herald.errors import InvalidRequest

MAX_KEY_CHARS = 512  # the store indexes primary keys up to this length (store/ledger.py)
MAX_CELL_CHARS = 131_072  # csv.field_size_limit()'s default; the limit is process-wide, so kept
PREVIEW_CHARS = 40  # how much of an offending value a message quotes
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # whole numbers are stored as 64-bit integers

Key = str | int | float

_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
_SURROGATE = re.compile("[\udc80-\udcff]")
_JSON_EXAMPLES = {AttributeType.LIST: '["a", "b"]', AttributeType.OBJECT: '{"plan": "pro"}'}
_JSON_NAMES = {AttributeType.LIST: "an array", AttributeType.OBJECT: "an object"}
_decode_json = msgspec.json.Decoder().decode


@dataclass(frozen=True)
class CustomerRow:
    """A row that passed every check: its primary-key value and the attributes it sets."""

    row: int
    key: Key
    attributes: dict[str, Any]


@dataclass(frozen=True)
class Problem:
    """Why a row cannot be imported; `column` is None when the row as a whole is at fault."""

    column: str | None
    reason: str


@dataclass(frozen=True)
class RejectedRow:
    row: int
    problems: tuple[Problem, ...]


class _Unfit(Exception):
    """Raised by the converters with the reason a cell does not fit its column."""


def decode_lines(stream: IO[bytes]) -> Generator[str, None, None]:
    """The stream's lines as text with their line endings (as csv.reader wants them).

    A UTF-8 BOM is dropped; bytes that are not UTF-8 become lone surrogates (U+DC80-U+DCFF)
    for `CustomerCsv` to reject the row holding them. The stream is left open.
    """
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    try:
        yield from text
    finally:
        if not text.closed:  # detached, closing the wrapper leaves the caller's stream open
            text.detach()


class CustomerCsv:
    """The customers in CSV `lines`, checked against `schema`; the header is read at once."""

    def __init__(self, lines: Iterable[str], schema: CustomerSchema) -> None:
        if schema.primary_key is None:
            raise InvalidRequest(
                "This workspace has no primary key, so rows cannot be matched to customers; "
                "set one with `herald schema set-primary-key`."
            )
        self._schema = schema
        self._primary = schema.primary_key
        self._reader = csv.reader(lines, strict=True)
        try:
            header = next(self._reader, [])
        except csv.Error as exc:
            reason = _unreadable(exc, 1, self._reader.line_num)
            raise InvalidRequest(f"The header (row 1): {reason}.") from None
        self.columns = _columns(header, self._primary)
        self._key_index = self.columns.index(self._primary)
        self._first_row_of: dict[Key, int] = {}

    def __iter__(self) -> Iterator[CustomerRow | RejectedRow]:
        row = 1
        while True:
            first_line = self._reader.line_num + 1
            try:
                cells = next(self._reader)
            except StopIteration:
                return
            except csv.Error as exc:  # the reader drops the rest of the line and goes on
                row += 1
                reason = _unreadable(exc, first_line, self._reader.line_num)
                yield RejectedRow(row, (Problem(None, reason),))
                continue
            row += 1
            if any(cells):  # blank lines (and rows of empty cells) are skipped
                yield self._check(row, cells)

    def _check(self, row: int, cells: list[str]) -> CustomerRow | RejectedRow:
        if len(cells) != len(self.columns):
            return RejectedRow(row, (Problem(None, _count_problem(len(cells), self.columns)),))
        if not cells[self._key_index].strip():
            reason = f"the primary key {self._primary!r} is empty; every row needs one"
            return RejectedRow(row, (Problem(self._primary, reason),))
        attributes: dict[str, Any] = {}
        problems: list[Problem] = []
        for name, cell in zip(self.columns, cells, strict=True):
            try:
                if cell:
                    attributes[name] = _convert(self._schema.attributes.get(name), cell)
            except _Unfit as unfit:
                problems.append(Problem(name, str(unfit)))
        key = attributes.pop(self._primary, None)
        if key is not None and (problem := self._key_problem(row, key)) is not None:
            problems.insert(0, problem)
        if problems or key is None:
            return RejectedRow(row, tuple(problems))
        return CustomerRow(row, key, attributes)

    def _key_problem(self, row: int, key: Key) -> Problem | None:
        """What is wrong with a row's primary-key value: too long, or seen in an earlier row."""
        if isinstance(key, str) and len(key) > MAX_KEY_CHARS:
            return Problem(
                self._primary,
                f"{_show(key)} is {len(key)} characters long; "
                f"a primary key is at most {MAX_KEY_CHARS}",
            )
        first = self._first_row_of.setdefault(key, row)
        if first != row:
            return Problem(
                self._primary,
                f"{self._primary} {_show(str(key))} already appears in row {first}; "
                "keep one row per customer (merge the rows)",
            )
        return None


def _convert(declared: AttributeType | None, cell: str) -> Any:
    """The value a non-empty cell holds for a column declared `declared` (None: undeclared).

    Raises _Unfit with the reason, the offending value and how to write it instead.
    """
    if (surrogate := _SURROGATE.search(cell)) is not None:
        byte = ord(surrogate.group()) - 0xDC00
        raise _Unfit(
            f"byte 0x{byte:02X} (character {surrogate.start() + 1} of the cell) is not UTF-8; "
            "save the file as UTF-8 (Excel: 'CSV UTF-8') and import it again"
        )
    match declared:
        case AttributeType.NUMBER:
            return _number(cell)
        case AttributeType.BOOLEAN:
            return _boolean(cell)
        case AttributeType.LIST | AttributeType.OBJECT:
            return _json(declared, cell)
        case AttributeType.EMAIL if check_value(declared, cell) is not None:
            raise _Unfit(f"{_show(cell)} is not an email address; write one like ada@example.com")
        case AttributeType.DATETIME if check_value(declared, cell) is not None:
            raise _Unfit(
                f"{_show(cell)} is not an ISO-8601 datetime; write one like 2024-03-15T02:31:05Z"
            )
    return cell


def _number(cell: str) -> int | float:
    text = cell.strip()
    if _INTEGER.fullmatch(text):
        value = int(text) if len(text) <= 20 else None  # int() of a huge text is slow
        if value is not None and INT64_MIN <= value <= INT64_MAX:
            return value
        raise _Unfit(
            f"{_show(cell)} is too large for a whole number (at most 19 digits); "
            "declare the column a string to keep it as text"
        )
    if _DECIMAL.fullmatch(text):
        if math.isfinite(number := float(text)):
            return number
        raise _Unfit(f"{_show(cell)} is too large a number; declare the column a string")
    hint = " (a '.' for decimals, no thousands separators)" if "," in text else ""
    raise _Unfit(f"{_show(cell)} is not a number; write one like 42 or -3.5{hint}")


def _boolean(cell: str) -> bool:
    value = _BOOLEANS.get(cell.strip().lower())
    if value is None:
        raise _Unfit(f"{_show(cell)} is not a boolean; write true or false (yes/no, 1/0 work too)")
    return value


def _json(declared: AttributeType, cell: str) -> Any:
    example = _JSON_EXAMPLES[declared]
    try:
        value = _decode_json(cell)
    except msgspec.DecodeError as exc:
        raise _Unfit(
            f"{_show(cell)} is not JSON ({exc}); write the {declared.value} as JSON, like {example}"
        ) from None
    if check_value(declared, value) is not None:
        raise _Unfit(
            f"{_show(cell)} is {described_type(value)}, not {_JSON_NAMES[declared]}; "
            f"write it as JSON, like {example}"
        )
    return value


def _columns(header: list[str], primary: str) -> tuple[str, ...]:
    """The column names the header gives (trimmed); InvalidRequest when they cannot be used."""
    columns = tuple(cell.strip() for cell in header)
    if columns and columns[0].startswith("\ufeff"):  # a BOM, when the caller decoded the bytes
        columns = (columns[0][1:].strip(), *columns[1:])
    if not any(columns):
        raise InvalidRequest(
            "The file is empty or its first line is blank; the first line must be the header, "
            f"naming the columns (one of them {primary!r}, the primary key)."
        )
    if problems := _header_problems(columns, primary):
        raise InvalidRequest(f"The header (row 1) cannot be used: {'; '.join(problems)}.")
    return columns


def _header_problems(columns: tuple[str, ...], primary: str) -> list[str]:
    problems = []
    for number, name in enumerate(columns, start=1):
        if (surrogate := _SURROGATE.search(name)) is not None:
            byte = ord(surrogate.group()) - 0xDC00
            problems.append(f"column {number} holds byte 0x{byte:02X}, which is not UTF-8")
        elif not name:
            problems.append(f"column {number} has no name")
        elif (first := columns.index(name) + 1) != number:
            problems.append(f"column {number} repeats {name!r} (column {first})")
    if problems:
        return [*problems, "name every column once, and save the file as UTF-8"]
    if primary not in columns:
        return [_missing_key(columns, primary)]
    return []


def _missing_key(columns: tuple[str, ...], primary: str) -> str:
    found = ", ".join(repr(name[:PREVIEW_CHARS]) for name in columns[:20])
    separator = next((mark for mark in (";", "\t", "|") if mark in columns[0]), None)
    hint = (
        f" (the columns seem separated by {separator!r}: Herald reads comma-separated files)"
        if separator and len(columns) == 1
        else ""
    )
    return (
        f"there is no {primary!r} column, the workspace's primary key that says which customer "
        f"each row is; add it{hint}. Columns found: {found}"
    )


def _count_problem(count: int, columns: tuple[str, ...]) -> str:
    if count > len(columns):
        return (
            f"the row has {count} cells but the header has {len(columns)} columns; "
            'put quotes around cells that contain a comma ("Paris, France")'
        )
    return (
        f"the row has {count} cells but the header has {len(columns)} columns; "
        "add the missing cells (they may be empty: a,,c)"
    )


def _unreadable(exc: csv.Error, first_line: int, last_line: int) -> str:
    lines = f"line {first_line}" if first_line == last_line else f"lines {first_line}-{last_line}"
    text = str(exc)
    if "expected after" in text:
        fix = (
            "a quoted cell has text after its closing quote; quote the whole cell and double "
            'each quote inside it ("5"" screen")'
        )
    elif "unexpected end of data" in text:
        fix = (
            "a quote is never closed, so the rest of the file was read as one cell; "
            'close the quote, or double it ("") when it is part of the text'
        )
    elif "field larger than field limit" in text:
        fix = (
            f"a cell is longer than {MAX_CELL_CHARS} characters (an unclosed quote makes the "
            "following lines one cell); close the quote or shorten the cell"
        )
    else:
        fix = text
    return f"{lines} cannot be read as CSV: {fix}"


def _show(text: str) -> str:
    shown = text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 3] + "..."
    return repr(shown)
