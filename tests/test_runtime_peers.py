"""Peer checks against real HTTP servers: states, deadlines, edge-triggered alerts, sinks."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import orjson
import pytest

from bridge import Bridge
from bridge.runtime import PeerConfig
from bridge.runtime._peers import Alert, BridgeSink, CommandSink, PeerMonitor, check_peer
from tests.agent_proc import AgentProcess, NotifyListener
from tests.conftest import CLI
from tests.helpers import wait_for


class FakePeers:
    """One server, a behaviour per path; ``/switch`` answers whatever ``mode`` says now."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.stop = threading.Event()
        peers = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return

            def reply(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                path = self.path.strip("/")
                mode = peers.mode if path == "switch" else path
                if mode == "ok":
                    self.reply(200, b'{"status":"ok","agent":"kaylee","version":"1.2"}')
                elif mode == "slow":
                    time.sleep(0.3)
                    self.reply(200, b'{"status":"ok"}')
                elif mode == "paused":
                    self.reply(200, b'{"status":"paused","paused":{"reason":"deploy"}}')
                elif mode == "degraded":
                    self.reply(503, b'{"status":"degraded","degraded":"green api down"}')
                elif mode == "garbage":
                    self.reply(200, b"<html>hello</html>")
                elif mode == "nostatus":
                    self.reply(200, b'{"hello":"world"}')
                elif mode == "token":
                    if self.headers.get("Authorization") == "Bearer peer-secret":
                        self.reply(200, b'{"status":"ok"}')
                    else:
                        self.reply(401, b'{"error":"unauthorized"}')
                elif mode == "hang":
                    peers.stop.wait(30)
                elif mode == "trickle":
                    self.send_response(200)
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    for _ in range(100):
                        if peers.stop.wait(0.1):
                            return
                        self.wfile.write(b" ")
                        self.wfile.flush()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/{path}"

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def peers() -> Iterator[FakePeers]:
    p = FakePeers()
    yield p
    p.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("path", "state", "detail"),
    [
        ("ok", "ok", "ok in"),
        ("slow", "slow", "took"),
        ("paused", "paused", "paused: deploy"),
        ("degraded", "degraded", "green api down"),
        ("garbage", "down", "not JSON"),
        ("nostatus", "down", "without a status"),
        ("token", "down", "refused our token"),
        ("hang", "down", "no answer within 0.5s"),
        ("trickle", "down", "not complete within 0.5s"),
    ],
)
def test_states(peers: FakePeers, path: str, state: str, detail: str) -> None:
    with httpx.Client() as client:
        started = time.monotonic()
        result = check_peer(client, "kaylee", peers.url(path), timeout=0.5, slow=0.2)
        elapsed = time.monotonic() - started
    assert result.state == state
    assert detail in result.detail
    assert elapsed < 5  # every check is bounded, even a trickling peer


def test_unreachable_and_token(peers: FakePeers) -> None:
    with httpx.Client() as client:
        down = check_peer(client, "x", f"http://127.0.0.1:{closed_port()}/health", timeout=1)
        ok = check_peer(client, "x", peers.url("token"), token="peer-secret")
    assert down.state == "down"
    assert down.detail.startswith("unreachable")
    assert ok.state == "ok"


def test_alerts_once_down_once_recovered(peers: FakePeers, tmp_path: Path) -> None:
    alerts: list[Alert] = []
    broken: list[Exception] = []

    def failing_sink(alert: Alert) -> None:
        raise RuntimeError("sink down")

    monitor = PeerMonitor([PeerConfig("kaylee", peers.url("switch"))], failures=2,
                          timeout=0.5, sinks=[failing_sink, alerts.append],
                          on_sink_error=lambda sink, exc: broken.append(exc))
    monitor.check_all()
    peers.mode = "garbage"
    monitor.check_all()
    assert alerts == []  # one failure is not yet an alert
    for _ in range(5):
        monitor.check_all()
    assert [a.kind for a in alerts] == ["down"]  # once, not every check
    assert alerts[0].failures == 2
    peers.mode = "paused"  # paused is alive: that is a recovery
    monitor.check_all()
    monitor.check_all()
    assert [a.kind for a in alerts] == ["down", "recovered"]
    assert len(broken) == 2  # the failing sink did not stop the other one


