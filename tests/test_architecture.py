"""The program's layers, as ARCHITECTURE.md draws them: every import points down a floor, or stays in its package."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

from harness.stack import REPO

OUTSIDE = {"harness", "tests", "bench", "status"}  # packages outside the program: it never imports them


def floors() -> dict[str, int]:
    """Package -> floor, read from ARCHITECTURE.md's table."""
    table = (REPO / "ARCHITECTURE.md").read_text()
    found: dict[str, int] = {}
    for floor, packages in re.findall(r"^\| (\d) \| ([^|]+) \|", table, re.MULTILINE):
        for package in re.findall(r"`(\w+)`", packages):
            found[package] = int(floor)
    return found


def imports(path: Path) -> set[str]:
    """The top-level packages a module imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_the_table_names_every_program_package() -> None:
    table = floors()
    program = {p.parent.name for p in REPO.glob("*/__init__.py")} - OUTSIDE
    assert program == set(table), "a package is missing from ARCHITECTURE.md's table, or the table names a ghost"


def test_every_import_points_down() -> None:
    table = floors()
    wrong = []
    modules = [(path, path.relative_to(REPO).parts[0]) for package in table for path in (REPO / package).rglob("*.py")]
    modules.append((REPO / "__main__.py", "__main__"))
    for path, package in modules:
        floor = table.get(package, max(table.values()) + 1)
        for imported in imports(path) & (set(table) | OUTSIDE):
            if imported == package:
                continue
            if imported not in table:
                wrong.append(f"{path.relative_to(REPO)} imports {imported}, which is not part of the program")
            elif table[imported] >= floor:
                wrong.append(f"{path.relative_to(REPO)} (floor {floor}) imports {imported} (floor {table[imported]})")
    assert wrong == []


def test_mypy_checks_every_package() -> None:
    checked = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mypy"]["files"])
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")}
    assert packages - checked == set(), "add the package to [tool.mypy] files in pyproject.toml"


def _harness_modules() -> dict[str, Path]:
    """harness module name (e.g. harness.fakes.vultr) -> its file."""
    return {
        ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): path
        for path in (REPO / "harness").rglob("*.py")
    }


def _module_imports(path: Path) -> set[str]:
    """Every module a file imports by its full name, type-only imports included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_the_harness_imports_neither_tests_nor_benchmarks() -> None:
    """The harness serves the tests and the benchmarks; it must not lean on either."""
    wrong = [
        f"{path.relative_to(REPO)} imports {package}"
        for path in (REPO / "harness").rglob("*.py")
        for package in imports(path) & {"tests", "bench"}
    ]
    assert wrong == []


def test_the_harness_has_no_import_circle() -> None:
    modules = _harness_modules()
    edges = {name: _module_imports(path) & modules.keys() - {name} for name, path in modules.items()}
    circles = []
    for start in sorted(edges):
        stack: list[tuple[str, tuple[str, ...]]] = [(start, (start,))]
        seen: set[str] = set()
        while stack:
            current, path = stack.pop()
            for following in sorted(edges[current]):
                if following == start:
                    circles.append(" -> ".join((*path, start)))
                elif following not in seen:
                    seen.add(following)
                    stack.append((following, (*path, following)))
    assert circles == []
