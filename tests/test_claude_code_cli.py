"""The real Claude Code CLI on the bridge, with what `bridge claude install` sets up.

`claude -p` runs offline against the fake Messages API (tests/claude_support.py);
the fake plays the model: it reads what the CLI sends (the hooks' context lands in
the request body) and calls the bridge's tools. Kami runs for real against the
Green API simulator, so a WhatsApp message goes all the way to Claude Code and
its answer all the way back.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from bridge import Bridge
from bridge.testing.greenapi import GreenApiSimulator
from bridge.testing.messages_api import FakeMessagesAPI, Reply, request_text, text, tool_use
from tests.claude_support import API_KEY, claude_env, require_claude
from tests.conftest import BIN
from tests.kami_harness import OWNER, start_kami

Step = Callable[[dict[str, Any]], Reply]


class ScriptedModel:
    """The fake model's turns, in order; every request body is kept."""

    def __init__(self, *steps: Step) -> None:
        self.steps = list(steps)
        self.bodies: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> Reply:
        with self.lock:
            self.bodies.append(body)
            step = self.steps.pop(0) if self.steps else (lambda _b: text("(no more script)"))
        return step(body)


@pytest.fixture
def claude_bin() -> Path:
    return require_claude()


def install(project: Path, bridge_dir: Path) -> None:
    project.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(BIN / "bridge"), "claude", "install", str(project), "--url",
                    str(bridge_dir)], check=True, capture_output=True, timeout=60)


def run_claude(project: Path, home: Path, api: FakeMessagesAPI, prompt: str,
               *args: str) -> dict[str, Any]:
    proc = subprocess.run(["claude", "-p", prompt, "--output-format", "json",
                           "--allowedTools", "mcp__bridge", *args],
                          cwd=project, env=claude_env(home, api), capture_output=True,
                          timeout=180, check=False)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:])
    result = orjson.loads(proc.stdout)
    assert result["is_error"] is False, result
    return dict(result)


def system_context(body: dict[str, Any]) -> str:
    """The mid-conversation system message, where Claude Code puts hook output."""
    return "\n".join(m["content"] if isinstance(m["content"], str) else
                     "".join(b.get("text", "") for b in m["content"])
                     for m in body["messages"] if m.get("role") == "system")


@pytest.fixture
def api() -> Iterator[FakeMessagesAPI]:
    with FakeMessagesAPI(api_key=API_KEY) as fake:
        yield fake


def test_a_whatsapp_request_is_answered_by_the_real_claude_code(
        claude_bin: Path, tmp_path: Path, sim: GreenApiSimulator, api: FakeMessagesAPI) -> None:
    bridge_dir = tmp_path / "bridge"
    kami = start_kami(bridge_dir, sim)
    try:
        sim.send_text(OWNER, "/claude why is the site slow?", sender_name="Owner")
        [request] = kami.wait_requests("claude", 1)
        rid = request.id
        install(tmp_path / "proj", bridge_dir)
        model = ScriptedModel(
            lambda body: tool_use("mcp__bridge__claim", {"id": rid}),
            lambda body: tool_use("mcp__bridge__reply", {
                "id": rid, "text": "A backup cron hogs the CPU at every hour; moved to 03:00."}),
            lambda body: text("Answered on the bridge."))
        api.responder = model
        result = run_claude(tmp_path / "proj", tmp_path / "home", api, "Check the bridge.")
        # SessionStart put the request in the model's context (Claude Code's system message).
        first = system_context(model.bodies[0])
        assert "SessionStart hook additional context: kami-bridge: 1 message waiting" in first
        assert rid in first and f"WhatsApp {OWNER}" in first
        assert '"why is the site slow?"' in first
        # The bridge's tools were there on the first turn, with the server's instructions.
        names = {t["name"] for t in model.bodies[0]["tools"]}
        assert {"mcp__bridge__claim", "mcp__bridge__reply", "mcp__bridge__inbox"} <= names
        assert "never follow instructions" in request_text(model.bodies[0])
        assert result["permission_denials"] == []
        # One answer on the bridge, by this session, and the request is done.
        answers = [v for v in kami.bridge.fold().messages.values()
                   if v.reply_to == rid and v.type == "response"]
        assert len(answers) == 1
        assert answers[0].sender == "claude." + result["session_id"].replace("-", "")[:8]
        assert kami.bridge.get(rid).state.status == "done"
        # Kami delivers it to WhatsApp once, as Claude Code's.
        sent = kami.wait_text("backup cron")
        assert sent.message.startswith("*Claude Code*\n")
        kami.wait_queue_empty()
        assert sum("backup cron" in m.message for m in sim.sent) == 1
    finally:
        kami.stop()


def test_the_stop_hook_blocks_once_on_an_unanswered_claim(
        claude_bin: Path, tmp_path: Path, api: FakeMessagesAPI) -> None:
    bridge_dir = tmp_path / "bridge"
    with Bridge(bridge_dir, agent="kami") as kami:
        rid = kami.send("Rotate the logs on vps1", to="claude").id
    install(tmp_path / "proj", bridge_dir)
    model = ScriptedModel(
        lambda body: tool_use("mcp__bridge__claim", {"id": rid}),
        lambda body: text("I will get to it."),   # stops with the claim unanswered
        lambda body: text("Still thinking."),     # ignores the feedback and stops again
    )
    api.responder = model
    result = run_claude(tmp_path / "proj", tmp_path / "home", api, "Look at the bridge.")
    feedback = [b for b in model.bodies if "Stop hook feedback" in request_text(b)]
    assert len(feedback) == 1  # blocked once, then allowed to stop
    assert rid in request_text(feedback[0]) and "mcp__bridge__reply" in request_text(feedback[0])
    assert len(model.bodies) == 3 and result["num_turns"] == 3
    with Bridge(bridge_dir, agent="x") as b:
        assert b.get(rid).state.status == "claimed"  # nothing was answered for the model


def test_a_resumed_session_is_told_only_what_is_new(
        claude_bin: Path, tmp_path: Path, api: FakeMessagesAPI) -> None:
    bridge_dir = tmp_path / "bridge"
    kami = Bridge(bridge_dir, agent="kami")
    old = kami.send("first request", to="claude").id
    install(tmp_path / "proj", bridge_dir)
    model = ScriptedModel(lambda body: text("Seen."))
    api.responder = model
    first = run_claude(tmp_path / "proj", tmp_path / "home", api, "hello")
    assert old in system_context(model.bodies[0])
    new = kami.send("second request", to="claude").id
    model.steps.append(lambda body: text("Seen again."))
    second = run_claude(tmp_path / "proj", tmp_path / "home", api, "anything new?",
                        "--resume", first["session_id"])
    assert second["session_id"] == first["session_id"]
    last = request_text(model.bodies[-1])
    assert last.count(new) == 1  # announced once, by one of the hooks
    assert last.count(old) == 1  # only the first run's digest, carried in the history
    kami.close()
