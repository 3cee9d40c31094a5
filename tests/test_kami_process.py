"""Kami as a real process (``python -m kami``): SIGKILL mid-message, restarts, the command
line, and secrets kept out of logs, argv and /health."""

from __future__ import annotations

import collections
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge import Bridge
from bridge.testing.greenapi import GreenApiSimulator
from tests.agent_proc import AgentProcess, NotifyListener
from tests.conftest import ROOT
from tests.helpers import wait_for
from tests.kami_harness import OWNER

TOKEN_ENV = "KAMI_GREEN_API_TOKEN"


def write_config(tmp_path: Path, sim: GreenApiSimulator, *extra: str) -> Path:
    config = tmp_path / "kami.toml"
    config.write_text("\n".join([
        f'bridge = "{tmp_path / "bridge"}"', 'idle_wait = "1s"',
        "[health]", "port = 0", "[log]", 'level = "debug"',
        "[kami]", f'api_url = "{sim.api_url}"', f"id_instance = {sim.id_instance}",
        f'owners = ["{OWNER}"]', "receive_timeout = 5", 'retry_delay = "20ms"',
        'backoff_cap = "300ms"', 'verify_after = "200ms"', 'timeout = "30s"', *extra]) + "\n")
    return config


def start(config: Path, sim: GreenApiSimulator, **env: str) -> AgentProcess:
    proc = AgentProcess("kami", ["run", "--config", str(config)], {TOKEN_ENV: sim.token, **env})
    proc.wait_event("kami.ready")
    return proc


@pytest.fixture
def bridge(tmp_path: Path) -> Iterator[Bridge]:
    b = Bridge(tmp_path / "bridge", agent="claude")
    yield b
    b.close()


def test_sigkill_before_the_delete_then_restart_handles_it_once(
        tmp_path: Path, sim: GreenApiSimulator, bridge: Bridge) -> None:
    config = write_config(tmp_path, sim)
    sim.stall("deleteNotification", 60)  # journaled, then the delete hangs
    kami = start(config, sim)
    try:
        sim.send_text(OWNER, "/claude exactly once, please")
        wait_for(lambda: sim.stalled == 1, what="the delete to hang")
        wait_for(lambda: bridge.inbox("claude"), what="the forward")
        kami.signal(signal.SIGKILL)
        kami.wait()
    finally:
        kami.close()
    assert len(sim.pending()) >= 1  # never deleted: Green API will deliver it again
    kami = start(config, sim)
    try:
        kami.wait_event("message.received", where=lambda e: e["duplicate"] is True)
        wait_for(lambda: not [b for b in sim.pending()
                              if b.get("typeWebhook") == "incomingMessageReceived"],
                 what="the redelivered notification to be deleted")
        wait_for(lambda: any("Passed to Claude Code" in t for t in sim.texts()))
        wait_for(lambda: bridge.inbox("kami", include_claimed=True) == [],
                 what="Kami's inbox to empty")
    finally:
        kami.signal(signal.SIGTERM)
        assert kami.wait() == 0
        kami.close()
    assert [v.message.content for v in bridge.inbox("claude")] == ["exactly once, please"]
    assert len([t for t in sim.texts() if "Passed to Claude Code" in t]) == 1


def test_sigkill_during_a_send_then_restart_does_not_send_it_again(
        tmp_path: Path, sim: GreenApiSimulator, bridge: Bridge) -> None:
    config = write_config(tmp_path, sim)
    kami = start(config, sim)
    try:
        sim.delay("sendMessage", 60)  # the send happens; its answer never comes
        mid = bridge.send("the report is ready", to="kami", type="response",
                          metadata={"whatsapp_sender": OWNER}).id
        wait_for(sim.texts, what="the send to reach Green API")
        assert bridge.get(mid).state.status == "claimed"
        kami.signal(signal.SIGKILL)
        kami.wait()
    finally:
        kami.close()
    kami = start(config, sim)
    try:
        wait_for(lambda: bridge.get(mid).status() == "done", what="the item to be settled")
        recovered = kami.wait_event("message.recovered")
        assert recovered["already_sent"] == 1
    finally:
        kami.signal(signal.SIGTERM)
        kami.wait()
        kami.close()
    assert sim.texts() == ["*Claude Code*\nthe report is ready"]
    assert bridge.get(mid).state.reason == f"sent as {sim.sent[0].id_message}"


