"""The unit files: `systemd-analyze verify` with empty stderr, `security` exposure ≤ 2.0.

No systemd is started here. The opt-in test at the end (BRIDGE_SYSTEMD_IT=1) runs
a *user-mode* manager inside a private mount namespace the test creates, never
system mode (../shared/reference/systemd.md: system mode once emptied a machine's
/tmp).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, require_tool
from tests.helpers import wait_for

UNITS = ROOT / "systemd"
INSTALL_BIN = "/opt/kami-bridge/current/bin"
AGENTS = ("kami", "kaylee")

SEED_UNIT = """[Unit]
Description=Kami AI WhatsApp Agent
After=network.target
Restart=always
[Service]
Type=simple
User=kami
WorkingDirectory=/home/kami/agent
ExecStart={bin}/node dist/index.js
Restart=on-failure
RestartSec=10
StandardOutput=journal
StandardError=journal
Environment=NODE_ENV=production
[Install]
WantedBy=multi-user.target
"""


def render(dest: Path) -> Path:
    """Copy the units with ExecStart pointing at stub executables that exist here
    (verify checks that the binary exists)."""
    bin_dir = dest / "bin"
    bin_dir.mkdir(parents=True)
    for name in (*AGENTS, "bridge", "node"):
        stub = bin_dir / name
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
    for unit in UNITS.iterdir():
        if unit.suffix in (".service", ".timer"):
            text = unit.read_text().replace(INSTALL_BIN, str(bin_dir))
            (dest / unit.name).write_text(text)
    return dest


def verify(*paths: Path) -> subprocess.CompletedProcess[str]:
    tool = require_tool("systemd-analyze")
    return subprocess.run([tool, "verify", "--man=no", *map(str, paths)], capture_output=True,
                          text=True, check=False, timeout=60)


def exposure(path: Path) -> float:
    tool = require_tool("systemd-analyze")
    out = subprocess.run([tool, "security", "--offline=yes", str(path)], capture_output=True,
                         text=True, check=False, timeout=60).stdout
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
    assert match, out[-500:]
    return float(match.group(1))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render(tmp_path_factory.mktemp("units"))


def unit_files() -> list[str]:
    return sorted(p.name for p in UNITS.iterdir() if p.suffix in (".service", ".timer"))


def test_there_are_units_to_check() -> None:
    assert "kami-bridge@.service" in unit_files()


@pytest.mark.parametrize("name", [n for n in unit_files() if "@" not in n])
def test_plain_units_verify_cleanly(rendered: Path, name: str) -> None:
    result = verify(rendered / name)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@pytest.mark.parametrize("agent", AGENTS)
def test_agent_instances_verify_cleanly(rendered: Path, agent: str) -> None:
    result = verify(rendered / f"kami-bridge@{agent}.service")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@pytest.mark.parametrize("agent", AGENTS)
def test_agent_units_are_hardened(rendered: Path, agent: str) -> None:
    assert exposure(rendered / f"kami-bridge@{agent}.service") <= 2.0


def test_the_check_catches_the_seeds_mistake(tmp_path: Path) -> None:
    """The seed's unit had Restart= in [Unit]: systemd ignores it, with only a warning."""
    render(tmp_path)
    unit = tmp_path / "seed-kami.service"
    unit.write_text(SEED_UNIT.format(bin=tmp_path / "bin"))
    result = verify(unit)
    assert result.returncode == 0  # which is why a check on the exit code alone is useless
    assert "Unknown key 'Restart' in section [Unit]" in result.stderr
    assert exposure(unit) > 2.0


def sections(text: str) -> dict[str, str]:
    """A unit file's sections (comments dropped), each as its lines joined."""
    out: dict[str, list[str]] = {}
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            continue
        out.setdefault(current, []).append(line)
    return {k: "\n".join(v) for k, v in out.items()}


def test_agent_unit_policy() -> None:
    """Settings whose absence systemd would not complain about."""
    parts = sections((UNITS / "kami-bridge@.service").read_text())
    service, unit = parts["Service"], parts["Unit"]
    assert "Type=notify" in service
    assert "Restart=on-failure" in service
    assert "RestartSec=5" in service
    assert "WatchdogSec=" in service
    assert "StartLimitIntervalSec=" in unit
    assert "StartLimitBurst=" in unit
    assert "RestartPreventExitStatus=78" in service
    assert "LoadCredential=health-token:" in service
    assert "Environment=" not in service.replace("Environment=PYTHON", "") \
        .replace("EnvironmentFile=", "")  # no secrets in Environment=