def test_alert_edges_survive_a_restart(peers: FakePeers, tmp_path: Path) -> None:
    state = tmp_path / "state" / "peers.json"
    alerts: list[Alert] = []
    peers.mode = "degraded"
    first = PeerMonitor([PeerConfig("kaylee", peers.url("switch"))], failures=1,
                        sinks=[alerts.append], state_file=state)
    first.check_all()
    assert [a.kind for a in alerts] == ["down"]
    second = PeerMonitor([PeerConfig("kaylee", peers.url("switch"))], failures=1,
                         sinks=[alerts.append], state_file=state)
    second.check_all()
    assert [a.kind for a in alerts] == ["down"]  # no second alert after the restart
    peers.mode = "ok"
    second.check_all()
    assert [a.kind for a in alerts] == ["down", "recovered"]


def test_bridge_and_command_sinks(peers: FakePeers, tmp_path: Path) -> None:
    bridge = Bridge(tmp_path / "bridge", agent="kaylee")
    out = tmp_path / "alert.json"
    script = f"import sys; open({str(out)!r}, 'wb').write(sys.stdin.buffer.read())"
    monitor = PeerMonitor([PeerConfig("kami", peers.url("garbage"))], failures=1,
                          sinks=[BridgeSink(bridge, to="owner"),
                                 CommandSink([sys.executable, "-c", script])])
    monitor.check_all()
    note = bridge.inbox("owner")[0].message
    assert note.type == "notification"
    assert note.metadata["alert"] == "down"
    assert "kami is down" in note.content
    payload = orjson.loads(out.read_bytes())
    assert payload["kind"] == "down"
    assert payload["peer"] == "kami"
    bridge.close()


def test_bridge_health_command(cli: CLI, peers: FakePeers) -> None:
    good = cli.run("health", peers.url("ok"), peers.url("paused"), "--json")
    assert good.returncode == 0
    assert [r["state"] for r in orjson.loads(good.stdout)] == ["ok", "paused"]
    bad = cli.run("health", peers.url("ok"), peers.url("hang"), "--timeout", "0.5s")
    assert bad.returncode == 1
    assert "down" in bad.stdout
    assert "ok" in bad.stdout
    tok = cli.run("health", peers.url("token"), env={"BRIDGE_HEALTH_TOKEN": "peer-secret"})
    assert tok.returncode == 0
    nonsense = cli.run("health", "ftp://x")
    assert nonsense.returncode == 5


def test_agent_runs_the_monitor_and_alerts_through_the_bridge(tmp_path: Path) -> None:
    bridge = Bridge(tmp_path / "bridge", agent="owner")
    bridge.send("warm up", to="nobody")
    cfg = tmp_path / "echo.toml"
    cfg.write_text(f'bridge = "{bridge.directory}"\n[health]\nport = 0\n'
                   f'[peers]\ninterval = "0.2s"\nfailures = 2\ntimeout = "1s"\nalert_to = "owner"\n'
                   f'[[peers.peer]]\nname = "kaylee"\nurl = "http://127.0.0.1:{closed_port()}/health"\n')
    listener = NotifyListener(tmp_path / "n.sock")
    agent = AgentProcess("tests.echo_agent", ["run", "--config", str(cfg)],
                         {"NOTIFY_SOCKET": str(listener.path)})
    try:
        listener.wait_for("READY=1")
        alert = wait_for(lambda: bridge.inbox("owner"), timeout=20, what="the down alert")
        assert alert[0].message.metadata == {"alert": "down", "peer": "kaylee", "state": "down"}
        agent.wait_event("peer.state", where=lambda line: line["state"] == "down")
        assert wait_for(lambda: agent.health().json().get("peers") == {"kaylee": "down"})
        time.sleep(1.0)  # several more failed checks ...
        assert len(bridge.inbox("owner")) == 1  # ... and still one alert
    finally:
        agent.close()
        listener.close()
        bridge.close()
