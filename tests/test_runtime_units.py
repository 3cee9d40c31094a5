"""Runtime pieces in isolation: sd_notify, config, secrets, logs and redaction, /health."""

from __future__ import annotations

import io
import logging
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from bridge import BridgeUnavailable, ConfigError
from bridge.runtime import (
    AgentConfig,
    HealthServer,
    Secret,
    get_logger,
    load_config,
    notify,
    redact,
    register_secret,
    setup_logging,
    watchdog_interval,
)

# -- sd_notify ---------------------------------------------------------------------------------


def test_notify_without_a_socket_is_a_quiet_false() -> None:
    assert notify("READY=1", env={}) is False


def test_notify_to_a_path_socket(tmp_path: Path) -> None:
    path = tmp_path / "n.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(str(path))
        assert notify("READY=1\nSTATUS=hi", env={"NOTIFY_SOCKET": str(path)}) is True
        assert s.recv(100) == b"READY=1\nSTATUS=hi"


def test_notify_to_an_abstract_socket() -> None:
    name = f"kami-bridge-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind("\0" + name)
        assert notify("WATCHDOG=1", env={"NOTIFY_SOCKET": "@" + name}) is True
        assert s.recv(100) == b"WATCHDOG=1"


def test_notify_to_a_missing_socket_raises(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        notify("READY=1", env={"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})


def test_watchdog_interval_is_half_and_only_for_our_pid() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "30000000",
                              "WATCHDOG_PID": str(os.getpid())}) == 15.0
    assert watchdog_interval({}) is None


# -- config ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    model: str = "claude"
    budget: int = 1000


@dataclass(frozen=True)
class KamiLike(AgentConfig):
    kami: Section = Section()


def test_defaults_file_and_environment_in_that_order(tmp_path: Path) -> None:
    cfg = tmp_path / "k.toml"
    cfg.write_text('bridge = "/srv/bridge"\n[health]\nport = 8081\n[kami]\nbudget = 5\n'
                   '[peers]\ninterval = "1m"\n[[peers.peer]]\nname = "kaylee"\n'
                   'url = "http://127.0.0.1:8082"\n')
    env = {"KAMI_HEALTH_PORT": "9000", "KAMI_KAMI_MODEL": "haiku", "KAMI_IDLE_WAIT": "10s"}
    config = load_config(KamiLike, "kami", cfg, env=env)
    assert config.bridge == "/srv/bridge"
    assert config.health.port == 9000  # env beats file
    assert config.kami == Section(model="haiku", budget=5)
    assert config.idle_wait == 10.0
    assert config.peers.interval == 60.0
    assert config.peers.peer[0].name == "kaylee"
    assert config.health.bind == "127.0.0.1"  # default


def test_config_path_from_the_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "k.toml"
    cfg.write_text("[health]\nport = 1234\n")
    assert load_config(KamiLike, "kami", env={"KAMI_CONFIG": str(cfg)}).health.port == 1234
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(KamiLike, "kami", env={"KAMI_CONFIG": str(tmp_path / "nope.toml")})


@pytest.mark.parametrize(
    ("toml", "env", "key", "problem"),
    [
        ("[health]\nport = 'x'\n", {}, "health.port", "expected an integer"),
        ("", {"KAMI_HEALTH_PORT": "many"}, "health.port", "expected an integer"),
        ("[health]\nport = 70000\n", {}, "health.port", "not a TCP port"),
        ("[kami]\nmodle = 'x'\n", {}, "kami.modle", "did you mean model"),
        ("[[peers.peer]]\nname = 'k'\nurl = 'ftp://x'\n", {}, "peers.peer[0].url", "http(s)"),
        ("[[peers.peer]]\nname = 'k'\n", {}, "peers.peer[0]", "incomplete"),
        ("[log]\nlevel = 'loud'\n", {}, "log.level", "debug, info"),
        ("name = 'Kami!'\n", {}, "name", "not a valid agent name"),
        ("[peers]\ntoken = 'x'\n", {}, "peers.token", "unknown setting"),
    ],
)
def test_config_errors(tmp_path: Path, toml: str, env: dict[str, str], key: str,
                       problem: str) -> None:
    cfg = tmp_path / "k.toml"
    cfg.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_config(KamiLike, "kami", cfg, env=env)
    assert info.value.key == key
    assert problem in str(info.value)


def test_secrets_come_from_credentials_or_env_never_the_file(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "health-token").write_text("s3cret-from-systemd\n")
    (creds / "peer-kaylee-token").write_text("peer-secret-value")
    cfg = tmp_path / "k.toml"
    cfg.write_text("[[peers.peer]]\nname = 'kaylee'\nurl = 'http://127.0.0.1:1'\n")
    config = load_config(KamiLike, "kami", cfg, env={"CREDENTIALS_DIRECTORY": str(creds),
                                                     "KAMI_HEALTH_TOKEN": "from-env"})
    assert isinstance(config.health.token, Secret)
    assert config.health.token.reveal() == "s3cret-from-systemd"  # credentials win
    assert config.peers.peer[0].token is not None
    assert config.peers.peer[0].token.reveal() == "peer-secret-value"
    assert "s3cret" not in repr(config)
    env_only = load_config(KamiLike, "kami", env={"KAMI_HEALTH_TOKEN": "from-env-123"})
    assert env_only.health.token is not None
    assert env_only.health.token.reveal() == "from-env-123"
    cfg.write_text("[health]\ntoken = 'in-the-file'\n")
    with pytest.raises(ConfigError, match="LoadCredential=health-token"):
        load_config(KamiLike, "kami", cfg, env={})


# -- logs and redaction --------------------------------------------------------------------------


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    old_level, old_handlers = root.level, list(root.handlers)
    handlers = setup_logging("kami", level="debug", stream=stream)
    yield stream
    for h in handlers:
        root.removeHandler(h)
        h.close()
    root.handlers[:] = old_handlers
    root.setLevel(old_level)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in stream.getvalue().splitlines()]


