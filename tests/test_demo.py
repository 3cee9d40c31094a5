"""`make demo` is the README's first command: it must run to the end on a fresh checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.claude_support import CLAUDE_BIN, CLAUDE_VERSION, require_claude
from tests.conftest import ROOT


def test_the_demo_runs_every_section_to_the_end(tmp_path: Path) -> None:
    env = {**os.environ, "KAMI_BRIDGE_DEMO_DIR": str(tmp_path / "demo"), "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "scripts/demo.py"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "Traceback" not in out + proc.stderr
    # One line from each section's loop: the bridge, Kami, Kaylee through Kami.
    assert "send → Claude's handler" in out
    assert "Kami stopped with exit code 0" in out
    assert "✅ Told Kaylee: yes (restart-site)" in out
    assert "kami is down" in out
    assert "Demo finished" in out
    # Where the commands are (Debian's iproute2 has a /sbin/bridge of its own).
    assert f"export PATH={Path(sys.executable).parent}:$PATH" in out
    # Claude Code is the real CLI wherever it is installed (always under CI=true).
    if CLAUDE_BIN.exists() or os.environ.get("CI") == "true":
        require_claude()
        assert f"Claude Code: the real CLI {CLAUDE_VERSION}" in out
        assert "claims kami-" in out and "answers kami-" in out
    else:
        assert "using the scripted stand-in for Claude Code" in out
    assert (tmp_path / "demo" / "kaylee" / "kami" / "kami.log").exists()  # kept where told
