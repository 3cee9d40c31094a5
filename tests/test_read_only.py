"""Reading a bridge needs no write access (issue 17, item 2).

A monitoring user, a backup copy or a read-only mount: every reading command
answers and exits 0. As root (CI) the bridge is bind-mounted read-only in a
private mount namespace (`unshare -m`); otherwise its modes are 0555/0444.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from bridge import Bridge
from tests.conftest import require_tool

BIN = Path(sys.executable).parent
READERS = [["tail"], ["tail", "-n", "1"], ["inbox", "--for", "claude"], ["status"],
           ["doctor"], ["stats"], ["search", "hello"]]


def run_read_only(directory: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    command = shlex.join([str(BIN / "bridge"), *args])
    env = {"PATH": "/usr/bin:/bin", "HOME": str(directory.parent), "BRIDGE_DIR": str(directory),
           "NO_COLOR": "1", "LANG": "C.UTF-8"}
    if os.geteuid() == 0:
        unshare = require_tool("unshare")
        script = (f"mount --bind {shlex.quote(str(directory))} {shlex.quote(str(directory))} && "
                  f"mount -o remount,ro,bind {shlex.quote(str(directory))} && "
                  f"touch {shlex.quote(str(directory / 'probe'))} 2>/dev/null && exit 99; "
                  f"exec {command}")
        argv = [unshare, "-m", "--propagation", "private", "sh", "-c", script]
    else:
        argv = ["sh", "-c", f"exec {command}"]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60,
                          check=False)


@pytest.fixture
def read_only_bridge(tmp_path: Path) -> Path:
    d = tmp_path / "bridge"
    with Bridge(d, agent="kami") as b:
        b.send("hello there", to="claude")
    if os.geteuid() != 0:
        for f in d.iterdir():
            f.chmod(0o444)
        d.chmod(0o555)
    return d


@pytest.mark.parametrize("args", READERS)
def test_reading_commands_answer_and_exit_0(read_only_bridge: Path, args: list[str]) -> None:
    result = run_read_only(read_only_bridge, args)
    assert result.returncode != 99, "the mount was not read-only"
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and "Traceback" not in result.stderr
    if args[0] in ("tail", "inbox", "search"):
        assert "hello there" in result.stdout
