"""The Claude worker's limits: the wall-clock timeout (the run's whole process tree killed),
max turns, the daily budget, what the CLI's process gets, and a bad configuration."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bridge.testing.messages_api import Reply, text, tool_use
from tests.claude_support import API_KEY, CLAUDE_BIN
from tests.conftest import ROOT
from tests.helpers import wait_for
from tests.test_claude_worker_support import IDENTITY, OWNER, Gate, Harness, group_alive


def sleeper_below(pid: int, marker: str) -> int | None:
    """The pid of the ``sleep MARKER`` the Bash tool started under ``pid``, if any."""
    table: dict[int, tuple[int, str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_bytes()
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            table[int(entry)] = (int(stat[stat.rindex(b")") + 2:].split()[1]), cmd)
    for candidate, (_, cmd) in table.items():
        if cmd.strip() != f"sleep {marker}":
            continue
        up = candidate
        for _ in range(50):
            up = table.get(up, (0, ""))[0]
            if up == pid:
                return candidate
            if up <= 1:
                break
    return None


def test_a_run_past_its_timeout_is_killed_with_its_whole_tree_and_failed(
        tmp_path: Path) -> None:
    """The Bash tool's command runs in a session of its own (the CLI uses setsid): killing
    the CLI's process group alone would leave it running."""
    calls = {"n": 0}

    def responder(body: dict[str, Any]) -> Reply:
        calls["n"] += 1
        return tool_use("Bash", {"command": "sleep 4711", "description": "wait"}) \
            if calls["n"] == 1 else text("never reached")

    h = Harness(tmp_path, responder, settings='timeout = "15s"\nallowed_tools = ["Bash"]')
    try:
        h.start()
        rid = h.ask("take your time")
        wait_for((h.state / "run.json").exists, timeout=60,
                 what="the run to be recorded")
        pid = json.loads((h.state / "run.json").read_text())["pid"]
        sleeper = wait_for(lambda: sleeper_below(pid, "4711"), timeout=60,
                           what="the Bash tool's sleep")
        assert sleeper is not None
        assert os.getsid(sleeper) != os.getsid(pid)  # not in the CLI's session or group
        view = h.wait_status(rid, "failed", timeout=60)
        assert "did not finish within 15s" in (view.state.reason or "")
        assert not group_alive(pid)
        assert not Path(f"/proc/{sleeper}").exists() or \
            Path(f"/proc/{sleeper}/stat").read_text().split(") ")[1][0] == "Z"
        assert not (h.state / "run.json").exists()
        (note,) = h.answers(rid)
        assert note.message.content.startswith("❌") and "15s" in note.message.content
        assert note.message.metadata["whatsapp_sender"] == OWNER
        assert note.message.sender == IDENTITY
    finally:
        h.close()


def test_a_run_that_reaches_max_turns_is_failed(tmp_path: Path) -> None:
    def responder(body: dict[str, Any]) -> Reply:
        return tool_use("Read", {"file_path": str(tmp_path / "project" / "notes.txt")})

    h = Harness(tmp_path, responder, settings='max_turns = 2\nallowed_tools = ["Read"]')
    try:
        h.start()
        rid = h.ask("read forever")
        view = h.wait_status(rid, "failed")
        assert "limit of 2 turns" in (view.state.reason or "")
        (note,) = h.answers(rid)
        assert "2 turns" in note.message.content
        assert len(h.api.requests) == 2  # no third call: the CLI stopped at the limit
        # What it cost is counted even though it failed.
        ledger = json.loads((h.state / "ledger.json").read_text())
        assert ledger["used"]["cost_microusd"] > 0
    finally:
        h.close()


