"""The package's shape: imports run one way, no module over 500 lines.

No import cycle between modules; the lower rooms (``data/`` and its subpackages,
``config``, ``device``, ``fileio``, ``errors``) import only the rooms below them, as
docs/architecture.md states; nothing in the package imports a deprecated module path.
The checks read the source with ``ast`` (nothing is imported), so a failure names the
offending modules and the line of each import.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import e2e_recon
from e2e_recon.data import MOVED_MODULES

PACKAGE_DIR = Path(e2e_recon.__file__).resolve().parent
MAX_MODULE_LINES = 500
# Modules known to be over the limit, each with the change that splits it.
SPLIT_PENDING: dict[str, str] = {}


@dataclass(frozen=True)
class Edge:
    """``source`` imports ``target`` at ``line``; ``lazy`` if inside a function."""

    source: str
    target: str
    line: int
    lazy: bool


def package_modules(package_dir: Path = PACKAGE_DIR) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the package."""
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The module a ``from ... import`` names, with relative imports resolved."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


def import_edges(modules: dict[str, Path]) -> list[Edge]:
    """Every import of one package module by another.

    Imports inside functions count (a lazy import is still a dependency, and a
    cycle through one breaks as soon as it is made eager); imports under
    ``if TYPE_CHECKING:`` do not (they never run).
    """
    return [edge for name, path in modules.items() for edge in _module_edges(name, path, modules)]


def _module_edges(name: str, path: Path, modules: dict[str, Path]) -> list[Edge]:
    is_package = path.name == "__init__.py"
    edges: list[Edge] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.orelse:
                    visit(ast.Module(body=[stmt], type_ignores=[]), lazy)
                continue
            targets: list[str] = []
            if isinstance(child, ast.Import):
                targets = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = _absolute(child, name, is_package)
                # `from pkg import mod` imports the submodule; `from mod import f` the module.
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in child.names
                ]
            else:
                inner = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                visit(child, lazy or inner)
                continue
            for target in targets:
                if target in modules and target != name:
                    edges.append(Edge(name, target, child.lineno, lazy))

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), False)
    return edges


def find_cycle(edges: list[Edge]) -> list[Edge]:
    """One import cycle as the list of its edges, or [] if the graph is acyclic."""
    graph: dict[str, list[Edge]] = {}
    for edge in edges:
        graph.setdefault(edge.source, []).append(edge)
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    path: list[Edge] = []  # the imports from the start module to the current one

    def visit(module: str) -> list[Edge]:
        state[module] = 1
        for edge in graph.get(module, []):
            if state.get(edge.target) == 1:
                # The target is on the path: the cycle runs from it back to here.
                start = next((i for i, e in enumerate(path) if e.source == edge.target), 0)
                return [*path[start:], edge]
            if edge.target not in state:
                path.append(edge)
                found = visit(edge.target)
                if found:
                    return found
                path.pop()
        state[module] = 2
        return []

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module)
            if cycle:
                return cycle
    return []


def _describe(cycle: list[Edge]) -> str:
    return "\n".join(
        f"  {e.source} imports {e.target} (line {e.line}{', inside a function' if e.lazy else ''})"
        for e in cycle
    )


def test_the_package_has_no_import_cycle() -> None:
    cycle = find_cycle(import_edges(package_modules()))
    assert not cycle, (
        "Import cycle in e2e_recon (move what both sides need into a third module, "
        "so that the imports run one way):\n" + _describe(cycle)
    )


def _line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_no_module_is_over_500_lines() -> None:
    lengths = {
        str(path.relative_to(PACKAGE_DIR.parent)): len(
            path.read_text(encoding="utf-8").splitlines()
        )
        for path in package_modules().values()
    }
    too_long = {
        name: n for name, n in lengths.items() if n > MAX_MODULE_LINES and name not in SPLIT_PENDING
    }
    assert not too_long, (
        f"Modules over {MAX_MODULE_LINES} lines (split each at a natural seam): "
        + ", ".join(f"{name} ({n} lines)" for name, n in sorted(too_long.items()))
    )
    # A waiver ends with its reason: remove the entry once the module is short.
    done = sorted(name for name in SPLIT_PENDING if lengths.get(name, 0) <= MAX_MODULE_LINES)
    assert not done, f"Remove from SPLIT_PENDING, now at most {MAX_MODULE_LINES} lines: {done}"


