"""The house rules that keep the code readable: checked, not hoped for.

- the import contracts in pyproject.toml (no Dagster in the core, layers pointing down,
  no cycles between sibling packages) hold;
- no module imports in a circle, lazily or not, in the product or the simulators;
- the package root holds the entry points only;
- the product wheel ships the product alone.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINTS = {"__init__.py", "cli.py", "config.py", "definitions.py"}


def import_cycles(package: str) -> list[list[str]]:
    """Every strongly connected set of modules (Tarjan), function-level imports included."""
    graph = grimp.build_graph(package)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return cycles


@pytest.mark.parametrize("package", ["datagate_pipelines", "datagate_simulators"])
def test_no_module_imports_in_a_circle(package):
    assert import_cycles(package) == []


def test_the_import_contracts_hold():
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-4000:]


def test_the_package_root_holds_the_entry_points_only():
    modules = {path.name for path in (ROOT / "datagate_pipelines").glob("*.py")}
    assert modules == ENTRY_POINTS


def test_every_package_folder_is_a_package():
    package = ROOT / "datagate_pipelines"
    folders = [
        folder
        for folder in package.rglob("*")
        if folder.is_dir()
        and folder.name != "__pycache__"
        and "migrations" not in folder.relative_to(package).parts
    ]
    assert [f for f in folders if not (f / "__init__.py").exists()] == []


def test_the_wheel_ships_the_product_alone():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wheel = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert wheel["packages"] == ["datagate_pipelines"]
    assert not (ROOT / "datagate_pipelines" / "simulators").exists()
    assert "datagate-simulators" not in " ".join(pyproject["project"]["dependencies"])
    assert "datagate-simulators" in pyproject["dependency-groups"]["dev"]
