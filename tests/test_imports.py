"""The seams between top-level packages, read from the source (every import statement,
type-only and function-level ones included):

- no import cycle between top-level packages;
- gateway/ never imports worker/, nor worker/ gateway/ (they meet in Redis and the queues);
- jobs/ (the specs, the registry, the lifecycle: what the client ships) imports neither the
  edges (gateway/, worker/) nor imagefleet/, billing/, storage/ or the tools.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("imagefleet", "jobs", "billing", "gateway", "worker", "storage", "deploy", "bench")
FORBIDDEN = {
    "gateway": {"worker"},
    "worker": {"gateway"},
    "jobs": {"gateway", "worker", "imagefleet", "billing", "storage", "deploy", "bench"},
}


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def package_edges() -> dict[tuple[str, str], list[str]]:
    """(importer, imported) top-level package -> the files that make the edge."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for module in imported_modules(path):
                top = module.split(".")[0]
                if top in PACKAGES and top != package:
                    edges[(package, top)].append(str(path.relative_to(ROOT)))
    return edges


def find_cycle(edges: set[tuple[str, str]]) -> list[str] | None:
    """A cycle of the package graph as a path (first == last), or None."""
    graph: dict[str, set[str]] = defaultdict(set)
    for source, target in edges:
        graph[source].add(target)
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return [*visiting[visiting.index(node) :], node]
        if node in done:
            return None
        visiting.append(node)
        for target in sorted(graph[node]):
            if cycle := visit(target):
                return cycle
        visiting.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        if cycle := visit(start):
            return cycle
    return None


def test_the_cycle_finder_finds_cycles_and_passes_trees() -> None:
    assert find_cycle({("a", "b"), ("b", "c"), ("c", "a")}) == ["a", "b", "c", "a"]
    assert find_cycle({("a", "b"), ("a", "c"), ("b", "c")}) is None


def test_the_scanner_sees_type_only_and_function_level_imports(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from worker.runner import run_job\n"
        "def f():\n    import gateway.app\n"
    )
    assert {"worker.runner", "gateway.app"} <= imported_modules(source)


def test_no_import_cycle_between_top_level_packages() -> None:
    edges = package_edges()
    cycle = find_cycle(set(edges))
    if cycle:
        where = {f"{a} -> {b}": edges[(a, b)] for a, b in zip(cycle, cycle[1:], strict=False)}
        pytest.fail(f"import cycle {' -> '.join(cycle)}: {where}")


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_none_of_its_forbidden_neighbours(package: str) -> None:
    edges = package_edges()
    broken = {
        target: edges[(package, target)]
        for target in sorted(FORBIDDEN[package])
        if (package, target) in edges
    }
    assert not broken, f"{package}/ must not import {sorted(broken)}: {broken}"
