"""The agent lifecycle in a real process: READY, WATCHDOG, PAUSE, SIGTERM, degraded start."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge import Bridge
from tests.agent_proc import AgentProcess, NotifyListener
from tests.helpers import wait_for
from tests.sshd import BRIDGE_COMMAND, SSHD


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifyListener]:
    listener = NotifyListener(tmp_path / "notify.sock")
    yield listener
    listener.close()


def write_config(tmp_path: Path, bridge_dir: Path, **extra: str) -> Path:
    cfg = tmp_path / "echo.toml"
    lines = [f'bridge = "{bridge_dir}"', 'idle_wait = "2s"', "[health]", "port = 0",
             "[log]", 'level = "debug"']
    lines += [f"{k} = {v}" for k, v in extra.items()]
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


@pytest.fixture
def started(tmp_path: Path, notify_socket: NotifyListener) -> Iterator[tuple[AgentProcess, Bridge]]:
    bridge = Bridge(tmp_path / "bridge", agent="kami")
    bridge.send("warm up", to="nobody")
    agent = AgentProcess("tests.echo_agent", ["run", "--config",
                                              str(write_config(tmp_path, bridge.directory))],
                         {"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "200000"})
    yield agent, bridge
    agent.close()
    bridge.close()


def test_ready_comes_after_health_is_bound(started: tuple[AgentProcess, Bridge],
                                           notify_socket: NotifyListener) -> None:
    agent, _ = started
    notify_socket.wait_for("READY=1")
    # READY means /health answers now (it was bound before READY was sent).
    response = agent.health()
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["agent"] == "echo"
    assert body["bridge"]["reachable"] is True
    for key in ("version", "uptime", "lastActivity", "messagesProcessed", "lastError"):
        assert key in body
    bound = agent.events("health.listening")
    assert bound
    assert notify_socket.states().index("READY=1") >= 0


def test_work_is_done_and_counted(started: tuple[AgentProcess, Bridge],
                                  notify_socket: NotifyListener) -> None:
    agent, bridge = started
    notify_socket.wait_for("READY=1")
    mid = bridge.send("hello", to="echo").id
    wait_for(lambda: bridge.get(mid).status() == "done", what="the echo agent's answer")
    answer = [v for v in bridge.inbox("kami") if v.message.reply_to == mid]
    assert answer[0].message.content == "echo: hello"
    body = wait_for(lambda: (b := agent.health().json())["messagesProcessed"] == 1 and b)
    assert body["lastActivity"] is not None
    assert "hello" not in agent.health().text  # no message content in /health


def test_watchdog_pings_come_from_the_loop_and_stop_when_it_hangs(
        started: tuple[AgentProcess, Bridge], notify_socket: NotifyListener) -> None:
    agent, bridge = started
    notify_socket.wait_for("READY=1")
    wait_for(lambda: notify_socket.states().count("WATCHDOG=1") >= 3, timeout=20,
             what="periodic WATCHDOG=1")
    bridge.send("hang", to="echo")
    agent.wait_event("work.started")
    time.sleep(0.3)  # let any ping already in flight arrive
    count = notify_socket.states().count("WATCHDOG=1")
    # With WATCHDOG_USEC=200ms a live loop pings every 100 ms; a hung one never again.
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        time.sleep(0.1)
    assert notify_socket.states().count("WATCHDOG=1") == count
    assert agent.proc.poll() is None


def test_sigterm_hands_back_the_current_item_and_exits_0(
        started: tuple[AgentProcess, Bridge], notify_socket: NotifyListener) -> None:
    agent, bridge = started
    notify_socket.wait_for("READY=1")
    mid = bridge.send("sleep:30", to="echo").id
    agent.wait_event("work.started")
    assert bridge.get(mid).state.status == "claimed"
    agent.signal(signal.SIGTERM)
    assert agent.wait() == 0
    assert "STOPPING=1" in notify_socket.states()
    agent.wait_event("work.handed_back")
    state = Bridge(bridge.directory).get(mid).state
    assert state.status == "pending"  # available to the next worker, not lost
    assert state.reason == "agent stopping"


def test_second_signal_exits_at_once(started: tuple[AgentProcess, Bridge],
                                     notify_socket: NotifyListener) -> None:
    agent, bridge = started
    notify_socket.wait_for("READY=1")
    bridge.send("hang", to="echo")  # the loop will never get back to check the flag
    agent.wait_event("work.started")
    agent.signal(signal.SIGTERM)
    time.sleep(0.2)
    assert agent.proc.poll() is None
    agent.signal(signal.SIGTERM)
    assert agent.wait(timeout=10) == 128 + signal.SIGTERM


def test_pause_keeps_the_agent_up_and_idle(started: tuple[AgentProcess, Bridge],
                                           notify_socket: NotifyListener) -> None:
    agent, bridge = started
    notify_socket.wait_for("READY=1")
    bridge.pause("maintenance", by="owner")
    wait_for(lambda: agent.health().json()["status"] == "paused", what="paused health")
    response = agent.health()
    assert response.status_code == 200  # paused is healthy, and says so
    assert response.json()["paused"]["reason"] == "maintenance"
    mid = bridge.send("while paused", to="echo").id
    time.sleep(0.5)
    assert bridge.get(mid).status() == "pending"  # not taken while paused
    bridge.resume(by="owner")
    wait_for(lambda: bridge.get(mid).status() == "done", timeout=10,
             what="work taken after resume")
    assert agent.health().json()["status"] == "ok"


def test_unreachable_bridge_at_start_is_degraded_then_recovers(
        tmp_path: Path, notify_socket: NotifyListener) -> None:
    missing = tmp_path / "not-yet"
    agent = AgentProcess("tests.echo_agent",
                         ["run", "--config", str(write_config(tmp_path, missing))],
                         {"NOTIFY_SOCKET": str(notify_socket.path)})
    try:
        notify_socket.wait_for("READY=1")  # it starts (degraded) rather than crash-loop
        response = agent.health()
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "degraded"
        assert body["bridge"]["reachable"] is False
        assert "does not exist" in body["bridge"]["error"]
        agent.wait_event("bridge.unreachable")
        bridge = Bridge(missing, agent="kami")
        mid = bridge.send("now it exists", to="echo").id
        wait_for(lambda: agent.health().json()["status"] == "ok", timeout=20,
                 what="recovery")
        wait_for(lambda: bridge.get(mid).status() == "done", timeout=10)
        assert len(agent.events("bridge.unreachable")) == 1  # logged once, not per retry
        bridge.close()
    finally:
        agent.close()


def test_run_once_does_the_waiting_work_and_exits(tmp_path: Path) -> None:
    bridge = Bridge(tmp_path / "bridge", agent="kami")
    ids = [bridge.send(f"job {i}", to="echo").id for i in range(3)]
    agent = AgentProcess("tests.echo_agent", ["run", "--once", "--config",
                                              str(write_config(tmp_path, bridge.directory))], {})
    try:
        assert agent.wait() == 0
    finally:
        agent.close()
    assert [bridge.get(i).status() for i in ids] == ["done"] * 3
    assert not agent.events("health.listening")  # no server in run-once mode


def test_port_in_use_is_a_clear_error(tmp_path: Path, started: tuple[AgentProcess, Bridge],
                                      notify_socket: NotifyListener) -> None:
    first, bridge = started
    port = first.health_url.rsplit(":", 1)[1].split("/")[0]
    cfg = tmp_path / "second.toml"
    cfg.write_text(f'bridge = "{bridge.directory}"\n[health]\nport = {port}\n')
    second = AgentProcess("tests.echo_agent", ["run", "--config", str(cfg)], {})
    try:
        assert second.wait() == 1
        line = second.wait_event("health.bind_failed")
        assert "Address already in use" in line["error"]
        assert line["level"] == "error"
    finally:
        second.close()


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("[health]\nport = 'eighty'\n", "health.port"),
        ("[health]\nprot = 8080\n", "health.prot"),
        ("[health]\ntoken = 'abc'\n", "health.token"),
        ("[health]\nbind = '10.1.2.3'\n", "health.token"),
        ("durability = 'sometimes'\n", "durability"),
        ("[peers]\ninterval = 'soon'\n", "peers.interval"),
        ("this is not toml\n", "config"),
    ],
)
def test_config_errors_name_the_key_and_stop_restarts(tmp_path: Path, toml: str,
                                                      key: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml)
    agent = AgentProcess("tests.echo_agent", ["run", "--config", str(cfg)], {})
    try:
        assert agent.wait() == 78  # EX_CONFIG: the unit does not restart on it
    finally:
        agent.close()
    assert f"config {key}" in "\n".join(agent.raw)
    assert len(agent.raw) == 1


def test_an_agent_works_through_an_ssh_bridge(tmp_path: Path, sshd: SSHD,
                                              notify_socket: NotifyListener) -> None:
    """Kami on one VPS, the bridge on another: the same agent, an ssh:// URL, pushed wake-ups."""
    bridge = Bridge(tmp_path / "bridge", agent="kami")
    bridge.send("warm up", to="nobody")
    cfg = tmp_path / "echo.toml"
    cfg.write_text(f'bridge = "{sshd.url(bridge.directory)}"\nidle_wait = "30s"\n'
                   f'[health]\nport = 0\n[ssh]\nconfig = "{sshd.ssh_config}"\n'
                   f'remote_command = "{BRIDGE_COMMAND}"\n')
    agent = AgentProcess("tests.echo_agent", ["run", "--config", str(cfg)],
                         {"NOTIFY_SOCKET": str(notify_socket.path)})
    try:
        notify_socket.wait_for("READY=1")
        assert agent.health().json()["bridge"]["reachable"] is True
        mid = bridge.send("over ssh", to="echo").id
        # idle_wait is 30 s: only the host's push can make this quick.
        wait_for(lambda: bridge.get(mid).status() == "done", timeout=10,
                 what="the answer through the ssh:// bridge")
        bridge.pause("maintenance")
        wait_for(lambda: agent.health().json()["status"] == "paused", timeout=15)
        paused_id = bridge.send("while paused", to="echo").id
        bridge.resume()
        wait_for(lambda: bridge.get(paused_id).status() == "done", timeout=15,
                 what="work after resume (PAUSE is polled over ssh)")
        agent.signal(signal.SIGTERM)
        assert agent.wait() == 0
    finally:
        agent.close()
        bridge.close()


def test_a_wrong_health_token_is_refused_and_logged(tmp_path: Path,
                                                    notify_socket: NotifyListener) -> None:
    bridge = Bridge(tmp_path / "bridge", agent="kami")
    bridge.send("warm up", to="nobody")
    agent = AgentProcess("tests.echo_agent",
                         ["run", "--config", str(write_config(tmp_path, bridge.directory))],
                         {"NOTIFY_SOCKET": str(notify_socket.path),
                          "ECHO_HEALTH_TOKEN": "right-token-123"})
    try:
        notify_socket.wait_for("READY=1")
        assert agent.health().status_code == 401
        assert agent.health("wrong-token").status_code == 401
        good = agent.health("right-token-123")
        assert good.status_code == 200
        line = agent.wait_event("health.rejected", where=lambda e: e["reason"] == "wrong token")
        assert line["level"] == "warning"
        assert "right-token-123" not in "\n".join(agent.raw)
        assert "right-token-123" not in good.text
    finally:
        agent.close()
        bridge.close()
