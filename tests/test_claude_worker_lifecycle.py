"""The Claude worker while a run goes on: PAUSE, ``bridge cancel``, SIGTERM, SIGKILL and the
restart, and an answer the model already gave through the bridge's MCP tool."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bridge import StateConflict
from bridge.testing.messages_api import Reply, request_text, text, tool_results, tool_use
from claude_worker._process import process_start_time
from tests.conftest import CLI, ROOT
from tests.helpers import wait_for
from tests.test_claude_worker_support import IDENTITY, Gate, Harness, group_alive


def run_pid(h: Harness) -> int:
    wait_for((h.state / "run.json").exists, timeout=60, what="a run")
    return int(json.loads((h.state / "run.json").read_text())["pid"])


def worker_messages(h: Harness, rid: str) -> list[tuple[str, str]]:
    return [(v.message.type, v.message.content) for v in h.thread(rid)
            if v.message.sender == IDENTITY]


def test_an_answer_given_with_the_bridge_tool_is_not_given_twice(tmp_path: Path) -> None:
    """The model replies with mcp__bridge__reply (the MCP server claims as the worker does);
    the worker's own reply is then refused by the bridge (StateConflict) and nothing more
    is posted."""
    def responder(body: dict[str, Any]) -> Reply:
        if tool_results(body):
            return text("I have replied through the bridge.")
        rid = re.search(r"request id: (\S+)", request_text(body))
        assert rid is not None
        return tool_use("mcp__bridge__reply", {"id": rid.group(1),
                                               "text": "answered through the tool"})

    h = Harness(tmp_path, responder)
    try:
        worker = h.start()
        rid = h.ask("answer with the tool")
        h.wait_status(rid, "done")
        worker.wait_event("answer.not_posted", where=lambda e: e["request"] == rid)
        (answer,) = h.answers(rid)
        assert answer.message.content == "answered through the tool"
        assert answer.message.sender == IDENTITY
        assert answer.message.metadata["on_behalf"] == "claude"
        ended = worker.wait_event("run.ended", where=lambda e: e["request"] == rid)
        assert ended["mcp"] == "connected"
    finally:
        h.close()


def test_pause_stops_new_runs_and_lets_the_running_one_finish(tmp_path: Path) -> None:
    gate = Gate(lambda body: text("finished while paused"))
    h = Harness(tmp_path, gate)
    try:
        worker = h.start()
        first = h.ask("a long one")
        assert gate.entered.wait(60)
        h.bridge.pause("deploying", by="owner")
        worker.wait_event("paused")
        second = h.ask("asked during the pause")
        gate.open()
        h.wait_status(first, "done")
        assert h.answers(first)[0].message.content == "finished while paused"
        body = worker.health().json()
        assert body["status"] == "paused" and body["worker"]["running"] is None
        assert h.view(second).state.status == "pending"
        assert h.view(second).state.attempts == 0
        h.bridge.resume(by="owner")
        h.wait_status(second, "done")
    finally:
        h.close()


def test_bridge_cancel_kills_the_running_request(tmp_path: Path) -> None:
    gate = Gate(lambda body: text("too late"))
    h = Harness(tmp_path, gate)
    try:
        worker = h.start()
        rid = h.ask("cancel me")
        assert gate.entered.wait(60)
        pid = run_pid(h)
        body = worker.health().json()
        assert body["worker"]["running"]["request"] == rid
        CLI(tmp_path / "bridge", tmp_path / "home").ok("cancel", rid, "--reason", "not needed")
        worker.wait_event("request.dropped", where=lambda e: e["request"] == rid)
        assert not group_alive(pid)
        assert h.view(rid).state.status == "cancelled"
        assert [t for t, _ in worker_messages(h, rid)] == ["notification"]  # progress only
    finally:
        h.close()


def test_sigkill_mid_run_then_restart_answers_exactly_once(tmp_path: Path) -> None:
    gate = Gate(lambda body: text("the one answer"))
    h = Harness(tmp_path, gate)
    try:
        first = h.start()
        rid = h.ask("survive this")
        assert gate.entered.wait(60)
        pid = run_pid(h)
        first.signal(signal.SIGKILL)
        first.wait()
        # PR_SET_PDEATHSIG: the CLI died with the worker.
        wait_for(lambda: process_start_time(pid) is None, timeout=20, what="the CLI to die")
        assert (h.state / "run.json").exists()  # left for the next start to clean up

        second = h.start()
        h.wait_status(rid, "done")
        second.wait_event("run.recovered", where=lambda e: e["request"] == rid)
        assert not group_alive(pid)
        kinds = [t for t, _ in worker_messages(h, rid)]
        assert kinds == ["notification", "response"]  # one "working on it", one answer
        assert [c for _, c in worker_messages(h, rid)][1] == "the one answer"
        started = second.wait_event("run.started", where=lambda e: e["request"] == rid)
        assert started["attempt"] == 2 and started["resume"] is True
        assert any("interrupted before" in request_text(r["body"])
                   for r in h.api.requests[1:])
        # And a reply that comes again (a crash after posting) is refused by the bridge.
        with pytest.raises(StateConflict):
            h.bridge.reply(rid, "again", sender=IDENTITY)
    finally:
        h.close()


def test_a_restart_kills_an_orphaned_run_before_anything_else(tmp_path: Path) -> None:
    """What run.json records is killed at start: the CLI's group and the processes below it
    that left it (the Bash tool's commands run in sessions of their own)."""
    h = Harness(tmp_path)
    leader = subprocess.Popen(["sleep", "3001"], start_new_session=True)
    member = subprocess.Popen(["setsid", "sleep", "3002"])
    try:
        h.state.mkdir(mode=0o700)
        (h.state / "run.json").write_text(json.dumps({
            "pid": leader.pid, "start": process_start_time(leader.pid), "request": "kami-x",
            "tree": {str(member.pid): process_start_time(member.pid)}}))
        worker = h.start(ready=False)
        killed = worker.wait_event("orphan.killed")
        assert killed["processes"] == 2
        assert leader.wait(timeout=20) == -signal.SIGKILL
        assert member.wait(timeout=20) == -signal.SIGKILL
        worker.wait_event("worker.ready")
        assert not (h.state / "run.json").exists()
    finally:
        for proc in (leader, member):
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=20)
        h.close()


