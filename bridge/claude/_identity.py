"""Who a Claude Code session is on the bridge.

Every session reads the inbox of one agent name (``claude``), but claims and
answers under a name of its own, ``claude.<first 8 characters of its session
id>``: two sessions (or a session and the headless worker, ``claude.worker``)
then exclude each other, since a claim by the same name only extends itself.
The MCP server learns the session id from ``CLAUDE_CODE_SESSION_ID`` (Claude
Code sets it for the servers it starts) and the hooks from their stdin, so both
arrive at the same name.
"""

from __future__ import annotations

import re

from ..format import validate_agent_name

__all__ = ["ON_BEHALF", "session_identity"]

ON_BEHALF = "on_behalf"
"""The metadata key naming the agent a session speaks for (Kami shows that name)."""

_NOT_TAG = re.compile(r"[^a-z0-9]")


def session_identity(agent: str, session_id: str | None) -> str:
    """``agent.<tag>`` for a session id, or ``agent`` itself when there is none."""
    tag = _NOT_TAG.sub("", (session_id or "").lower())[:8]
    if not tag:
        return agent
    return validate_agent_name(f"{agent[: 64 - len(tag) - 1]}.{tag}", "session identity")
