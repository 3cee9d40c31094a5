"""The real Claude Code CLI in tests: where `make sysdeps` put it, and an offline environment.

The CLI runs against :class:`bridge.testing.messages_api.FakeMessagesAPI` with a
throwaway ``HOME``; ``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1`` alone stops
every outbound connection but the API calls (telemetry, update checks), and
``MCP_CONNECTION_NONBLOCKING=0`` makes it wait for MCP servers before the first
request, so their tools exist on the first turn.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from bridge.testing.messages_api import FakeMessagesAPI

ROOT = Path(__file__).resolve().parent.parent
CLAUDE_BIN = ROOT / ".tools" / "claude-code" / "node_modules" / ".bin" / "claude"
CLAUDE_VERSION = "2.1.197"
API_KEY = "sk-ant-test-0000"
"""The fake's key: the CLI reads it from ANTHROPIC_API_KEY and needs no login then."""


def require_claude() -> Path:
    """The installed CLI; skip without it, except under CI=true (then fail)."""
    if CLAUDE_BIN.exists() and os.access(CLAUDE_BIN, os.X_OK):
        return CLAUDE_BIN
    if os.environ.get("CI") == "true":
        pytest.fail(f"the Claude Code CLI is required under CI=true: {CLAUDE_BIN} "
                    "(make sysdeps runs scripts/install-claude-code.sh)")
    pytest.skip("the Claude Code CLI is not installed (run scripts/install-claude-code.sh)")


def claude_env(home: Path, api: FakeMessagesAPI, **extra: str) -> dict[str, str]:
    """An environment for ``claude`` that talks only to ``api`` (nothing of the caller's)."""
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": f"{CLAUDE_BIN.parent}:{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "ANTHROPIC_API_KEY": api.api_key,
        "ANTHROPIC_BASE_URL": api.url,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "MCP_CONNECTION_NONBLOCKING": "0",
    }
    env.update(extra)
    return env
