"""`herald customers import` as a user runs it: a real process on a SQLite file in tmp_path."""

from __future__ import annotations

import csv
from typing import Any

import pytest

from herald.errors import NotFound
from herald.store.sqlite import SqliteStore
from tests.e2e.conftest import Herald

pytestmark = pytest.mark.slow

PEOPLE = (
    "email,age,vip,city\n"
    "ada@example.com,36,yes,London\n"
    "grace@example.com,old,maybe,Arlington\n"
    "alan@example.com,41,no,Wilmslow\n"
    ",50,no,Nowhere\n"
    "ada@example.com,37,no,Paris\n"
    "edsger@example.com,72\n"
)


def prepare(herald: Herald) -> None:
    """Workspace `default` with `age` a number and `vip` a boolean (`email` is the key)."""
    for args in (
        ("workspaces", "create", "default"),
        ("schema", "add-attribute", "--workspace", "default", "age", "number"),
        ("schema", "add-attribute", "--workspace", "default", "vip", "boolean"),
    ):
        result = herald.cli(*args)
        assert result.returncode == 0, result.stderr


def write(herald: Herald, name: str, content: str | bytes) -> str:
    path = herald.home / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return name


def rejected_rows(stdout: str) -> list[tuple[str, str, str]]:
    """(row, column, reason) of each line of the rejected-rows table."""
    return [
        (row, column, reason)
        for line in stdout.splitlines()
        if line.startswith("│")
        for row, column, reason in [[cell.strip() for cell in line.strip("│").split("│")]]
    ]


async def customers(herald: Herald) -> dict[str, dict[str, Any]]:
    """Every customer of workspace `default`, by email, read straight from the store."""
    store = SqliteStore(herald.database, writer=False)
    await store.start()
    try:
        workspace = await store.get_workspace("default")
        page = await store.search_customers(workspace.id, [], cursor=None, limit=1000)
    finally:
        await store.close()
    return {customer.attributes["email"]: customer.attributes for customer in page.customers}


async def test_good_rows_land_and_each_bad_row_is_reported_by_row_and_column(
    herald: Herald,
) -> None:
    prepare(herald)
    write(herald, "people.csv", PEOPLE)

    result = herald.cli("customers", "import", "people.csv")

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "2 created, 0 updated, 4 rejected" in result.stdout
    assert [(row, column) for row, column, _ in rejected_rows(result.stdout)] == [
        ("3", "age"),
        ("3", "vip"),
        ("5", "email"),
        ("6", "email"),
        ("7", "(row)"),
    ]
    reasons = [reason for _, _, reason in rejected_rows(result.stdout)]
    assert reasons[0] == "'old' is not a number; write one like 42 or -3.5"
    assert "already appears in row 2" in reasons[3]
    assert "the row has 2 cells but the header has 4 columns" in reasons[4]
    assert await customers(herald) == {
        "ada@example.com": {"email": "ada@example.com", "age": 36, "vip": True, "city": "London"},
        "alan@example.com": {
            "email": "alan@example.com",
            "age": 41,
            "vip": False,
            "city": "Wilmslow",
        },
    }


async def test_importing_again_updates_the_customers_instead_of_duplicating_them(
    herald: Herald,
) -> None:
    prepare(herald)
    write(herald, "first.csv", "email,city\nada@example.com,London\nalan@example.com,Wilmslow\n")
    write(herald, "again.csv", "email,city,age\nada@example.com,Paris,\nalan@example.com,,41\n")
    first = herald.cli("customers", "import", "first.csv")

    again = herald.cli("customers", "import", "again.csv", "--batch-size", "1")

    assert (first.returncode, again.returncode) == (0, 0), again.stderr
    assert "2 created, 0 updated, 0 rejected" in first.stdout
    assert "0 created, 2 updated, 0 rejected" in again.stdout
    assert await customers(herald) == {
        "ada@example.com": {"email": "ada@example.com", "city": "Paris"},
        "alan@example.com": {"email": "alan@example.com", "city": "Wilmslow", "age": 41},
    }


