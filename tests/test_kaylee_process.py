"""Kaylee as a real process: SIGKILL mid-task and the restart, SIGTERM, a bridge over SSH that
goes away mid-task, /health, and the command line."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge import Bridge
from tests.agent_proc import AgentProcess
from tests.conftest import BIN, require_tool
from tests.helpers import wait_for
from tests.kaylee_support import config_text, outcome, owner_notes
from tests.sshd import BRIDGE_COMMAND, SSHD, wait_gone

GATED = """
[[recipe]]
name = "gated"
argv = ["sh", "-c", "echo $$ > {pid}; echo start >> {log}; while [ ! -e {gate} ]; do sleep 0.05; \
done; echo end >> {log}"]
idempotent = {idem}
"""


class Run:
    """A bridge, Kaylee processes on it, and a recipe that waits for a gate file."""

    def __init__(self, tmp_path: Path, idem: bool = True, bridge: str | None = None,
                 extra: str = "") -> None:
        self.tmp_path = tmp_path
        self.gate, self.log, self.pid = tmp_path / "gate", tmp_path / "log", tmp_path / "pid"
        self.bridge = Bridge(tmp_path / "bridge", agent="claude")
        self.config = tmp_path / "kaylee.toml"
        self.config.write_text(config_text(tmp_path, extra + GATED.format(
            pid=self.pid, log=self.log, gate=self.gate, idem=str(idem).lower()),
            bridge=bridge))
        self.procs: list[AgentProcess] = []

    def start(self) -> AgentProcess:
        proc = AgentProcess("kaylee", ["run", "--config", str(self.config)], {})
        self.procs.append(proc)
        proc.wait_event("kaylee.ready")
        return proc

    def lines(self) -> list[str]:
        return self.log.read_text().split() if self.log.exists() else []

    def kill_recipe(self) -> None:
        # What systemd does when the unit's main process dies: the rest of its control
        # group is killed too. Here the recipe's shell is stopped by its own PID.
        pid = int(self.pid.read_text())
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        wait_gone([pid])

    def killed_mid_task(self) -> str:
        """Start Kaylee, give her the gated task, SIGKILL her while it runs."""
        first = self.start()
        rid = self.bridge.send("gated", to="kaylee").id
        wait_for(lambda: self.lines() == ["start"], timeout=20, what="the task to start")
        first.signal(signal.SIGKILL)
        first.wait()
        self.kill_recipe()
        return rid

    def close(self) -> None:
        for proc in self.procs:
            proc.close()
        if self.pid.exists():
            self.kill_recipe()
        self.bridge.close()


@pytest.fixture
def runs() -> Iterator[list[Run]]:
    made: list[Run] = []
    yield made
    for run in made:
        run.close()


def test_sigkill_mid_task_then_an_idempotent_recipe_runs_again(tmp_path: Path,
                                                               runs: list[Run]) -> None:
    run = Run(tmp_path)
    runs.append(run)
    rid = run.killed_mid_task()
    state = run.bridge.get(rid).state
    assert state.status == "claimed" and state.claimed_by == "kaylee"  # visibly in flight
    lease_until = state.lease_until or 0
    run.gate.touch()
    run.start()
    wait_for(lambda: run.bridge.get(rid).state.status == "done", timeout=30,
             what="the task to be run again and finish")
    assert run.lines() == ["start", "start", "end"]
    changes = run.bridge.history(rid).changes
    [handed] = [c for c in changes if c["status"] == "pending"]
    assert "running it again" in handed["reason"]
    from bridge import parse_ts
    assert parse_ts(handed["ts"]) >= lease_until  # taken back only when the lease ran out
    assert run.bridge.get(rid).state.attempts == 2


def test_sigkill_mid_task_then_a_non_idempotent_recipe_is_failed(tmp_path: Path,
                                                                 runs: list[Run]) -> None:
    run = Run(tmp_path, idem=False)
    runs.append(run)
    rid = run.killed_mid_task()
    run.gate.touch()
    run.start()
    wait_for(lambda: run.bridge.get(rid).state.status == "failed", timeout=30,
             what="the task to be failed as interrupted")
    assert run.lines() == ["start"]  # never run twice
    assert "not idempotent, so it is not run again" in (run.bridge.get(rid).state.reason or "")
    assert outcome(run.bridge, rid).message.metadata["outcome"] == "interrupted"
    [note] = owner_notes(run.bridge)
    assert "interrupted" in note.message.content


def test_sigterm_mid_task_hands_an_idempotent_task_back_and_exits_0(tmp_path: Path,
                                                                    runs: list[Run]) -> None:
    run = Run(tmp_path, extra='stop_grace = "1s"\n')
    runs.append(run)
    proc = run.start()
    rid = run.bridge.send("gated", to="kaylee").id
    wait_for(lambda: run.lines() == ["start"], timeout=20, what="the task to start")
    proc.signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    state = run.bridge.get(rid).state
    assert state.status == "pending" and "Kaylee is stopping" in (state.reason or "")
    wait_gone([int(run.pid.read_text())])  # the recipe was stopped with its group


def test_health_shows_the_running_task_and_the_jobs(tmp_path: Path, runs: list[Run]) -> None:
    extra = ('[[job]]\nname = "nightly"\ncron = "0 3 * * *"\nrecipe = "report"\n'
             '[[job]]\nname = "broken"\ncron = "every day"\nrecipe = "report"\n')
    run = Run(tmp_path, extra="")
    run.config.write_text(run.config.read_text() + extra)
    runs.append(run)
    proc = run.start()
    rid = run.bridge.send("gated", to="kaylee").id
    wait_for(lambda: run.lines() == ["start"], timeout=20, what="the task to start")
    body = wait_for(lambda: (b := proc.health().json())["kaylee"]["running"] and b)
    assert body["kaylee"]["running"][0]["task"] == rid
    assert body["kaylee"]["running"][0]["recipe"] == "gated"
    jobs = body["kaylee"]["jobs"]
    assert jobs["nightly"]["next"].endswith("T03:00:00.000Z")
    assert "expected 5 fields" in jobs["broken"]["disabled"]
    assert body["status"] == "ok"
    notes = wait_for(lambda: owner_notes(run.bridge))
    assert "the job 'broken' is disabled" in notes[0].message.content
    run.gate.touch()


def test_the_command_line(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(config_text(tmp_path))
    ok = subprocess.run([str(BIN / "kaylee"), "check-config", "--config", str(good)],
                        capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and "configuration is valid" in ok.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('[[recipe]]\nname = "x"\nargv = ["rm", "{target}"]\n')
    result = subprocess.run([str(BIN / "kaylee"), "check-config", "--config", str(bad)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 78
    assert result.stderr.strip() == ("kaylee: error: config recipe[0]: uses undeclared "
                                     "parameter(s) target")


def restart_sshd(server: SSHD) -> None:
    """The same sshd again, on the same port (its config file names it)."""
    log = open(server.directory / "sshd.log", "ab")  # noqa: SIM115 - handed to the process
    server.proc = subprocess.Popen([require_tool("sshd"), "-D", "-e", "-f",
                                    str(server.directory / "sshd_config")],
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    log.close()
    import socket

    def listening() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", server.port)) == 0

    wait_for(listening, timeout=10, what="sshd listening again")


def test_an_outcome_is_kept_while_the_bridge_is_away_and_appended_when_it_returns(
        tmp_path: Path, private_sshd: SSHD, runs: list[Run]) -> None:
    remote = private_sshd.url(tmp_path / "bridge")
    ssh = (f'[ssh]\nconfig = "{private_sshd.ssh_config}"\n'
           f'remote_command = "{BRIDGE_COMMAND}"\n')
    run = Run(tmp_path, bridge=remote)
    run.config.write_text(run.config.read_text() + ssh)
    runs.append(run)
    proc = run.start()
    rid = run.bridge.send("gated", to="kaylee").id
    wait_for(lambda: run.lines() == ["start"], timeout=30, what="the task to start")
    private_sshd.stop()  # the bridge's host is gone: listener and sessions
    run.gate.touch()
    proc.wait_event("outbox.kept", timeout=60)
    outbox = tmp_path / "state" / "outbox"
    assert list(outbox.iterdir())
    assert run.bridge.get(rid).state.status == "claimed"
    time.sleep(0.5)  # the outage goes on a little after the outcome was kept
    restart_sshd(private_sshd)
    wait_for(lambda: run.bridge.get(rid).state.status == "done", timeout=90,
             what="the kept outcome to be appended")
    wait_for(lambda: list(outbox.iterdir()) == [], what="the outbox to empty")
    assert run.lines() == ["start", "end"]
    assert "✅ gated" in outcome(run.bridge, rid).message.content
