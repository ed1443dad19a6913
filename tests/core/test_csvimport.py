"""Customers from CSV: typed values, rejected rows with their number, column and fix, headers."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from herald.core.csvimport import (
    MAX_CELL_CHARS,
    CustomerCsv,
    CustomerRow,
    Problem,
    RejectedRow,
    decode_lines,
)
from herald.core.schema import AttributeType, CustomerSchema
from herald.errors import InvalidRequest

SCHEMA = CustomerSchema(
    "email",
    {
        "email": AttributeType.EMAIL,
        "age": AttributeType.NUMBER,
        "vip": AttributeType.BOOLEAN,
        "tags": AttributeType.LIST,
        "plan": AttributeType.OBJECT,
        "seen_at": AttributeType.DATETIME,
        "city": AttributeType.STRING,
    },
)


def read(text: str, schema: CustomerSchema = SCHEMA) -> list[CustomerRow | RejectedRow]:
    """Every row of CSV `text`, split into lines as a file opened with newline='' gives them."""
    return list(CustomerCsv(io.StringIO(text, newline=""), schema))


def csv_text(*rows: list[str]) -> str:
    """Rows as a CSV file writes them, quoted where needed."""
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    return text.getvalue()


def read_bytes(data: bytes, schema: CustomerSchema = SCHEMA) -> list[CustomerRow | RejectedRow]:
    return list(CustomerCsv(decode_lines(io.BytesIO(data)), schema))


def rejections(items: list[CustomerRow | RejectedRow]) -> list[tuple[int, str | None, str]]:
    return [
        (item.row, problem.column, problem.reason)
        for item in items
        if isinstance(item, RejectedRow)
        for problem in item.problems
    ]


def imported(items: list[CustomerRow | RejectedRow]) -> list[CustomerRow]:
    return [item for item in items if isinstance(item, CustomerRow)]


# -- good rows ----------------------------------------------------------------------------


def test_a_good_row_becomes_its_primary_key_and_typed_attributes() -> None:
    text = (
        "email,age,vip,tags,plan,seen_at,city,nickname\n"
        'ada@example.com,36,yes,"[""beta""]","{""tier"": ""pro""}",2024-03-15T02:31:05Z,'
        "London,Countess\n"
    )

    items = read(text)

    assert items == [
        CustomerRow(
            2,
            "ada@example.com",
            {
                "age": 36,
                "vip": True,
                "tags": ["beta"],
                "plan": {"tier": "pro"},
                "seen_at": "2024-03-15T02:31:05Z",
                "city": "London",
                "nickname": "Countess",
            },
        )
    ]


@pytest.mark.parametrize(
    ("column", "cell", "value"),
    [
        ("age", "42", 42),
        ("age", "-7", -7),
        ("age", " 12 ", 12),
        ("age", "-3.5", -3.5),
        ("age", ".5", 0.5),
        ("age", "1e3", 1000.0),
        ("age", "9223372036854775807", 2**63 - 1),
        ("vip", "true", True),
        ("vip", "FALSE", False),
        ("vip", "Yes", True),
        ("vip", "no", False),
        ("vip", "1", True),
        ("vip", "0", False),
        ("tags", "[]", []),
        ("tags", '["a", 1, null]', ["a", 1, None]),
        ("plan", '{"tier": "pro", "seats": 3}', {"tier": "pro", "seats": 3}),
        ("seen_at", "2024-03-15", "2024-03-15"),
        ("seen_at", "2024-03-15T02:31:05.295+02:00", "2024-03-15T02:31:05.295+02:00"),
        ("city", "  spaced  ", "  spaced  "),
        ("city", "42", "42"),
        ("nickname", "42", "42"),
        ("nickname", "true", "true"),
    ],
)
def test_a_cell_takes_the_type_its_column_is_declared_with(
    column: str, cell: str, value: Any
) -> None:
    items = read(csv_text(["email", column], ["ada@example.com", cell]))

    assert items == [CustomerRow(2, "ada@example.com", {column: value})]


def test_an_empty_cell_sets_nothing() -> None:
    items = read("email,age,city\nada@example.com,,\n")

    assert items == [CustomerRow(2, "ada@example.com", {})]


def test_a_number_primary_key_is_a_number() -> None:
    schema = CustomerSchema("user_id", {"user_id": AttributeType.NUMBER})

    items = read("user_id,name\n7,Ada\n", schema)

    assert items == [CustomerRow(2, 7, {"name": "Ada"})]


def test_unicode_names_and_values_are_kept() -> None:
    text = "email,prénom,城市\nzoë@example.com,Zoë 👩‍🚀,北京\n"

    items = read(text)

    assert items == [CustomerRow(2, "zoë@example.com", {"prénom": "Zoë 👩‍🚀", "城市": "北京"})]


def test_a_quoted_cell_keeps_commas_quotes_and_line_breaks_and_counts_as_one_row() -> None:
    text = 'email,city\na@example.com,"Paris, ""France""\nEurope"\nb@example.com,Oslo\n'

    items = read(text)

    assert items == [
        CustomerRow(2, "a@example.com", {"city": 'Paris, "France"\nEurope'}),
        CustomerRow(3, "b@example.com", {"city": "Oslo"}),
    ]


def test_a_huge_cell_under_the_csv_limit_is_imported() -> None:
    huge = "x" * (MAX_CELL_CHARS - 1)

    items = read(f"email,bio\nada@example.com,{huge}\n")

    assert items == [CustomerRow(2, "ada@example.com", {"bio": huge})]


def test_blank_lines_are_skipped_but_counted_in_row_numbers() -> None:
    text = "email\n\na@example.com\n,\nb@example.com\n"

    items = read(text)

    assert items == [CustomerRow(3, "a@example.com", {}), CustomerRow(5, "b@example.com", {})]


def test_header_names_are_trimmed() -> None:
    items = read(" email , city\nada@example.com,Oslo\n")

    assert items == [CustomerRow(2, "ada@example.com", {"city": "Oslo"})]


# -- rejected cells -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "cell", "fragments"),
    [
        ("age", "4x", ["'4x' is not a number", "like 42 or -3.5"]),
        ("age", "1,5", ["'1,5' is not a number", "a '.' for decimals"]),
        ("age", "nan", ["'nan' is not a number"]),
        ("age", "true", ["'true' is not a number"]),
        ("age", "9223372036854775808", ["too large for a whole number", "declare the column"]),
        ("age", "9" * 5000, ["too large for a whole number"]),
        ("age", "1e999", ["'1e999' is too large a number"]),
        ("vip", "maybe", ["'maybe' is not a boolean", "true or false"]),
        ("tags", "[1", ["'[1' is not JSON", 'like ["a", "b"]']),
        ("tags", "beta", ["'beta' is not JSON"]),
        ("tags", '{"a": 1}', ["is an object, not an array", 'like ["a", "b"]']),
        ("plan", "[]", ["'[]' is an array, not an object", 'like {"plan": "pro"}']),
        ("email", "ada", ["'ada' is not an email address", "like ada@example.com"]),
        ("seen_at", "yesterday", ["'yesterday' is not an ISO-8601 datetime"]),
    ],
)
def test_a_cell_that_does_not_fit_its_type_rejects_the_row_naming_value_and_fix(
    column: str, cell: str, fragments: list[str]
) -> None:
    header, cells = (
        (["email"], [cell]) if column == "email" else (["email", column], ["a@b.co", cell])
    )

    items = read(csv_text(header, cells))

    [(row, rejected_column, reason)] = rejections(items)
    assert (row, rejected_column) == (2, column)
    for fragment in fragments:
        assert fragment in reason


def test_every_bad_cell_of_a_row_is_reported() -> None:
    items = read("email,age,vip\nnot-an-email,old,maybe\n")

    assert [(row, column) for row, column, _ in rejections(items)] == [
        (2, "email"),
        (2, "age"),
        (2, "vip"),
    ]


def test_a_long_value_is_shortened_in_the_reason() -> None:
    items = read(f"email,age\nada@example.com,{'9' * 30}x{'9' * 30}\n")

    [(_, _, reason)] = rejections(items)
    assert "..." in reason
    assert len(reason) < 150


@pytest.mark.parametrize("cell", ["", "   "])
def test_a_row_without_a_primary_key_is_rejected(cell: str) -> None:
    items = read(f"city,email\nOslo,{cell}\n")

    assert rejections(items) == [
        (2, "email", "the primary key 'email' is empty; every row needs one")
    ]


def test_a_primary_key_longer_than_the_store_indexes_is_rejected() -> None:
    schema = CustomerSchema("user_id", {"user_id": AttributeType.STRING})

    items = read(f"user_id\n{'k' * 513}\n", schema)

    [(row, column, reason)] = rejections(items)
    assert (row, column) == (2, "user_id")
    assert "513 characters long; a primary key is at most 512" in reason


def test_a_repeated_primary_key_rejects_the_later_rows_naming_the_first() -> None:
    text = (
        "email,city\na@example.com,Oslo\nb@example.com,Rome\na@example.com,Lima\na@example.com,\n"
    )

    items = read(text)

    assert [item.row for item in imported(items)] == [2, 3]
    reason = "email 'a@example.com' already appears in row 2; keep one row per customer"
    assert [(row, column) for row, column, _ in rejections(items)] == [(4, "email"), (5, "email")]
    assert all(found.startswith(reason) for _, _, found in rejections(items))


def test_numbers_that_are_equal_are_the_same_primary_key() -> None:
    schema = CustomerSchema("user_id", {"user_id": AttributeType.NUMBER})

    items = read("user_id\n7\n7.0\n", schema)

    assert [(row, column) for row, column, _ in rejections(items)] == [(3, "user_id")]


def test_a_rejected_row_still_claims_its_primary_key() -> None:
    items = read("email,age\na@example.com,old\na@example.com,36\n")

    assert imported(items) == []
    assert [(row, column) for row, column, _ in rejections(items)] == [(2, "age"), (3, "email")]


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        (
            "a@example.com,Oslo,extra",
            "the row has 3 cells but the header has 2 columns; put quotes",
        ),
        ("a@example.com", "the row has 1 cells but the header has 2 columns; add the missing"),
    ],
)
def test_a_row_with_too_many_or_too_few_cells_is_rejected(line: str, fragment: str) -> None:
    items = read(f"email,city\n{line}\nb@example.com,Rome\n")

    [(row, column, reason)] = rejections(items)
    assert (row, column) == (2, None)
    assert fragment in reason
    assert [item.row for item in imported(items)] == [3]


# -- unreadable CSV -----------------------------------------------------------------------


def test_text_after_a_closing_quote_rejects_that_row_and_reading_goes_on() -> None:
    items = read('email,city\na@example.com,"Paris"x\nb@example.com,Rome\n')

    [(row, column, reason)] = rejections(items)
    assert (row, column) == (2, None)
    assert reason.startswith("line 2 cannot be read as CSV: a quoted cell has text after")
    assert [item.row for item in imported(items)] == [3]


def test_an_unclosed_quote_stops_reading_and_the_rows_before_it_are_kept() -> None:
    text = 'email,city\na@example.com,Oslo\nb@example.com,"Rome\nc@example.com,Lima\n'

    items = read(text)

    assert [item.row for item in imported(items)] == [2]
    [(row, column, reason)] = rejections(items)
    assert (row, column) == (3, None)
    assert reason.startswith("lines 3-4 cannot be read as CSV: a quote is never closed")


def test_a_cell_over_the_csv_limit_rejects_its_row_and_reading_goes_on() -> None:
    huge = "x" * (MAX_CELL_CHARS + 1)

    items = read(f"email,bio\na@example.com,{huge}\nb@example.com,short\n")

    [(row, column, reason)] = rejections(items)
    assert (row, column) == (2, None)
    assert f"a cell is longer than {MAX_CELL_CHARS} characters" in reason
    assert [item.row for item in imported(items)] == [3]


def test_another_csv_error_is_reported_as_the_csv_module_tells_it() -> None:
    items = list(CustomerCsv(["email\n", "a@example.com\rb\n", "c@example.com\n"], SCHEMA))

    [(row, column, reason)] = rejections(items)
    assert (row, column) == (2, None)
    assert reason.startswith("line 2 cannot be read as CSV: new-line character seen")
    assert [item.row for item in imported(items)] == [3]


# -- bytes: encodings and line endings ------------------------------------------------------


def test_a_utf8_bom_is_dropped_from_the_first_column_name() -> None:
    items = read_bytes("\ufeffemail,city\nada@example.com,Zürich\n".encode())

    assert items == [CustomerRow(2, "ada@example.com", {"city": "Zürich"})]


def test_a_bom_left_in_decoded_text_is_dropped_too() -> None:
    items = read("\ufeffemail\nada@example.com\n")

    assert items == [CustomerRow(2, "ada@example.com", {})]


def test_a_cell_that_is_not_utf8_rejects_its_row_naming_column_and_byte() -> None:
    data = b"email,city\na@example.com,Z\xfcrich\nb@example.com,Z\xc3\xbcrich\n"

    items = read_bytes(data)

    assert rejections(items) == [
        (
            2,
            "city",
            "byte 0xFC (character 2 of the cell) is not UTF-8; save the file as UTF-8 "
            "(Excel: 'CSV UTF-8') and import it again",
        )
    ]
    assert imported(items) == [CustomerRow(3, "b@example.com", {"city": "Zürich"})]


def test_a_header_that_is_not_utf8_cannot_be_used() -> None:
    with pytest.raises(InvalidRequest, match="column 2 holds byte 0xE9, which is not UTF-8"):
        read_bytes(b"email,pr\xe9nom\na@example.com,Ada\n")


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_any_line_ending_is_read(newline: bytes) -> None:
    data = newline.join([b"email,city", b"a@example.com,Oslo", b'b@example.com,"Ro' + newline])

    items = read_bytes(data + b'me"' + newline)

    assert items == [
        CustomerRow(2, "a@example.com", {"city": "Oslo"}),
        CustomerRow(3, "b@example.com", {"city": f"Ro{newline.decode()}me"}),
    ]


def test_decoding_leaves_the_stream_open() -> None:
    stream = io.BytesIO(b"email\na@example.com\n")

    list(CustomerCsv(decode_lines(stream), SCHEMA))

    assert not stream.closed


# -- unusable headers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("", ["The file is empty", "'email', the primary key"]),
        ("\nemail\n", ["its first line is blank"]),
        ("name,city\nAda,Oslo\n", ["no 'email' column", "Columns found: 'name', 'city'"]),
        ("email;city\na@example.com;Oslo\n", ["no 'email' column", "separated by ';'"]),
        ("email,,city\n", ["column 2 has no name"]),
        ("email,city,city\n", ["column 3 repeats 'city' (column 2)"]),
        ('email,"city\n', ["The header (row 1): line 1 cannot be read as CSV"]),
    ],
)
def test_an_unusable_header_is_refused_saying_what_to_fix(text: str, fragments: list[str]) -> None:
    with pytest.raises(InvalidRequest) as raised:
        read(text)

    for fragment in fragments:
        assert fragment in raised.value.message


def test_a_workspace_without_a_primary_key_cannot_import() -> None:
    schema = CustomerSchema(None, {"email": AttributeType.EMAIL})

    with pytest.raises(InvalidRequest, match="set-primary-key"):
        read("email\na@example.com\n", schema)


def test_the_columns_are_known_once_the_header_is_read() -> None:
    customers = CustomerCsv(["email,city\n"], SCHEMA)

    assert customers.columns == ("email", "city")
    assert list(customers) == []


def test_a_problem_without_a_column_is_about_the_whole_row() -> None:
    items = read("email,city\na@example.com\n")

    assert items == [
        RejectedRow(
            2,
            (
                Problem(
                    None,
                    "the row has 1 cells but the header has 2 columns; add the missing cells "
                    "(they may be empty: a,,c)",
                ),
            ),
        )
    ]