def test_the_cycle_finder_names_each_import_of_a_cycle(tmp_path: Path) -> None:
    """The checks above would pass on a broken finder: hold it to a package made here."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from pkg.sub.a import f\n")
    (pkg / "sub" / "a.py").write_text("from . import b\n\ndef f():\n    return b\n")
    (pkg / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from pkg.c import C\n"
        "def g():\n    from pkg.sub.a import f\n    return f\n"
    )
    (pkg / "c.py").write_text("from pkg.sub import b\n")
    modules = package_modules(pkg)
    assert set(modules) == {"pkg", "pkg.sub", "pkg.sub.a", "pkg.sub.b", "pkg.c"}
    edges = import_edges(modules)
    # The TYPE_CHECKING import of pkg.c is not an edge; the lazy one back to a is.
    assert {(e.source, e.target, e.lazy) for e in edges} == {
        ("pkg.sub", "pkg.sub.a", False),
        ("pkg.sub.a", "pkg.sub.b", False),
        ("pkg.sub.b", "pkg.sub.a", True),
        ("pkg.c", "pkg.sub.b", False),
    }
    cycle = find_cycle(edges)
    assert {(e.source, e.target) for e in cycle} == {
        ("pkg.sub.a", "pkg.sub.b"),
        ("pkg.sub.b", "pkg.sub.a"),
    }
    assert "pkg.sub.b imports pkg.sub.a (line 5, inside a function)" in _describe(cycle)
    (pkg / "sub" / "b.py").write_text("X = 1\n")
    assert find_cycle(import_edges(package_modules(pkg))) == []


# -- import direction ------------------------------------------------------------------------

_BASE = ("e2e_recon.config", "e2e_recon.device", "e2e_recon.fileio", "e2e_recon.errors")
#: The lower rooms of the package, each with the rooms it may import (besides itself). A
#: module belongs to the longest room its name starts with; a module in no room sits above
#: all of them (and may import any). The data layer has three rooms: the formats and sets
#: (the modules directly in data/), fetching/ and importing/, which both build on the
#: formats and never on each other. Stated in docs/architecture.md ("Imports run one way").
ROOMS: dict[str, tuple[str, ...]] = {
    "e2e_recon.data": _BASE,
    "e2e_recon.data.fetching": ("e2e_recon.data", *_BASE),
    "e2e_recon.data.importing": ("e2e_recon.data", *_BASE),
    "e2e_recon.config": ("e2e_recon.device", "e2e_recon.fileio", "e2e_recon.errors"),
    "e2e_recon.device": ("e2e_recon.errors",),
    "e2e_recon.fileio": ("e2e_recon.errors",),
    "e2e_recon.errors": (),
}
# Upward imports known and accepted, each with its reason; remove an entry once it is gone.
UPWARD_ALLOWED: dict[tuple[str, str], str] = {
    ("e2e_recon.data.fetching.download", "e2e_recon.evalnets.registry"): (
        "`download eval-nets` asks the registry which networks exist and loads each file "
        "without a published checksum; inside functions only"
    ),
}


def room_of(module: str, rooms: dict[str, tuple[str, ...]]) -> str | None:
    """The longest room whose name is ``module`` or a package above it; None if none."""
    found = [room for room in rooms if module == room or module.startswith(room + ".")]
    return max(found, key=len) if found else None


def direction_violations(
    edges: list[Edge],
    rooms: dict[str, tuple[str, ...]],
    allowed: dict[tuple[str, str], str],
    shims: set[str],
) -> list[Edge]:
    """Imports from a room into one it may not import (a shim's own import is its job)."""
    bad = []
    for edge in edges:
        source = room_of(edge.source, rooms)
        if source is None or edge.source in shims or (edge.source, edge.target) in allowed:
            continue
        target = room_of(edge.target, rooms)
        if target != source and target not in rooms[source]:
            bad.append(edge)
    return bad


def test_the_lower_rooms_import_only_the_rooms_below_them() -> None:
    bad = direction_violations(
        import_edges(package_modules()), ROOMS, UPWARD_ALLOWED, set(MOVED_MODULES)
    )
    assert not bad, (
        "Imports against the direction of the rooms (docs/architecture.md; move what both "
        "sides need into the lower room):\n" + _describe(bad)
    )
    used = {(e.source, e.target) for e in import_edges(package_modules())}
    stale = sorted(pair for pair in UPWARD_ALLOWED if pair not in used)
    assert not stale, f"Remove from UPWARD_ALLOWED, no longer imported: {stale}"


def test_the_package_never_imports_a_deprecated_path() -> None:
    modules = package_modules()
    assert set(MOVED_MODULES) <= set(modules), "each old path keeps its shim for one release"
    assert set(MOVED_MODULES.values()) <= set(modules)
    through_shims = [e for e in import_edges(modules) if e.target in MOVED_MODULES]
    assert not through_shims, "Import the new paths (MOVED_MODULES):\n" + _describe(through_shims)


def test_the_direction_check_names_each_import_against_the_rooms(tmp_path: Path) -> None:
    """The check above would pass on a broken checker: hold it to a package made here."""
    pkg = tmp_path / "pkg"
    for folder in ("data/fetching", "data/importing", "train"):
        (pkg / folder).mkdir(parents=True)
        (pkg / folder / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "errors.py").write_text("")
    (pkg / "data" / "__init__.py").write_text("")
    (pkg / "data" / "bdata.py").write_text("from pkg.errors import E\n")
    (pkg / "data" / "old.py").write_text("from pkg.data.fetching.get import *\n")  # a shim
    (pkg / "data" / "sets.py").write_text("def f():\n    from pkg.data.importing import imp\n")
    (pkg / "data" / "fetching" / "get.py").write_text(
        "from pkg.data import bdata\nfrom pkg.train import loop\n"
    )
    (pkg / "data" / "importing" / "imp.py").write_text(
        "from pkg.data.bdata import B\nfrom pkg.data.fetching import get\n"
    )
    (pkg / "train" / "loop.py").write_text("from pkg.data.importing import imp\n")
    rooms = {
        "pkg.data": ("pkg.errors",),
        "pkg.data.fetching": ("pkg.data", "pkg.errors"),
        "pkg.data.importing": ("pkg.data", "pkg.errors"),
        "pkg.errors": (),
    }
    edges = import_edges(package_modules(pkg))
    bad = direction_violations(edges, rooms, {}, {"pkg.data.old"})
    assert {(e.source, e.target, e.lazy) for e in bad} == {
        ("pkg.data.sets", "pkg.data.importing.imp", True),
        ("pkg.data.fetching.get", "pkg.train.loop", False),
        ("pkg.data.importing.imp", "pkg.data.fetching.get", False),
    }
    allowed = {("pkg.data.fetching.get", "pkg.train.loop"): "known"}
    assert len(direction_violations(edges, rooms, allowed, {"pkg.data.old"})) == 2
    assert ("pkg.data.old", "pkg.data.fetching.get") in {
        (e.source, e.target) for e in direction_violations(edges, rooms, {}, set())
    }
