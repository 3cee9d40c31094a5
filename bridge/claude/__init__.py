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

from __future__ import annotations

__all__: list[str] = []
