"""The demo's Claude Code: the real CLI (offline, against a local Messages API) when installed.

A session on "the owner's laptop": whenever requests wait for ``claude``, it runs
``claude -p`` in a project that ``bridge claude install`` set up. The CLI's
SessionStart hook puts the digest of waiting requests in the model's context,
and the bridge's MCP server gives it the tools. The model is local too
(:class:`FakeMessagesAPI`): it reads what the CLI sends, the way a real model
would, and claims the request, then replies with the answer the demo scripts.

Without the CLI (``scripts/install-claude-code.sh`` installs it) the demo says
so and uses the scripted stand-in instead.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from demo_common import ROOT, ScriptedClaude, console

from bridge import Bridge
from bridge.testing.messages_api import FakeMessagesAPI, Reply, text, tool_results, tool_use

CLAUDE_BIN = ROOT / ".tools" / "claude-code" / "node_modules" / ".bin" / "claude"
_WAITING = re.compile(r"^- (\S+) \[request", re.MULTILINE)


def _system_text(body: dict[str, Any]) -> str:
    parts = []
    for m in body.get("messages") or []:
        if m.get("role") == "system":
            content = m.get("content")
            parts.append(content if isinstance(content, str) else
                         "".join(b.get("text", "") for b in content or []))
    return "\n".join(parts)


def demo_model(answer: Callable[[str], str]) -> Callable[[dict[str, Any]], Reply]:
    """A model that works the bridge: claim what the digest lists, then reply."""

    def respond(body: dict[str, Any]) -> Reply:
        results = tool_results(body)
        if results:
            raw = results[-1].get("content")
            if isinstance(raw, list):
                raw = "".join(b.get("text", "") for b in raw if isinstance(b, dict))
            try:
                doc = orjson.loads(raw or "null")
            except orjson.JSONDecodeError:
                doc = None
            if results[-1].get("is_error") or not isinstance(doc, dict):
                return text(f"The bridge said: {raw}")
            if doc.get("status") == "claimed":
                return tool_use("mcp__bridge__reply",
                                {"id": doc["id"], "text": answer(str(doc["content"]))})
            return text(f"Answered {doc.get('reply_to')} on the bridge.")
        waiting = _WAITING.findall(_system_text(body))
        if waiting:
            return tool_use("mcp__bridge__claim", {"id": waiting[0]})
        return text("Nothing waits for me on the bridge.")

    return respond


class ClaudeCodeSession:
    """Runs the real ``claude -p`` whenever a request waits for ``claude`` (not while paused)."""

    def __init__(self, directory: Path, bridge_dir: Path, answer: Callable[[str], str]) -> None:
        self.directory = directory
        self.bridge = Bridge(bridge_dir, agent="claude")
        self.api = FakeMessagesAPI(api_key="sk-ant-demo-0000", responder=demo_model(answer))
        self.project = directory / "laptop-project"
        self.home = directory / "laptop-home"
        self.follower = self.bridge.follow(start="end")
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.runs: list[dict[str, Any]] = []
        self.version = ""

    def start(self) -> None:
        self.project.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)
        bridge_cmd = Path(sys.executable).parent / "bridge"
        subprocess.run([str(bridge_cmd), "claude", "install", str(self.project), "--url",
                        str(self.bridge.directory)], check=True, capture_output=True,
                       timeout=60)
        self.version = subprocess.run([str(CLAUDE_BIN), "--version"], capture_output=True,
                                      text=True, timeout=60, check=True).stdout.split()[0]
        self.api.start()
        self.thread.start()

    def _waiting(self) -> bool:
        if self.bridge.is_paused():
            return False
        return any(v.message.type == "request" and v.state.status == "pending"
                   for v in self.bridge.inbox("claude"))

    def _run_once(self) -> None:
        env = {"PATH": f"{CLAUDE_BIN.parent}:/usr/bin:/bin", "HOME": str(self.home),
               "LANG": "C.UTF-8", "ANTHROPIC_API_KEY": self.api.api_key,
               "ANTHROPIC_BASE_URL": self.api.url,
               "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "MCP_CONNECTION_NONBLOCKING": "0"}
        proc = subprocess.run([str(CLAUDE_BIN), "-p", "Answer what waits for you on the bridge.",
                               "--output-format", "json", "--allowedTools", "mcp__bridge"],
                              cwd=self.project, env=env, capture_output=True, timeout=120,
                              check=False)
        try:
            self.runs.append(orjson.loads(proc.stdout))
        except orjson.JSONDecodeError:
            console.print(f"[red]claude -p exited {proc.returncode}: "
                          f"{proc.stderr.decode(errors='replace')[-300:]}[/]")

    def _loop(self) -> None:
        while not self.follower.stopped:
            # Up to three runs per wake-up: each answers one request; bounded.
            for _ in range(3):
                if self.follower.stopped or not self._waiting():
                    break
                self._run_once()
            for _entry in self.follower.wait(timeout=1.0):
                pass

    def stop(self) -> None:
        self.follower.stop()
        self.thread.join(timeout=150)
        self.follower.close()
        self.api.stop()
        self.bridge.close()


def start_claude_code(directory: Path, bridge_dir: Path, answer: Callable[[str], str]
                      ) -> ClaudeCodeSession | ScriptedClaude:
    """The real CLI if it is installed, else the scripted stand-in (and the demo says which)."""
    if CLAUDE_BIN.exists() and os.access(CLAUDE_BIN, os.X_OK):
        session = ClaudeCodeSession(directory, bridge_dir, answer)
        session.start()
        console.print(f"Claude Code: the real CLI {session.version} in {session.project} "
                      "(hooks and bridge mcp from `bridge claude install`; model: a local "
                      f"Messages API at {session.api.url})")
        return session
    console.print("[yellow]Claude Code CLI not installed (scripts/install-claude-code.sh): "
                  "using the scripted stand-in for Claude Code.[/]")
    scripted = ScriptedClaude(bridge_dir, answer)
    scripted.start()
    return scripted
