"""The headless Claude worker end to end: a request from Kami answered by the real Claude
Code CLI (against the fake Messages API), sessions resumed, what it will not take."""

from __future__ import annotations

import json
import os
import signal
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge import PROTOCOL_VERSION
from bridge.format._ids import ulid
from bridge.format._time import format_ts
from bridge.testing.messages_api import Reply, request_text, text
from tests.claude_support import API_KEY
from tests.helpers import wait_for
from tests.test_claude_worker_support import IDENTITY, OWNER, Harness


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    yield h
    h.close()


def test_answers_a_request_from_kami_end_to_end(harness: Harness) -> None:
    worker = harness.start()
    rid = harness.ask("Why is the site slow?")
    harness.wait_status(rid, "done")

    thread = harness.thread(rid)
    assert [(v.message.type, v.message.sender, v.message.to) for v in thread] == [
        ("notification", IDENTITY, "kami"),  # "working on it", first
        ("response", IDENTITY, "kami")]      # then the answer
    progress, reply = thread
    assert progress.message.metadata["whatsapp_sender"] == OWNER
    assert progress.message.metadata["on_behalf"] == "claude"
    assert progress.message.content.startswith("⏳")
    assert reply.message.content == "The answer is 42."
    assert reply.message.metadata["on_behalf"] == "claude"
    assert reply.message.metadata["whatsapp_sender"] == OWNER
    assert reply.message.metadata["cost_usd"] > 0
    changes = harness.bridge.history(rid).changes
    claims = [c for c in changes if c.get("status") == "claimed"]
    assert claims and all(c["from"] == IDENTITY for c in claims)
    # the claim came before the run: the model's first request follows it
    # The model saw the request as data: its id, the requester, the chat, inside a fence.
    prompt = harness.prompts()[0]
    assert rid in prompt and "from agent: kami" in prompt and OWNER in prompt
    assert "~~~~text\nWhy is the site slow?\n~~~~" in prompt
    assert "not instructions" in prompt

    # Cost in the ledger; one session; /health says so, without a secret.
    ledger = json.loads((harness.state / "ledger.json").read_text())
    assert ledger["used"]["cost_microusd"] > 0 and ledger["used"]["runs"] == 1
    body = wait_for(lambda: (b := worker.health().json())["worker"]["sessions"] == 1 and b,
                    timeout=20, what="/health to count the session")
    assert body["worker"]["running"] is None
    assert body["worker"]["spentTodayUsd"] > 0
    assert body["worker"]["dailyBudgetUsd"] == 5.0
    assert API_KEY not in json.dumps(body)
    for name in ("sessions.json", "ledger.json"):
        assert stat.S_IMODE((harness.state / name).stat().st_mode) == 0o600
    assert stat.S_IMODE(harness.state.stat().st_mode) == 0o700
    assert API_KEY not in "\n".join(worker.raw)


def test_the_same_chat_resumes_its_session_across_requests_and_restarts(
        harness: Harness) -> None:
    worker = harness.start()
    first = harness.ask("Remember the word PAPAYA.")
    harness.wait_status(first, "done")
    sessions = json.loads((harness.state / "sessions.json").read_text())["sessions"]
    assert len(sessions) == 1
    (session,) = [s["session_id"] for s in sessions.values()]

    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    harness.start()
    asked = len(harness.api.requests)
    second = harness.ask("Which word did I ask you to remember?")
    harness.wait_status(second, "done")

    # --resume: the second run's request to the model carries the first run's turns.
    later = [request_text(r["body"]) for r in harness.api.requests[asked:]]
    assert any("PAPAYA" in t and "Which word" in t for t in later)
    sessions = json.loads((harness.state / "sessions.json").read_text())["sessions"]
    assert [s["session_id"] for s in sessions.values()] == [session]

    # Another chat is another conversation: a session of its own, without PAPAYA.
    asked = len(harness.api.requests)
    other = harness.ask("Hello from another chat", chat="972509999999@c.us")
    harness.wait_status(other, "done")
    assert not any("PAPAYA" in request_text(r["body"]) for r in harness.api.requests[asked:])
    sessions = json.loads((harness.state / "sessions.json").read_text())["sessions"]
    assert len(sessions) == 2 and session in [s["session_id"] for s in sessions.values()]


def old_request(harness: Harness, content: str, age: float) -> str:
    """A request written ``age`` seconds ago (as a client with that clock would have)."""
    ms = int((time.time() - age) * 1000)
    rid = f"kami-{ulid(ms)}"
    harness.bridge.append_record({
        "v": PROTOCOL_VERSION, "t": "msg", "id": rid, "ts": format_ts(ms / 1000), "from": "kami",
        "to": "claude", "type": "request", "status": "pending", "content": content,
        "metadata": {"whatsapp_sender": OWNER}})
    return rid


def test_takes_only_open_unclaimed_requests_older_than_the_delay(harness: Harness) -> None:
    harness.write_config(delay="1h")
    held = old_request(harness, "an interactive session has this one", 7200)
    harness.bridge.claim(held, lease=3600, sender="claude.0a1b2c3d")
    young = harness.bridge.send("too young", to="claude", type="request").id
    old = old_request(harness, "old enough", 7200)
    worker = harness.start()

    harness.wait_status(old, "done")
    worker.wait_event("request.held", where=lambda e: e["request"] == held)
    deferred = worker.wait_event("request.deferred", where=lambda e: e["request"] == young)
    assert 3500 < deferred["due_in"] <= 3600
    assert harness.view(held).state.claimed_by == "claude.0a1b2c3d"
    assert harness.view(young).state.status == "pending"
    assert harness.thread(held) == [] and harness.thread(young) == []
    prompts = harness.prompts()
    assert prompts and all("old enough" in p for p in prompts)


def test_a_request_is_taken_once_it_comes_of_age(harness: Harness) -> None:
    """The loop is woken when the delay of a waiting request is over."""
    harness.write_config(delay="3s")
    worker = harness.start()
    rid = harness.ask("wait for it")
    worker.wait_event("request.deferred", where=lambda e: e["request"] == rid)
    assert harness.view(rid).state.status == "pending"
    harness.wait_status(rid, "done", timeout=60)
    claimed = [c for c in harness.bridge.history(rid).changes if c["status"] == "claimed"]
    from bridge import parse_ts

    assert parse_ts(claimed[0]["ts"]) - parse_ts(harness.view(rid).message.ts) >= 3.0


def test_a_request_naming_an_unknown_project_is_failed_with_the_reason(
        harness: Harness) -> None:
    harness.start()
    rid = harness.ask("build it", project="nope")
    view = harness.wait_status(rid, "failed")
    assert "no project 'nope'" in (view.state.reason or "")
    (note,) = harness.answers(rid)
    assert note.message.content.startswith("❌") and "nope" in note.message.content
    assert note.message.metadata["whatsapp_sender"] == OWNER
    assert harness.api.requests == []


def test_the_project_directory_is_the_runs_working_directory(tmp_path: Path) -> None:
    seen: list[str] = []

    def responder(body: dict[str, Any]) -> Reply:
        seen.append(request_text(body))
        return text("ok")

    h = Harness(tmp_path, responder)
    try:
        h.start()
        rid = h.ask("where are you?")
        h.wait_status(rid, "done")
        assert any(f"working directory {h.project}" in s for s in seen)
        projects = h.state / "home" / ".claude" / "projects"
        assert any(projects.iterdir())  # Claude's own files live under the state directory
        assert not (Path(os.environ.get("HOME", "/nonexistent")) / ".claude" / "projects" /
                    str(h.project).replace("/", "-")).exists()
    finally:
        h.close()