# -- opt-in: a real user-mode systemd in a private mount namespace ------------------------

IT = os.environ.get("BRIDGE_SYSTEMD_IT") == "1"

CRASHY = """#!/usr/bin/env python3
# READY, then exit 3 until it has been started three times.
import os, socket, sys, time
count = {count!r}
n = int(open(count).read()) + 1 if os.path.exists(count) else 1
open(count, "w").write(str(n))
addr = os.environ["NOTIFY_SOCKET"]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect("\\0" + addr[1:] if addr.startswith("@") else addr)
s.send(b"READY=1")
if n < 3:
    time.sleep(0.5)
    sys.exit(3)
while True:
    s.send(b"WATCHDOG=1")
    time.sleep(0.5)
"""

HUNG = """#!/usr/bin/env python3
# READY, then never a WATCHDOG=1: the watchdog must kill and restart it.
import os, socket, time
addr = os.environ["NOTIFY_SOCKET"]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect("\\0" + addr[1:] if addr.startswith("@") else addr)
s.send(b"READY=1")
open({count!r}, "a").write("x")
time.sleep(3600)
"""

UNIT = """[Unit]
Description=test {name}
StartLimitIntervalSec=60
StartLimitBurst=10
[Service]
Type=notify
ExecStart={script}
Restart=on-failure
RestartSec=200ms
{extra}
"""


class UserManager:
    """``systemd --user`` in a private mount namespace; every client call enters it."""

    def __init__(self, root: Path) -> None:
        self.runtime = root / "xdg"
        self.runtime.mkdir(mode=0o700)
        (self.runtime / "systemd" / "user").mkdir(parents=True)
        script = (f"mount -t tmpfs tmpfs /run/systemd && mkdir -p /run/systemd/system && "
                  f"export XDG_RUNTIME_DIR={self.runtime} && exec /lib/systemd/systemd --user")
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_for(lambda: self.ctl("is-system-running").stdout.strip() in ("running", "degraded"),
                 timeout=30, interval=0.2, what="the user manager")

    @property
    def manager_pid(self) -> int:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        return int(children.split()[0]) if children.strip() else self.proc.pid

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["nsenter", "-t", str(self.proc.pid), "-m", "--", "env",
                               f"XDG_RUNTIME_DIR={self.runtime}", "systemctl", "--user", *args],
                              capture_output=True, text=True, check=False, timeout=30)

    def install(self, name: str, text: str) -> None:
        (self.runtime / "systemd" / "user" / name).write_text(text)
        self.ctl("daemon-reload")

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.ctl("show", "-p", ",".join(props), unit).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=20)


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[UserManager]:
    if not IT:
        pytest.skip("opt-in: set BRIDGE_SYSTEMD_IT=1 (runs systemd --user in a private "
                    "mount namespace)")
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("nsenter"):
        pytest.fail("BRIDGE_SYSTEMD_IT needs root, unshare and nsenter")
    m = UserManager(tmp_path)
    yield m
    m.stop()


def test_it_crashing_agent_is_restarted(manager: UserManager, tmp_path: Path) -> None:
    script = tmp_path / "crashy.py"
    script.write_text(CRASHY.format(count=str(tmp_path / "count")))
    script.chmod(0o755)
    manager.install("crashy.service", UNIT.format(name="crashy", script=script, extra=""))
    manager.ctl("start", "crashy.service")
    def restarted_twice_then_up() -> bool:
        s = manager.show("crashy.service", "NRestarts", "ActiveState")
        return s.get("NRestarts") == "2" and s.get("ActiveState") == "active"

    wait_for(restarted_twice_then_up, timeout=60, interval=0.2,
             what="two restarts, then active")


def test_it_hung_agent_is_killed_by_the_watchdog(manager: UserManager, tmp_path: Path) -> None:
    count = tmp_path / "starts"
    script = tmp_path / "hung.py"
    script.write_text(HUNG.format(count=str(count)))
    script.chmod(0o755)
    manager.install("hung.service", UNIT.format(name="hung", script=script,
                                                extra="WatchdogSec=2"))
    manager.ctl("start", "hung.service")
    wait_for(lambda: count.exists() and len(count.read_text()) >= 2, timeout=60, interval=0.2,
             what="a restart after the watchdog fired")
    time.sleep(0.1)
    result = manager.show("hung.service", "NRestarts")
    assert int(result["NRestarts"]) >= 1
