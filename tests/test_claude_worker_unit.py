"""The Claude worker's unit: the agent template plus its drop-in, checked with the real
``systemd-analyze`` (verify with an empty stderr, the security exposure) — no systemd is
started."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from tests.conftest import ROOT, require_tool

UNITS = ROOT / "systemd"
DROP_IN = UNITS / "kami-bridge@claude-worker.service.d" / "claude.conf"
INSTALL_BIN = "/opt/kami-bridge/current/bin"


def render(dest: Path) -> Path:
    """The template and the drop-in, ExecStart pointing at a stub that exists here."""
    bin_dir = dest / "bin"
    bin_dir.mkdir(parents=True)
    stub = bin_dir / "claude-worker"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    template = (UNITS / "kami-bridge@.service").read_text().replace(INSTALL_BIN, str(bin_dir))
    (dest / "kami-bridge@.service").write_text(template)
    drop_in = dest / DROP_IN.parent.name
    drop_in.mkdir()
    shutil.copy(DROP_IN, drop_in / DROP_IN.name)
    return dest / "kami-bridge@claude-worker.service"


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_tool("systemd-analyze"), *args], capture_output=True,
                          text=True, check=False, timeout=60)


def test_the_worker_unit_verifies_cleanly_with_its_drop_in(tmp_path: Path) -> None:
    unit = render(tmp_path)
    result = analyze("verify", "--man=no", str(unit))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_the_drop_in_is_loaded_and_lifts_only_what_the_cli_needs(tmp_path: Path) -> None:
    unit = render(tmp_path)
    (tmp_path / DROP_IN.parent.name / DROP_IN.name).write_text(
        DROP_IN.read_text() + "NotAKey=1\n")
    result = analyze("verify", "--man=no", str(unit))
    assert "NotAKey" in result.stderr  # so verify reads the drop-in: the check above counts
    settings = [line for line in DROP_IN.read_text().splitlines()
                if line and not line.startswith(("#", "["))]
    assert settings == ["MemoryDenyWriteExecute=no", "ProcSubset=all",
                        "KillMode=control-group"]


def test_the_worker_unit_stays_hardened(tmp_path: Path) -> None:
    unit = render(tmp_path)
    out = analyze("security", "--offline=yes", str(unit)).stdout
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
    assert match, out[-500:]
    assert float(match.group(1)) <= 2.0
    assert re.search(r"✗ MemoryDenyWriteExecute=", out)  # the drop-in is what was rated
