"""How the `bridge` command is put together (issue 13): cli.py assembles the command modules'
apps, they share only the leaf cli_common, nothing imports cli.py, and no command asks which
backend class it holds."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CLI, ROOT

COMMAND_MODULES = ("cli_archive", "cli_ops", "cli_claude")
BACKEND_CLASSES = {"Bridge", "RemoteBridge", "SftpBridge", "MemoryBridge", "Follower",
                   "RemoteFollower", "LocalStore"}
"""Names the CLI must not dispatch on: it asks ``b.capabilities`` instead."""
LIBRARY_FUNCTIONS = {"ping", "rotate", "search", "run_doctor", "compute_stats"}
"""Functions of the library that each backend now has as a method."""


def _imports(path: Path) -> set[str]:
    """Every module an import statement of ``path`` names (functions, TYPE_CHECKING too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def _project_files() -> list[Path]:
    files = sorted(ROOT.glob("cli*.py"))
    for package in ("bridge", "kami", "kaylee", "claude_worker"):
        files += sorted(p for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts)
    return files


def test_nothing_imports_cli_but_the_console_script() -> None:
    """cli.py is the top: only cli_entry (``bridge = "cli_entry:main"``) runs it."""
    importers = [str(p.relative_to(ROOT)) for p in _project_files() if "cli" in _imports(p)]
    assert importers == ["cli_entry.py"]


def test_cli_common_is_a_leaf_and_command_modules_import_only_it() -> None:
    cli_modules = {p.stem for p in ROOT.glob("cli*.py")}
    assert "cli_common" in cli_modules
    assert _imports(ROOT / "cli_common.py") & cli_modules == set()
    for name in COMMAND_MODULES:
        assert _imports(ROOT / f"{name}.py") & cli_modules == {"cli_common"}, name
    assert _imports(ROOT / "cli.py") & cli_modules == {"cli_common", *COMMAND_MODULES}


@pytest.mark.parametrize("name", COMMAND_MODULES)
def test_each_command_module_has_its_own_app(name: str) -> None:
    code = (f"import sys, {name}\n"
            f"names = [c.name or c.callback.__name__ for c in {name}.app.registered_commands]\n"
            "groups = [g.name for g in getattr("
            f"{name}.app, 'registered_groups', [])]\n"
            "print('cli' in sys.modules, sorted(names + groups))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True).stdout.split(" ", 1)
    assert out[0] == "False"  # loaded without cli.py
    assert out[1].strip() != "[]"


def test_no_command_asks_which_backend_class_it_holds() -> None:
    """isinstance on a backend class, a backend class named at all, or the library
    functions the backends now offer as methods (ping, rotate, search, doctor, stats)."""
    found = []
    for path in sorted(ROOT.glob("cli*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            name = node.attr if isinstance(node, ast.Attribute) else (
                node.id if isinstance(node, ast.Name) else None)
            if name in BACKEND_CLASSES or (
                    isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id == "lib" and name in LIBRARY_FUNCTIONS):
                found.append(f"{path.name}:{getattr(node, 'lineno', '?')}: {name}")
            if isinstance(node, ast.ImportFrom) and any(
                    a.name in BACKEND_CLASSES | LIBRARY_FUNCTIONS for a in node.names):
                found.append(f"{path.name}:{node.lineno}: import {node.module}")
    assert found == []


def test_open_bridge_opens_what_connect_opens(cli: CLI) -> None:
    """--url takes every scheme connect knows: memory:// is a bridge of this process, not
    the $BRIDGE_DIR the command would otherwise have written to."""
    sent = cli.run("--url", "memory://scratch", "send", "hello", "--to", "claude")
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.startswith("cli-")
    assert not cli.directory.exists()
    bad = cli.run("status", env={"BRIDGE_DURABILITY": "sometimes"})
    assert bad.returncode == 5
    assert bad.stderr == "error: config BRIDGE_DURABILITY: must be always, batch or none\n"
    # A plain path in --url is a local bridge, as in connect().
    other = cli.directory.parent / "other"
    assert cli.run("--url", str(other), "send", "x").returncode == 0
    assert (other / "messages.jsonl").exists()