def test_a_pid_reused_since_is_not_killed(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    bystander = subprocess.Popen(["sleep", "3003"], start_new_session=True)
    try:
        h.state.mkdir(mode=0o700)
        start = process_start_time(bystander.pid)
        assert start is not None
        (h.state / "run.json").write_text(json.dumps({
            "pid": bystander.pid, "start": start - 1, "request": "kami-x",
            "tree": {str(bystander.pid): start - 1}}))
        worker = h.start()
        worker.wait_event("orphan.reused")
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait(timeout=20)
        h.close()


def test_sigterm_hands_a_running_request_back_and_the_next_start_answers(
        tmp_path: Path) -> None:
    gate = Gate(lambda body: text("answered after the restart"))
    h = Harness(tmp_path, gate, settings='stop_grace = "1s"')
    try:
        first = h.start()
        rid = h.ask("stop in the middle")
        assert gate.entered.wait(60)
        pid = run_pid(h)
        first.signal(signal.SIGTERM)
        assert first.wait() == 0
        assert not group_alive(pid)
        view = h.view(rid)
        assert view.state.status == "pending"
        assert "stopped while it ran" in (view.state.reason or "")
        h.start()
        h.wait_status(rid, "done")
        assert [t for t, _ in worker_messages(h, rid)] == ["notification", "response"]
    finally:
        h.close()


def test_the_claim_is_renewed_while_it_runs_and_excludes_sessions(tmp_path: Path) -> None:
    gate = Gate(lambda body: text("done"))
    h = Harness(tmp_path, gate, settings='lease = "6s"')
    try:
        h.start()
        rid = h.ask("a long one")
        assert gate.entered.wait(60)

        def claims() -> int:
            return sum(1 for c in h.bridge.history(rid).changes
                       if c["status"] == "claimed" and c["from"] == IDENTITY)

        wait_for(lambda: claims() >= 3, timeout=30, what="the lease to be renewed")
        with pytest.raises(StateConflict, match=r"claimed by claude\.worker"):
            h.bridge.claim(rid, lease=60, sender="claude.0a1b2c3d")  # an interactive session
        gate.open()
        h.wait_status(rid, "done")
    finally:
        h.close()


def test_run_once_answers_what_is_waiting_and_exits(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    try:
        first, second = h.ask("one"), h.ask("two", chat="972509999999@c.us")
        result = subprocess.run([sys.executable, "-m", "claude_worker", "run", "--once",
                                 "--config", str(h.config)], cwd=ROOT, capture_output=True,
                                timeout=300, check=False,
                                env={**os.environ, "PYTHONPATH": str(ROOT), **h.env})
        assert result.returncode == 0, result.stderr[-2000:]
        for rid in (first, second):
            assert h.view(rid).state.status == "done"
            assert len(h.answers(rid)) == 1
    finally:
        h.close()


def test_a_damaged_session_store_is_set_aside_not_fatal(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    try:
        h.state.mkdir(mode=0o700)
        (h.state / "sessions.json").write_text("{not json")
        worker = h.start(ready=False)
        worker.wait_event("sessions.damaged")
        rid = h.ask("still there?")
        h.wait_status(rid, "done")
        assert (h.state / "sessions.json.damaged").read_text() == "{not json"
        assert len(json.loads((h.state / "sessions.json").read_text())["sessions"]) == 1
    finally:
        h.close()