def test_over_budget_requests_are_refused_before_any_run_and_the_owner_told_once(
        tmp_path: Path) -> None:
    h = Harness(tmp_path, settings="daily_budget_usd = 0.5")
    try:
        h.state.mkdir(mode=0o700)
        day = time.strftime("%Y-%m-%d", time.gmtime())
        (h.state / "ledger.json").write_text(json.dumps(
            {"day": day, "used": {"cost_microusd": 600_000}}))
        first, second = h.ask("one"), h.ask("two", chat="972509999999@c.us")
        worker = h.start()
        for rid in (first, second):
            view = h.wait_status(rid, "failed")
            assert "budget" in (view.state.reason or "") and "$0.50" in (view.state.reason or "")
            (note,) = h.answers(rid)
            assert "budget" in note.message.content
            assert [m.message.type for m in h.thread(rid)] == ["response"]  # no "working on it"
        assert h.api.requests == []  # no run was started
        notices = [v for v in h.bridge.inbox("kami")
                   if v.message.metadata.get("claude_worker") == "budget"]
        assert len(notices) == 1
        assert notices[0].message.type == "notification"
        assert "$0.60 of $0.50" in notices[0].message.content
        assert worker.health().json()["worker"]["spentTodayUsd"] == 0.6
    finally:
        h.close()


def test_a_run_may_spend_only_what_is_left_of_the_day(tmp_path: Path) -> None:
    """The CLI is given --max-budget-usd = budget - spent: a run cannot overshoot by much."""
    gate = Gate(lambda body: text("fine"))
    h = Harness(tmp_path, gate, settings="daily_budget_usd = 2.0")
    try:
        h.state.mkdir(mode=0o700)
        day = time.strftime("%Y-%m-%d", time.gmtime())
        (h.state / "ledger.json").write_text(json.dumps(
            {"day": day, "used": {"cost_microusd": 1_500_000}}))
        h.start()
        rid = h.ask("cheap question")
        assert gate.entered.wait(60)
        pid = json.loads((h.state / "run.json").read_text())["pid"]
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert argv[argv.index(b"--max-budget-usd") + 1] == b"0.500000"
        gate.open()
        h.wait_status(rid, "done")
    finally:
        h.close()


