"""The shape of the code that a newcomer relies on: small modules and functions, no SQL
in the pipelines, one composition root, and a README map that matches the tree."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "ey_platform"
MODULES = sorted(PACKAGE.rglob("*.py"))
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 50
# Words that begin a statement of the warehouse's SQL, as they would in a string.
SQL = re.compile(r"\b(SELECT|INSERT INTO|UPDATE|DELETE FROM|MERGE INTO|CREATE TABLE)\b")


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _functions(tree: ast.AST) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def test_no_module_is_over_400_lines() -> None:
    long = {_name(p): n for p in MODULES if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}


def test_no_function_is_over_50_lines() -> None:
    long = [
        f"{_name(path)}:{fn.lineno} {fn.name} ({length} lines)"
        for path in MODULES
        for fn in _functions(ast.parse(path.read_text()))
        if (length := (fn.end_lineno or fn.lineno) - fn.lineno + 1) > MAX_FUNCTION_LINES
    ]
    assert long == []


def test_the_pipelines_write_no_sql() -> None:
    found = [
        f"{_name(path)}:{node.lineno}"
        for path in sorted((PACKAGE / "pipelines").rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value)
    ]
    assert found == []


def test_the_pipelines_are_built_in_the_composition_root_only() -> None:
    """Outside ``wiring.py`` no module of the product constructs a pipeline."""
    built = re.compile(r"\b(BatchPipeline|CartPoller|CartConsumer|SQLitePollerState)\(")
    found = [
        f"{_name(path)}:{number}"
        for path in MODULES
        if path.name != "wiring.py" and "pipelines" not in path.parts
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if built.search(line) and not line.lstrip().startswith(("class ", "#"))
    ]
    assert found == []


def _readme_map() -> list[tuple[list[str], str]]:
    """The rows of the README's "Where each part lives": (paths, what)."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Where each part lives", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("`"):
            rows.append((re.findall(r"`([^`]+)`", cells[0]), cells[1]))
    return rows


def test_every_path_of_the_readme_map_exists() -> None:
    missing = [path for paths, _ in _readme_map() for path in paths if not (ROOT / path).exists()]
    assert missing == []


def test_the_readme_map_names_every_module_of_the_package() -> None:
    rows = _readme_map()
    named: set[Path] = set()
    for paths, what in rows:
        for path in paths:
            named.add((ROOT / path).resolve())
            folder = ROOT / path
            if folder.is_dir():  # the modules it lists, e.g. `base.py` or `duckdb/`
                for item in re.findall(r"`([\w.]+/?)`", what):
                    if item.endswith((".py", "/")):
                        named.add((folder / item.rstrip("/")).resolve())
    unnamed = []
    for item in sorted(PACKAGE.iterdir()):
        if item.name.startswith(("_", ".")) or item.name.endswith(".egg-info"):
            continue
        if item.suffix == ".py" or (item.is_dir() and (item / "__init__.py").exists()):
            inside = any(item.resolve() in (n, *n.parents) for n in named)
            if not inside:
                unnamed.append(_name(item))
    assert unnamed == []


@pytest.mark.parametrize("folder", ["pipelines", "warehouse", "bus", "lake", "cli", "state"])
def test_the_readme_map_lists_what_each_folder_holds(folder: str) -> None:
    (what,) = [w for paths, w in _readme_map() if f"src/ey_platform/{folder}/" in paths]
    listed = {item.rstrip("/") for item in re.findall(r"`([\w.]+(?:\.py|\.json|/))`", what)}
    present = {
        p.name
        for p in (PACKAGE / folder).iterdir()
        if (p.suffix == ".py" and p.name != "__init__.py")
        or (p.is_dir() and (p / "__init__.py").exists())
    }
    assert present <= listed, f"not in the README's map: {sorted(present - listed)}"
    anywhere = {p.name for p in (PACKAGE / folder).rglob("*")}  # a subpackage's too
    assert listed <= anywhere, f"in the README's map, not in the tree: {sorted(listed - anywhere)}"