def test_log_lines_have_one_schema(captured: io.StringIO) -> None:
    log = get_logger("kami")
    log.info("message.received", chat="972501234567@c.us", size=12)
    logging.getLogger("somelib").warning("disk %s%% full", 93)
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("step.failed")
    first, second, third = lines(captured)
    assert set(first) == {"ts", "level", "agent", "event", "chat", "size"}
    assert (first["level"], first["agent"], first["event"]) == ("info", "kami", "message.received")
    assert second["event"] == "log"
    assert second["logger"] == "somelib"
    assert second["message"] == "disk 93% full"
    assert third["error"] == "ValueError: boom"
    assert "Traceback" in third["traceback"]


def test_journald_priority_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    stream = io.StringIO()
    root = logging.getLogger()
    handlers = setup_logging("kami", stream=stream)
    try:
        get_logger("kami").error("bridge.unreachable")
        get_logger("kami").info("started")
    finally:
        for h in handlers:
            root.removeHandler(h)
    err, info = stream.getvalue().splitlines()
    assert err.startswith("<3>{")
    assert info.startswith("<6>{")


def test_registered_secrets_never_reach_a_log_line(captured: io.StringIO) -> None:
    register_secret("gr33n-api-t0ken-abcdef")
    log = get_logger("kami")
    log.info("calling", url="https://api.green-api.com/waInstance1101/sendMessage/"
                            "gr33n-api-t0ken-abcdef", nested={"k": ["gr33n-api-t0ken-abcdef"]})
    logging.getLogger("x").info("token is %s", "gr33n-api-t0ken-abcdef")
    try:
        raise RuntimeError("401 for gr33n-api-t0ken-abcdef")
    except RuntimeError:
        log.exception("failed")
    assert "gr33n-api-t0ken-abcdef" not in captured.getvalue()
    assert captured.getvalue().count("***") >= 4


def test_unregistered_token_patterns_are_masked() -> None:
    assert redact("POST /waInstance1101/sendMessage/0123456789abcdef0123") == \
        "POST /waInstance1101/sendMessage/***"
    assert redact("Authorization: Bearer abcdefgh12345") == "Authorization: Bearer ***"
    assert redact('{"apiTokenInstance": "zzzzzzzzzzzz"}') == '{"apiTokenInstance": "***"}'
    assert redact("key sk-ant-api03-AAAAAAAAAAAAAAAA") == "key sk-ant-api03-***"
    assert redact("nothing secret here") == "nothing secret here"