def test_a_claim_left_before_the_send_is_sent_once(tmp_path: Path, sim: GreenApiSimulator,
                                                   bridge: Bridge) -> None:
    mid = bridge.send("never went out", to="kami", type="response",
                      metadata={"whatsapp_sender": OWNER}).id
    bridge.claim(mid, sender="kami")  # what a crash right after the claim leaves
    kami = start(write_config(tmp_path, sim), sim)
    try:
        wait_for(lambda: bridge.get(mid).status() == "done")
        assert kami.wait_event("message.recovered")["already_sent"] == 0
    finally:
        kami.signal(signal.SIGTERM)
        kami.wait()
        kami.close()
    assert sim.texts() == ["*Claude Code*\nnever went out"]


def test_many_kills_lose_nothing_and_repeat_nothing(tmp_path: Path, sim: GreenApiSimulator,
                                                    bridge: Bridge) -> None:
    """Kill Kami again and again while messages flow both ways; in the end every message
    was forwarded once and every answer sent once."""
    config = write_config(tmp_path, sim)
    count = 12
    for i in range(count):
        sim.send_text(OWNER, f"/claude task {i}")
    answered: set[str] = set()
    for _ in range(4):
        kami = start(config, sim)
        try:
            for view in bridge.inbox("claude"):
                if view.id not in answered:
                    bridge.reply(view.id, f"done: {view.message.content}")
                    answered.add(view.id)
            wait_for(lambda: len(sim.sent) >= 2, timeout=20)
        finally:
            kami.signal(signal.SIGKILL)
            kami.wait()
            kami.close()
    kami = start(config, sim)
    try:
        def settled() -> bool:
            for view in bridge.inbox("claude"):
                if view.id not in answered:
                    bridge.reply(view.id, f"done: {view.message.content}")
                    answered.add(view.id)
            return len(answered) == count and not bridge.inbox("kami", include_claimed=True)
        wait_for(settled, timeout=60, what="every task answered and delivered")
    finally:
        kami.signal(signal.SIGTERM)
        kami.wait()
        kami.close()
    requests = [v for v in bridge.fold().messages.values() if v.to == "claude"]
    assert len(requests) == count
    texts = collections.Counter(sim.texts())
    answers = {t: n for t, n in texts.items() if "done: task" in t}
    assert len(answers) == count
    assert set(answers.values()) == {1}, answers
    notes = [n for t, n in texts.items() if "Passed to Claude Code" in t]
    assert sum(notes) == count


def test_the_token_stays_out_of_logs_argv_and_health(tmp_path: Path, sim: GreenApiSimulator,
                                                     bridge: Bridge) -> None:
    notify = NotifyListener(tmp_path / "notify.sock")
    kami = start(write_config(tmp_path, sim), sim, NOTIFY_SOCKET=str(notify.path))
    try:
        notify.wait_for("READY=1")
        sim.send_text(OWNER, "/claude hello")
        wait_for(sim.texts)
        health = kami.health()
        assert health.status_code == 200
        assert sim.token not in health.text
        assert health.json()["whatsapp"]["sent"] == 1
        cmdline = Path(f"/proc/{kami.proc.pid}/cmdline").read_bytes()
        assert sim.token.encode() not in cmdline
        token = sim.token
        sim.token = "e" * 50  # revoked
        kami.wait_event("greenapi.auth_failed")
        assert kami.health().json()["status"] == "degraded"
        kami.signal(signal.SIGTERM)
        assert kami.wait() == 0
        assert "STOPPING=1" in notify.states()
    finally:
        kami.close()
        notify.close()
    text = "\n".join(kami.raw)
    assert "waInstance" in text  # httpx's request lines (debug level) are there, masked
    assert token not in text
    assert "refused the token (HTTP 401" in text


def run_kami(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kami", *args], cwd=ROOT, capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
                                          **(env or {})}, timeout=60, check=False)


def test_check_config(tmp_path: Path, sim: GreenApiSimulator) -> None:
    config = write_config(tmp_path, sim)
    ok = run_kami("check-config", "--config", str(config), env={TOKEN_ENV: sim.token})
    assert (ok.returncode, ok.stdout.strip()) == (0, "kami: configuration is valid")
    no_token = run_kami("check-config", "--config", str(config))
    assert no_token.returncode == 78
    assert no_token.stderr.strip().startswith("kami: error: config kami.token: no Green API")
    in_file = tmp_path / "bad.toml"
    in_file.write_text(config.read_text() + f'token = "{sim.token}"\n')
    refused = run_kami("check-config", "--config", str(in_file), env={TOKEN_ENV: sim.token})
    assert refused.returncode == 78
    assert "LoadCredential=green-api-token" in refused.stderr
    assert sim.token not in refused.stderr
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    missing = run_kami("check-config", "--config", str(empty))
    assert missing.returncode == 78
    assert "Kami needs its Green API instance" in missing.stderr
    for result in (no_token, refused, missing):
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
