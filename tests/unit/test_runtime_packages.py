"""Runtime packages ship only what production runs: no module of `shared/` or `services/*`
imports the development member (`ytmaker_dev`) or the test tree (`tests`), and no runtime
member depends on `ytmaker-dev`. Development tools may import runtime packages, never the
other way round."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = frozenset({"ytmaker_dev", "tests"})
IMPORT_FUNCTIONS = frozenset({"import_module", "__import__"})


def runtime_members() -> list[Path]:
    """The workspace members that service images install: `shared/` and every service."""
    return [
        ROOT / "shared",
        *sorted(p.parent for p in (ROOT / "services").glob("*/pyproject.toml")),
    ]


def imported_modules(source: str) -> list[tuple[int, str]]:
    """`(line, module)` for every absolute import in *source*: `import`, `from ... import`
    (relative ones are inside the package) and `importlib.import_module` / `__import__` with a
    literal name."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            first = node.args[0]
            if (
                name in IMPORT_FUNCTIONS
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
            ):
                found.append((node.lineno, first.value))
    return found


def forbidden_imports(source: str) -> list[tuple[int, str]]:
    """The imports of *source* whose top-level package is a development one."""
    return [(line, m) for line, m in imported_modules(source) if m.split(".")[0] in FORBIDDEN]


@pytest.mark.parametrize(
    "source",
    [
        "import ytmaker_dev",
        "from ytmaker_dev.kafka import LocalKafka",
        "import os, ytmaker_dev.scenario as s",
        "from tests.support.wait import wait_until",
        "import tests",
        "def f():\n    from ytmaker_dev import layout\n",
        "if TYPE_CHECKING:\n    from tests.support.kafka import unique_name\n",
        "import importlib\nimportlib.import_module('ytmaker_dev.kafka')",
        "__import__('tests.support')",
    ],
)
def test_a_development_import_is_found(source: str) -> None:
    assert forbidden_imports(source), source


@pytest.mark.parametrize(
    "source",
    [
        "from . import tests",
        "from .tests import helper",
        "import ytmaker_devices",
        "from ytmaker_shared import dev",
        "import testsuite",
        "name = 'ytmaker_dev.kafka'",
    ],
)
def test_a_runtime_import_is_not_found(source: str) -> None:
    assert forbidden_imports(source) == []


def test_no_runtime_package_imports_development_code() -> None:
    members = runtime_members()
    assert {m.name for m in members} >= {"shared", "progress", "gateway"}, members
    offences: list[str] = []
    for member in members:
        files = sorted((member / "src").rglob("*.py"))
        assert files, f"{member.relative_to(ROOT)}/src holds no Python module"
        for path in files:
            for line, module in forbidden_imports(path.read_text(encoding="utf-8")):
                offences.append(f"{path.relative_to(ROOT)}:{line}: imports {module}")
    assert offences == [], "runtime code imports development code:\n" + "\n".join(offences)


def test_no_runtime_member_depends_on_the_development_member() -> None:
    for member in runtime_members():
        project = tomllib.loads((member / "pyproject.toml").read_text(encoding="utf-8"))["project"]
        names = {canonicalize_name(Requirement(d).name) for d in project.get("dependencies", [])}
        assert "ytmaker-dev" not in names, f"{member.relative_to(ROOT)} depends on ytmaker-dev"