def test_the_cli_gets_only_what_it_needs(tmp_path: Path) -> None:
    gate = Gate(lambda body: text("ok"))
    h = Harness(tmp_path, gate, settings='allowed_tools = ["Read", "Grep"]',
                env={"SOME_SECRET_OF_THE_WORKER": "s3cr3t"})
    try:
        h.start()
        rid = h.ask("hello")
        assert gate.entered.wait(60)
        pid = json.loads((h.state / "run.json").read_text())["pid"]
        argv = [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
        environ = dict(e.decode().split("=", 1) for e in
                       Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if e)
        assert argv[:5] == [str(CLAUDE_BIN), "-p", "--output-format", "stream-json",
                            "--verbose"]
        allowed = argv[argv.index("--allowedTools") + 1].split(",")
        assert allowed[-2:] == ["Read", "Grep"]
        # The bridge's tools one by one: not send, pause or resume (a request's text
        # must not be able to stop the network or message other agents unattended).
        assert "mcp__bridge__reply" in allowed and "mcp__bridge__claim" in allowed
        assert not {"mcp__bridge", "mcp__bridge__pause", "mcp__bridge__resume",
                    "mcp__bridge__send"} & set(allowed)
        assert argv[argv.index("--permission-mode") + 1] == "default"
        assert "--strict-mcp-config" in argv and "--max-turns" in argv
        assert not any("dangerously" in a or "bypassPermissions" in a for a in argv)
        mcp = json.loads(argv[argv.index("--mcp-config") + 1])["mcpServers"]["bridge"]
        assert mcp["command"] == sys.executable
        assert mcp["args"] == ["-m", "bridge.claude", "mcp", "--url", str(tmp_path / "bridge"),
                               "--agent", "claude", "--as", IDENTITY]
        assert "hello" not in " ".join(argv)  # the prompt goes in on stdin
        assert API_KEY not in " ".join(argv)
        assert environ["ANTHROPIC_API_KEY"] == API_KEY
        assert environ["HOME"] == str(h.state / "home")
        assert environ["ANTHROPIC_BASE_URL"] == h.api.url
        assert environ["MCP_CONNECTION_NONBLOCKING"] == "0"
        assert environ["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
        assert "SOME_SECRET_OF_THE_WORKER" not in environ
        assert "CLAUDE_WORKER_ANTHROPIC_API_KEY" not in environ
        assert set(environ) <= {"PATH", "HOME", "LANG", "TZ", "ANTHROPIC_API_KEY",
                                "ANTHROPIC_BASE_URL", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
                                "DISABLE_AUTOUPDATER", "MCP_CONNECTION_NONBLOCKING",
                                "BRIDGE_CLAUDE_WORKER"}
        assert os.getpgid(pid) == pid  # a process group of its own
        status = Path(f"/proc/{pid}/status").read_text()
        assert "PPid:\t" in status
        prompt = h.state / "prompt.txt"
        assert prompt.stat().st_mode & 0o777 == 0o600
        gate.open()
        h.wait_status(rid, "done")
    finally:
        h.close()


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "claude_worker", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


@pytest.mark.parametrize(("setting", "message"), [
    ('permission_mode = "bypassPermissions"', "claude_worker.permission_mode: must be"),
    ('delay = "soon"', "claude_worker.delay:"),
    ('identity = "claude"', "claude_worker.identity: must differ"),
    ('api_key = "sk-ant-xyz"', "claude_worker.api_key: secrets are not read"),
    ("daily_budget_usd = -1", "claude_worker.daily_budget_usd:"),
    ("max_turns = 0", "claude_worker.max_turns:"),
    ('default_project = "missing"', "claude_worker.default_project: no project"),
    ("bogus = 1", "claude_worker.bogus: unknown setting"),
])
def test_a_bad_configuration_is_one_line_and_exit_78(tmp_path: Path, setting: str,
                                                     message: str) -> None:
    config = tmp_path / "claude-worker.toml"
    config.write_text(f"[claude_worker]\n{setting}\n[claude_worker.projects]\nmain = "
                      f'"{tmp_path}"\n')
    for command in ("check-config", "run"):
        result = run_cli(command, "--config", str(config))
        assert result.returncode == 78, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("claude-worker: error: "), lines
        assert message in lines[0]
        assert "sk-ant-xyz" not in result.stderr


def test_a_good_configuration_checks(tmp_path: Path) -> None:
    config = tmp_path / "claude-worker.toml"
    config.write_text(f'[claude_worker]\ndefault_project = "a"\n[claude_worker.projects]\n'
                      f'a = "{tmp_path}"\nb = "/srv/b"\n')
    result = run_cli("check-config", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout


def test_without_an_api_key_it_runs_degraded_and_takes_nothing(tmp_path: Path) -> None:
    h = Harness(tmp_path, env={"CLAUDE_WORKER_ANTHROPIC_API_KEY": ""})
    try:
        worker = h.start()
        rid = h.ask("anyone?")
        response = worker.health()
        assert response.status_code == 503
        assert "anthropic-api-key" in response.json()["degraded"]
        worker.wait_event("request.not_taken", where=lambda e: e["request"] == rid)
        assert h.view(rid).state.status == "pending"
        assert h.api.requests == []
    finally:
        h.close()


def find_process(cmdline: str) -> int | None:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if cmd.strip() == cmdline:
                return int(entry)
    return None


def test_nothing_a_run_started_outlives_it_not_even_a_daemon(tmp_path: Path) -> None:
    """A tool's command that daemonizes (its parent exits at once) is reparented to the worker,
    a child subreaper, not to init — so the worker still finds and kills it when the run
    ends."""
    turns = {"n": 0}
    held = Gate(lambda body: text("done, with a daemon left behind"))

    def responder(body: dict[str, Any]) -> Reply:
        turns["n"] += 1
        if turns["n"] == 1:
            return tool_use("Bash", {"command": "(setsid sleep 4712 > /dev/null 2>&1 &); echo ok",
                                     "description": "start a daemon"})
        return held(body)

    h = Harness(tmp_path, responder, settings='allowed_tools = ["Bash"]')
    try:
        worker = h.start()
        rid = h.ask("leave something running")
        daemon = wait_for(lambda: find_process("sleep 4712"), timeout=60, what="the daemon")
        assert daemon is not None
        assert held.entered.wait(60)
        ppid = int(Path(f"/proc/{daemon}/stat").read_bytes().rsplit(b")", 1)[1].split()[1])
        assert ppid == worker.proc.pid  # reparented to the subreaper
        held.open()
        h.wait_status(rid, "done")
        assert find_process("sleep 4712") is None
    finally:
        held.open()
        h.close()
        leftover = find_process("sleep 4712")
        if leftover is not None:  # only if the test failed: stop it by its own PID
            os.kill(leftover, signal.SIGKILL)
