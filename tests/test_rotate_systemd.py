"""The rotation timer and service: valid units that run the real command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, require_tool

UNITS = ROOT / "systemd"


INSTALL_BIN = "/opt/kami-bridge/current/bin"
"""Where the units expect the toolkit (the deployment layout of docs/operations.md)."""


def render(tmp_path: Path) -> Path:
    """The units with ExecStart pointing at this checkout's `bridge` (verify wants it to exist)."""
    out = tmp_path / "units"
    out.mkdir()
    for name in ("bridge-rotate.service", "bridge-rotate.timer"):
        text = (UNITS / name).read_text()
        (out / name).write_text(text.replace(INSTALL_BIN, str(Path(sys.executable).parent)))
    return out


def test_units_pass_systemd_analyze_verify_with_no_warnings(tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze")
    units = render(tmp_path)
    proc = subprocess.run(
        [analyze, "verify", "--man=no", str(units / "bridge-rotate.timer"),
         str(units / "bridge-rotate.service")],
        capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


def test_timer_is_weekly_and_persistent() -> None:
    analyze = require_tool("systemd-analyze")
    timer = (UNITS / "bridge-rotate.timer").read_text()
    assert "Persistent=true" in timer.splitlines()
    spec = next(line.split("=", 1)[1] for line in timer.splitlines()
                if line.startswith("OnCalendar="))
    proc = subprocess.run([analyze, "calendar", "--iterations=2", spec], capture_output=True,
                          text=True, timeout=60, check=True)
    runs = [line for line in proc.stdout.splitlines() if "Next elapse" in line or "Iter." in line]
    assert len(runs) == 2 and all(" Sun " in line for line in runs), proc.stdout


def test_exec_start_is_a_command_the_cli_accepts(tmp_path: Path) -> None:
    """The service's command line, run for real against a bridge (dry run)."""
    service = (UNITS / "bridge-rotate.service").read_text()
    exec_start = next(line.split("=", 1)[1] for line in service.splitlines()
                      if line.startswith("ExecStart="))
    argv = exec_start.split()
    assert argv[0] == f"{INSTALL_BIN}/bridge"
    bridge_bin = str(Path(sys.executable).parent / "bridge")
    directory = tmp_path / "b"
    subprocess.run([bridge_bin, "--dir", str(directory), "send", "hello"], check=True,
                   capture_output=True, timeout=60)
    proc = subprocess.run([bridge_bin, "--dir", str(directory), *argv[1:], "--dry-run"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("nothing to rotate")
