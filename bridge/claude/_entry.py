"""Dispatch of ``hook`` and ``mcp`` before any CLI framework is imported.

``bridge hook …`` runs on every Claude Code prompt: the ``bridge`` console
script (``cli_entry``) sends it here without importing typer or rich.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["run_fast_path", "wants_fast_path"]

USAGE = """usage: bridge hook {session-start|prompt|stop} [--url URL] [--agent NAME]
       bridge mcp [--url URL] [--agent NAME] [--as IDENTITY] [--lease DURATION]
                  [--channel]"""


def wants_fast_path(argv: Sequence[str]) -> bool:
    """``bridge hook EVENT …`` or ``bridge mcp …`` (``--help`` goes to the full CLI)."""
    if "--help" in argv or "-h" in argv:
        return False
    if argv[:1] == ["mcp"]:
        return True
    return len(argv) >= 2 and argv[0] == "hook" and not argv[1].startswith("-")


def run_fast_path(argv: Sequence[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    if argv[0] == "hook":
        from ._hooks import run_hook

        if len(argv) < 2:
            print(USAGE, file=sys.stderr)
            return 0  # a hook never fails the session, not even for a bad command line
        return run_hook(argv[1], argv[2:])
    if argv[0] == "mcp":
        from ._mcp import run_mcp

        return run_mcp(argv[1:])
    print(f"unknown command {argv[0]!r}\n{USAGE}", file=sys.stderr)
    return 2