def test_httpx_request_lines_are_redacted(captured: io.StringIO) -> None:
    """httpx logs every request URL at INFO; the Green API token sits in the path."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            return

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    token = "T0KEN" + "x" * 40
    try:
        with httpx.Client() as client:
            client.get(f"http://127.0.0.1:{server.server_port}/waInstance77/getStateInstance/"
                       f"{token}")
    finally:
        server.shutdown()
        server.server_close()
    text = captured.getvalue()
    assert "HTTP Request" in text  # the line exists (debug level) ...
    assert token not in text  # ... without the token


# -- /health -------------------------------------------------------------------------------------


def test_health_status_codes_follow_the_status() -> None:
    state = {"status": "ok", "agent": "kami"}
    server = HealthServer(lambda: dict(state), port=0)
    server.start()
    try:
        assert httpx.get(server.address).status_code == 200
        state["status"] = "paused"
        assert httpx.get(server.address).status_code == 200
        for bad in ("degraded", "stopping"):
            state["status"] = bad
            r = httpx.get(server.address)
            assert r.status_code == 503
            assert r.json()["status"] == bad
        assert httpx.get(server.address.replace("/health", "/other")).status_code == 404
    finally:
        server.stop()


def test_health_token_is_checked() -> None:
    rejected: list[tuple[str, str]] = []
    server = HealthServer(lambda: {"status": "ok"}, port=0, token="health-tok-123",
                          on_reject=lambda addr, why: rejected.append((addr, why)))
    server.start()
    try:
        assert httpx.get(server.address).status_code == 401
        wrong = httpx.get(server.address, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert "health-tok-123" not in wrong.text
        good = httpx.get(server.address, headers={"Authorization": "Bearer health-tok-123"})
        assert good.status_code == 200
    finally:
        server.stop()
    assert rejected == [("127.0.0.1", "missing token"), ("127.0.0.1", "wrong token")]


def test_off_loopback_without_token_is_refused_before_binding() -> None:
    with pytest.raises(BridgeUnavailable, match="needs a bearer token"):
        HealthServer(lambda: {}, bind="192.0.2.1", port=0)


def test_port_in_use_names_the_port() -> None:
    first = HealthServer(lambda: {}, port=0)
    try:
        with pytest.raises(BridgeUnavailable, match=f"127.0.0.1:{first.port}"):
            HealthServer(lambda: {}, port=first.port)
    finally:
        first.stop()


# -- bridge logs -----------------------------------------------------------------------------------


def test_bridge_logs_filters(tmp_path: Path) -> None:
    from tests.conftest import BIN

    log = tmp_path / "kami.jsonl"
    rows = [
        {"ts": "2026-11-21T09:00:00.000Z", "level": "info", "agent": "kami", "event": "started"},
        {"ts": "2026-11-21T09:05:00.000Z", "level": "error", "agent": "kami",
         "event": "bridge.unreachable", "error": "No such file"},
        {"ts": "2026-11-21T09:06:00.000Z", "level": "warning", "agent": "kaylee",
         "event": "peer.state", "peer": "kami", "state": "down"},
        {"ts": "2026-11-21T10:00:00.000Z", "level": "info", "agent": "kami",
         "event": "bridge.reachable"},
    ]
    log.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows) + b"not json\n")
    journal = "\n".join(f"<6>{orjson.dumps(r).decode()}" for r in rows[:2])

    def run(*args: str, stdin: str | None = None) -> list[str]:
        import subprocess

        proc = subprocess.run([str(BIN / "bridge"), "logs", *args], input=stdin, text=True,
                              capture_output=True, check=False)
        assert proc.returncode == 0, proc.stderr
        return [orjson.loads(x)["event"] for x in proc.stdout.splitlines()]

    assert run(str(log), "--json") == [r["event"] for r in rows]
    assert run(str(log), "--json", "--level", "warning") == ["bridge.unreachable", "peer.state"]
    assert run(str(log), "--json", "--agent", "kaylee") == ["peer.state"]
    assert run(str(log), "--json", "--event", "bridge.*") == ["bridge.unreachable",
                                                              "bridge.reachable"]
    assert run(str(log), "--json", "--since", "2026-11-21T09:01:00Z", "--until",
               "2026-11-21T09:59:00Z") == ["bridge.unreachable", "peer.state"]
    assert run("-", "--json", stdin=journal) == ["started", "bridge.unreachable"]
