"""Dependencies point inward: herald/core imports only the standard library, msgspec,
herald.core, herald.types and herald.errors (STYLE.md, "Architecture rules")."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "herald" / "core"
ALLOWED_PACKAGES = {"msgspec"}
ALLOWED_MODULES = {"herald.types", "herald.errors"}


def imported_modules(source: str, module: str) -> list[str]:
    """Every module `source` imports, relative imports resolved against `module`."""
    package = module.rsplit(".", 1)[0]
    imported: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.extend(_from_import_targets(node, package))
    return imported


def _from_import_targets(node: ast.ImportFrom, package: str) -> list[str]:
    """`from a import b` imports module a, or submodule a.b when a is only a package here."""
    if node.level == 0:
        module = str(node.module)
    else:
        base = package.rsplit(".", node.level - 1)[0]
        module = f"{base}.{node.module}" if node.module else base
    if is_allowed(module):
        return [module]
    return [f"{module}.{alias.name}" for alias in node.names]


def is_allowed(name: str) -> bool:
    top = name.split(".")[0]
    return (
        top in sys.stdlib_module_names
        or top in ALLOWED_PACKAGES
        or name in ALLOWED_MODULES
        or name.startswith("herald.core.")
        or name == "herald.core"
    )


def forbidden_imports(source: str, module: str) -> list[str]:
    return [name for name in imported_modules(source, module) if not is_allowed(name)]


def core_modules() -> list[Path]:
    return sorted(CORE.rglob("*.py"))


def module_name(path: Path) -> str:
    relative = path.relative_to(CORE.parent.parent).with_suffix("")
    return ".".join(relative.parts)


@pytest.mark.parametrize("path", core_modules(), ids=lambda path: path.name)
def test_core_modules_import_only_the_standard_library_msgspec_and_inner_herald_modules(
    path: Path,
) -> None:
    source = path.read_text()

    forbidden = forbidden_imports(source, module_name(path))

    assert forbidden == [], (
        f"{path.name} imports {forbidden}: core/ may import only the standard library, "
        "msgspec, herald.core.*, herald.types and herald.errors; move the dependency to an adapter."
    )


def test_the_core_modules_are_found() -> None:
    names = {path.name for path in core_modules()}

    assert {"events.py", "schema.py", "keys.py"} <= names


@pytest.mark.parametrize(
    "source",
    [
        "import httpx",
        "import sqlite3.dbapi2 as db, starlette",
        "from starlette.requests import Request",
        "from herald.store import base",
        "from herald.settings import Settings",
        "import herald",
        "from herald import api",
        "from .. import settings",
        "from ..api.app import create_app",
        "def later():\n    import uvicorn",
        "if TYPE_CHECKING:\n    from herald.store.base import Store",
    ],
)
def test_the_import_rule_catches_outward_dependencies(source: str) -> None:
    forbidden = forbidden_imports(source, "herald.core.events")

    assert forbidden != []


@pytest.mark.parametrize(
    "source",
    [
        "from __future__ import annotations",
        "import re, zlib\nfrom collections.abc import Callable",
        "import msgspec.json",
        "from msgspec import Struct",
        "from herald.core.schema import CustomerSchema",
        "from herald.core import schema",
        "from . import schema",
        "from .schema import CustomerSchema",
        "from herald.errors import InvalidJSON",
        "from ..types import JSONObject",
        "import herald.types",
        "from herald import errors, types",
    ],
)
def test_the_import_rule_allows_inward_dependencies(source: str) -> None:
    forbidden = forbidden_imports(source, "herald.core.events")

    assert forbidden == []
