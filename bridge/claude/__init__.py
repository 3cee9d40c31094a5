"""Claude Code as an agent of the bridge: hooks, an MCP server, and their installation.

- :mod:`bridge.claude._hooks` — ``bridge hook session-start|prompt|stop``: what a
  Claude Code session is told about the requests waiting for it (fast: each runs
  on every prompt, so it imports only the local bridge);
- :mod:`bridge.claude._mcp` — ``bridge mcp``: a stdio MCP server (the official
  ``mcp`` package) whose tools read and answer the bridge;
- :mod:`bridge.claude._install` — ``bridge claude install``: the settings and
  ``.mcp.json`` entries that wire both into a project (or ``~/.claude``).

``python -m bridge.claude mcp|hook …`` runs the first two without the CLI
framework. Importing this package does nothing.
"""

# The names below are imported from their modules on first use (PEP 562), so
# importing this package costs nothing until one of them is asked for.

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._lazy import lazy_attribute

if TYPE_CHECKING:
    from ._entry import (
        run_fast_path,
        wants_fast_path,
    )
    from ._hooks import (
        run_hook,
    )
    from ._install import (
        InstallPlan,
        install,
    )
    from ._mcp import (
        run_mcp,
    )

_EXPORTS: dict[str, str] = {
    "InstallPlan": "._install",
    "install": "._install",
    "run_fast_path": "._entry",
    "run_hook": "._hooks",
    "run_mcp": "._mcp",
    "wants_fast_path": "._entry",
}


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _EXPORTS, name)


__all__ = [
    "InstallPlan",
    "install",
    "run_fast_path",
    "run_hook",
    "run_mcp",
    "wants_fast_path",
]