async def test_a_customer_is_found_by_the_primary_key_it_was_imported_with(herald: Herald) -> None:
    prepare(herald)
    write(herald, "people.csv", "email,vip\nada@example.com,true\n")

    result = herald.cli("customers", "import", "people.csv", "--workspace", "default")

    assert result.returncode == 0, result.stderr
    store = SqliteStore(herald.database, writer=False)
    await store.start()
    try:
        workspace = await store.get_workspace("default")
        customer = await store.find_customer(workspace, "ada@example.com")
        with pytest.raises(NotFound):
            await store.find_customer(workspace, "grace@example.com")
    finally:
        await store.close()
    assert customer.attributes == {"email": "ada@example.com", "vip": True}


async def test_a_dry_run_checks_every_row_and_writes_nothing(herald: Herald) -> None:
    prepare(herald)
    write(herald, "people.csv", PEOPLE)

    result = herald.cli("customers", "import", "people.csv", "--dry-run")

    assert result.returncode == 1, result.stderr
    assert "2 rows would be imported, 4 rejected; nothing was written" in result.stdout
    assert len(rejected_rows(result.stdout)) == 5
    assert await customers(herald) == {}


async def test_a_clean_file_imports_in_batches_and_exits_zero(herald: Herald) -> None:
    prepare(herald)
    rows = "".join(f"user{number}@example.com,{number}\n" for number in range(25))
    write(herald, "people.csv", "email,age\n" + rows)

    result = herald.cli("customers", "import", "people.csv", "--batch-size", "10")

    assert result.returncode == 0, result.stderr
    assert "25 created, 0 updated, 0 rejected" in result.stdout
    assert "Rejected rows" not in result.stdout
    assert len(await customers(herald)) == 25


def test_errors_csv_lists_every_rejected_row(herald: Herald) -> None:
    prepare(herald)
    write(herald, "people.csv", PEOPLE)

    result = herald.cli("customers", "import", "people.csv", "--errors-csv", "errors.csv")

    assert result.returncode == 1, result.stderr
    with (herald.home / "errors.csv").open(newline="", encoding="utf-8") as errors:
        report = list(csv.reader(errors))
    assert report[0] == ["row", "column", "reason"]
    assert [(row, column) for row, column, _ in report[1:]] == [
        ("3", "age"),
        ("3", "vip"),
        ("5", "email"),
        ("6", "email"),
        ("7", ""),
    ]


async def test_a_bom_is_accepted_and_a_row_that_is_not_utf8_is_rejected_alone(
    herald: Herald,
) -> None:
    prepare(herald)
    content = (
        b"\xef\xbb\xbfemail,city\r\nada@example.com,Z\xfcrich\r\nalan@example.com,Z\xc3\xbcrich\r\n"
    )
    write(herald, "people.csv", content)

    result = herald.cli("customers", "import", "people.csv")

    assert result.returncode == 1, result.stderr
    [(row, column, reason)] = rejected_rows(result.stdout)
    assert (row, column) == ("2", "city")
    assert reason.startswith("byte 0xFC (character 2 of the cell) is not UTF-8")
    assert await customers(herald) == {
        "alan@example.com": {"email": "alan@example.com", "city": "Zürich"}
    }


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("name,city\nAda,London\n", "there is no 'email' column"),
        ("", "The file is empty"),
    ],
)
def test_a_file_without_the_primary_key_column_exits_2_naming_it(
    herald: Herald, content: str, fragment: str
) -> None:
    prepare(herald)
    write(herald, "people.csv", content)

    result = herald.cli("customers", "import", "people.csv")

    assert result.returncode == 2
    assert result.stderr.startswith("error: people.csv: ")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert fragment in result.stderr


def test_a_missing_file_is_a_usage_error(herald: Herald) -> None:
    result = herald.cli("customers", "import", "nowhere.csv")

    assert result.returncode == 2
    assert "nowhere.csv" in result.stderr
    assert "does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_workspace_is_a_usage_error(herald: Herald) -> None:
    prepare(herald)
    write(herald, "people.csv", "email\nada@example.com\n")

    result = herald.cli("customers", "import", "people.csv", "--workspace", "acme")

    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: No workspace named 'acme'; list them with `herald workspaces list`."
    )


def test_help_describes_the_import(herald: Herald) -> None:
    result = herald.cli("customers", "import", "--help")

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: herald customers import [OPTIONS] FILE")
    for option in ("--workspace", "--dry-run", "--batch-size", "--errors-csv"):
        assert option in result.stdout
    assert not herald.database.exists()
