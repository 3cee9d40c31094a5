"""The shape of the code: no import circles, private modules used only where they live,
and ``import bridge`` staying light.

The import graph is read with ``ast`` from the source (nothing is imported): every
``import`` statement counts, at module level, inside functions and under
``if TYPE_CHECKING:`` alike, because each is a dependency someone has to keep in
their head. An ``__init__`` that loads its submodules lazily by name (the
``_EXPORTS`` table of bridge/__init__.py) names strings, not imports: no edge.
"""

from __future__ import annotations

import ast
import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = ("bridge", "kami", "kaylee", "claude_worker")
"""The project's packages; with the top-level ``cli*.py`` modules, the code under test."""

EXEMPT = ("tests", "bench", "scripts")
"""Directories whose code may import private modules (they test or measure the insides)."""


@dataclass(frozen=True)
class Edge:
    importer: str
    imported: str
    path: Path
    line: int

    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def project_modules() -> dict[str, Path]:
    """Every module of the project by dotted name (a package by its ``__init__.py``)."""
    out: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    for path in sorted(ROOT.glob("cli*.py")):
        out[path.stem] = path
    return out


def _package_of(module: str, path: Path) -> str:
    """The package a module's relative imports start from."""
    if path.name == "__init__.py":
        return module
    return module.rpartition(".")[0]


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str | None:
    """The absolute name ``from <...> import`` refers to (None: beyond the top)."""
    if node.level == 0:
        return node.module
    base = _package_of(module, path).split(".") if _package_of(module, path) else []
    if node.level - 1 > len(base) or (node.level - 1 == len(base) and not node.module):
        return None
    base = base[:len(base) - (node.level - 1)]
    if node.module:
        base.append(node.module)
    return ".".join(base) or None


def import_edges(modules: dict[str, Path]) -> Iterator[Edge]:
    """One edge per imported project module, from every import statement in the file."""
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in modules:
                        yield Edge(module, alias.name, path, node.lineno)
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(module, path, node)
                if target is None:
                    continue
                whole = False
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    if alias.name != "*" and sub in modules:
                        # ``from pkg import submodule``: an edge to the submodule itself.
                        yield Edge(module, sub, path, node.lineno)
                    else:
                        whole = True
                if whole and target in modules:
                    yield Edge(module, target, path, node.lineno)


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components with more than one module, or a module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def a_cycle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One circle through the component's first module (shortest, by breadth-first search)."""
    start, members = component[0], set(component)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph.get(v, set()) & members):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [*reversed(path), start]
                if w not in parents:
                    parents[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle through {start}")  # pragma: no cover - it is a component


def private_scope(module: str) -> str | None:
    """The package a private module may be imported from (None: the module is public).

    A module is private when a name in its path starts with ``_`` (not ``__init__``-like
    dunders): ``A.B._x`` belongs to ``A.B``, and so does everything under ``A.B._x``.
    """
    parts = module.split(".")
    for i in range(len(parts) - 1, -1, -1):
        name = parts[i]
        if name.startswith("_") and not (name.startswith("__") and name.endswith("__")):
            return ".".join(parts[:i])
    return None


def inside(module: str, package: str) -> bool:
    return package in ("", module) or module.startswith(package + ".")


def test_no_import_circles() -> None:
    modules = project_modules()
    edges = list(import_edges(modules))
    graph: dict[str, set[str]] = {m: set() for m in modules}
    where: dict[tuple[str, str], str] = {}
    for e in edges:
        graph[e.importer].add(e.imported)
        where.setdefault((e.importer, e.imported), e.where())
    components = strongly_connected(graph)
    report = []
    for component in components:
        cycle = a_cycle(graph, component)
        steps = "\n".join(f"      {a} -> {b}  ({where[(a, b)]})"
                          for a, b in itertools.pairwise(cycle))
        report.append(f"  {len(component)} modules in a circle: {', '.join(component)}\n"
                      f"    for example:\n{steps}")
    print("\n".join(report))
    assert not components, f"{len(components)} import circle(s):\n" + "\n".join(report)


def test_private_modules_are_imported_only_inside_their_package() -> None:
    modules = project_modules()
    found: dict[tuple[str, int, str], str] = {}
    for e in import_edges(modules):
        scope = private_scope(e.imported)
        if scope is not None and not inside(e.importer, scope):
            found[(str(e.path.relative_to(ROOT)), e.line, e.imported)] = (
                f"{e.where()}: {e.importer} imports {e.imported} "
                f"(private to {scope or 'the top level'}; use {scope or '-'})")
    violations = [found[k] for k in sorted(found)]
    print("\n".join(violations))
    assert not violations, (f"{len(violations)} import(s) of a private module from outside "
                            "its package:\n" + "\n".join(violations))


def test_the_layout_checks_see_every_kind_of_import(tmp_path: Path) -> None:
    """The graph builder itself, on a small tree: relative, local, TYPE_CHECKING, submodule."""
    files = {
        "pkg/__init__.py": "_EXPORTS = {'Thing': '.sub._impl'}\n",
        "pkg/sub/__init__.py": "from typing import TYPE_CHECKING\n"
                               "if TYPE_CHECKING:\n    from ._impl import Thing\n",
        "pkg/sub/_impl.py": "def f():\n    from .. import other\n",
        "pkg/other.py": "from .sub import _impl\nimport pkg.sub\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    modules = {"pkg": tmp_path / "pkg/__init__.py", "pkg.sub": tmp_path / "pkg/sub/__init__.py",
               "pkg.sub._impl": tmp_path / "pkg/sub/_impl.py",
               "pkg.other": tmp_path / "pkg/other.py"}
    got = {(e.importer, e.imported) for e in import_edges(modules)}
    assert got == {("pkg.sub", "pkg.sub._impl"), ("pkg.sub._impl", "pkg.other"),
                   ("pkg.other", "pkg.sub._impl"), ("pkg.other", "pkg.sub")}
    graph: dict[str, set[str]] = {}
    for a, b in got:
        graph.setdefault(a, set()).add(b)
    assert strongly_connected(graph) == [["pkg.other", "pkg.sub", "pkg.sub._impl"]]
    assert a_cycle(graph, ["pkg.other", "pkg.sub", "pkg.sub._impl"]) == [
        "pkg.other", "pkg.sub._impl", "pkg.other"]
    assert private_scope("pkg.sub._impl") == "pkg.sub"
    assert private_scope("pkg.sub._impl.deep") == "pkg.sub"
    assert private_scope("pkg.__main__") is None
    assert not inside("pkg.other", "pkg.sub") and inside("pkg.sub._impl", "pkg.sub")


def test_importing_bridge_pulls_in_no_ssh_cli_http_or_mcp_library(tmp_path: Path) -> None:
    # tests/test_contract.py checks rich, typer, httpx, anthropic, paramiko and watchdog;
    # this one names the five of issue 13, mcp among them.
    heavy = ("paramiko", "typer", "httpx", "rich", "mcp")
    code = ("import sys\nimport bridge\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r}))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True, env={**env, "PYTHONPATH": str(ROOT)},
                         timeout=60)
    assert out.stdout.strip() == "[]", out.stdout
