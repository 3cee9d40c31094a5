"""bridge deploy end to end over a real sshd, onto this machine under a directory.

What is real: the SSH connection (host key verified), SFTP staging, a venv made
on the "host" with the wheel built from this checkout, the config and
credentials installed with their modes, the symlink switch, the agent running
from the new release and answering /health, the rollback.

Where it stops: systemctl. No systemd runs in the tests, so a stand-in
systemctl starts and stops the agent process itself (from the release the
`current` link points at), and systemd-sysusers/tmpfiles are stand-ins that
only record that they were called. The new venv gets its third-party
dependencies from this test environment's site-packages (--extra-site) instead
of downloading them: the wheel itself is installed by pip as on a real host.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bridge import Bridge, ConfigError
from bridge.runtime._deploy import DeployFailed, DeployPlan, build_wheel, deploy
from bridge.runtime._remote_exec import RemoteHost
from tests.conftest import CLI, ROOT
from tests.helpers import wait_for
from tests.sshd import SSHD

# The stand-in systemctl: `restart` (re)starts the agent from the current release,
# `stop` kills it by the pid it recorded. Every call is logged.
SYSTEMCTL = """#!/bin/sh
set -e
state="{state}"
echo "$*" >> "$state/calls"
case "$1" in
  daemon-reload|enable) exit 0 ;;
  restart|start)
    if [ -f "$state/pid" ]; then kill "$(cat "$state/pid")" 2>/dev/null || true; fi
    PYTHONPATH="{agents}" setsid "{root}/opt/kami-bridge/current/bin/python" -m echo_agent \\
      run --config "{root}/etc/kami-bridge/echo.toml" >> "$state/agent.log" 2>&1 < /dev/null &
    echo $! > "$state/pid"; exit 0 ;;
  stop) if [ -f "$state/pid" ]; then
          kill "$(cat "$state/pid")" 2>/dev/null || true; rm -f "$state/pid"
        fi; exit 0 ;;
  *) echo "unexpected: $*" >&2; exit 1 ;;
esac
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    built = build_wheel(ROOT)
    dest = tmp_path_factory.mktemp("wheel") / built.name
    shutil.move(built, dest)
    return dest


class Host:
    """The pieces of the "host": its root, its stand-ins, the agent it runs."""

    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path / "host"
        self.root.mkdir()
        self.state = tmp_path / "systemctl-state"
        self.state.mkdir()
        agents = tmp_path / "agents"
        agents.mkdir()
        shutil.copy(ROOT / "tests" / "echo_agent.py", agents / "echo_agent.py")
        self.systemctl = tmp_path / "systemctl"
        self.systemctl.write_text(SYSTEMCTL.format(state=self.state, agents=agents,
                                                   root=self.root))
        self.systemctl.chmod(0o755)
        self.noop = tmp_path / "noop"
        self.noop.write_text(f'#!/bin/sh\necho "$0 $*" >> "{self.state}/calls"\n')
        self.noop.chmod(0o755)
        self.bridge = Bridge(tmp_path / "bridge", agent="owner")
        self.bridge.send("warm up", to="nobody")
        self.port = free_port()

    def config(self, path: Path, bridge: Path | None = None) -> Path:
        path.write_text(f'bridge = "{bridge or self.bridge.directory}"\n'
                        f"[health]\nport = {self.port}\n")
        return path

    def plan(self, wheel: Path, config: Path, **kw: object) -> DeployPlan:
        # A plain interpreter (not this venv's), like a host's python3.
        base_python = Path(getattr(sys, "_base_executable", sys.executable))
        return DeployPlan(agent="echo", wheel=wheel, config=config, root=str(self.root),
                          python=str(base_python), systemctl=str(self.systemctl),
                          sysusers=str(self.noop), tmpfiles=str(self.noop),
                          extra_site=sysconfig.get_paths()["purelib"], **kw)  # type: ignore[arg-type]

    def health(self) -> dict[str, object]:
        return httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=5).json()

    def current(self) -> str:
        return (self.root / "opt/kami-bridge/current").resolve().parent.name

    def stop(self) -> None:
        pid_file = self.state / "pid"
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.bridge.close()


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    h = Host(tmp_path)
    yield h
    h.stop()


def test_deploy_then_a_bad_upgrade_rolls_back(sshd: SSHD, wheel: Path, host: Host,
                                              tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "health-token").write_text("")
    (creds / "green-api-token").write_text("secret-token-value")
    steps: list[dict[str, object]] = []
    with RemoteHost("bridgehost", ssh_config=sshd.ssh_config) as remote:
        first = deploy(remote, host.plan(wheel, host.config(tmp_path / "good.toml"),
                                         credentials=creds, release="r1"), on_step=steps.append)
        assert first.outcome == "deployed"
        assert [s["step"] for s in steps] == ["release", "installed", "units", "config",
                                              "restarted", "healthy"]
        assert host.current() == "r1"
        assert host.health()["status"] == "ok"
        # The agent runs from the release's venv: its bridge is the installed wheel.
        mid = host.bridge.send("hello from the owner", to="echo").id
        wait_for(lambda: host.bridge.get(mid).status() == "done", what="the deployed agent")

        installed = host.root / "etc/kami-bridge/credentials/echo"
        assert stat.S_IMODE(installed.stat().st_mode) == 0o700
        token = installed / "green-api-token"
        assert token.read_text() == "secret-token-value"
        assert stat.S_IMODE(token.stat().st_mode) == 0o600
        for name in ("anthropic-api-key", "ssh-key"):  # every LoadCredential= exists
            assert (installed / name).read_text() == ""
        unit = host.root / "etc/systemd/system/kami-bridge@.service"
        assert unit.read_text() == (ROOT / "systemd/kami-bridge@.service").read_text()
        # Drop-ins go beside the template (the Claude worker's needs one to start).
        drop_in = "kami-bridge@claude-worker.service.d/claude.conf"
        assert (host.root / "etc/systemd/system" / drop_in).read_text() == (
            ROOT / "systemd" / drop_in).read_text()
        calls = (host.state / "calls").read_text()
        assert "daemon-reload" in calls
        assert "restart kami-bridge@echo.service" in calls
        assert "--create" in calls  # systemd-tmpfiles --create ran (the stand-in)

        # A release whose agent cannot reach its bridge reports degraded: rolled back.
        bad = host.config(tmp_path / "bad.toml", bridge=tmp_path / "no-such-bridge")
        with pytest.raises(DeployFailed, match="previous one was restored"):
            deploy(remote, host.plan(wheel, bad, release="r2", health_timeout=4.0))
        assert host.current() == "r1"
        assert "no-such-bridge" not in (host.root / "etc/kami-bridge/echo.toml").read_text()
        wait_for(lambda: host.health()["status"] == "ok", timeout=20,
                 what="the previous release back up")
        # Staging directories are removed, success or not.
        leftovers = [p for p in Path("/tmp").glob("kami-bridge-deploy.*")
                     if p.stat().st_uid == os.getuid() and p.stat().st_mtime > host.root.stat()
                     .st_mtime]
        assert leftovers == []


def test_a_first_install_that_fails_is_stopped(sshd: SSHD, wheel: Path, host: Host,
                                               tmp_path: Path) -> None:
    bad = host.config(tmp_path / "bad.toml", bridge=tmp_path / "no-such-bridge")
    with RemoteHost("bridgehost", ssh_config=sshd.ssh_config) as remote, \
            pytest.raises(DeployFailed, match="no previous release"):
        deploy(remote, host.plan(wheel, bad, release="r1", health_timeout=3.0))
    assert "stop kami-bridge@echo.service" in (host.state / "calls").read_text()


def test_missing_files_are_refused_before_connecting(tmp_path: Path) -> None:
    plan = DeployPlan(agent="echo", config=tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="does not exist"):
        plan.validate()
    with pytest.raises(Exception, match="not valid"):
        DeployPlan(agent="Echo!").validate()


def test_deploy_command(cli: CLI, sshd: SSHD, wheel: Path, host: Host, tmp_path: Path) -> None:
    plan = host.plan(wheel, host.config(tmp_path / "good.toml"))
    result = cli.run("deploy", "bridgehost", "--agent", "echo", "--wheel", str(wheel),
                     "--config", str(plan.config), "--root", plan.root, "--python", plan.python,
                     "--systemctl", plan.systemctl, "--sysusers", plan.sysusers,
                     "--tmpfiles", plan.tmpfiles, "--extra-site", str(plan.extra_site),
                     "--ssh-config", str(sshd.ssh_config), timeout=600)
    assert result.returncode == 0, result.stderr
    assert "healthy" in result.stderr
    assert host.health()["status"] == "ok"
