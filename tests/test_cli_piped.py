"""Piped human output uses the whole line (issue 17, item 15).

Without a terminal, rich would wrap at 80 columns mid-sentence and cut a table's
content column to a few characters; a pipe (`bridge inbox | grep`, a log) gets
each record on one line, content in full.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bridge import Bridge
from tests.conftest import BIN, CLI

TEXT = " ".join(f"word{i}" for i in range(40))  # 300 characters, no line break


@pytest.mark.parametrize("args", [("inbox", "--for", "claude"), ("tail",), ("tail", "-n", "1"),
                                  ("search", "word39")])
def test_piped_output_keeps_each_record_on_one_full_line(cli: CLI, bridge_dir: Path,
                                                         args: tuple[str, ...]) -> None:
    with Bridge(bridge_dir, agent="kami") as b:
        b.send(TEXT, to="claude")
    env = {k: v for k, v in cli.env.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.run([str(BIN / "bridge"), *args], capture_output=True, env=env,
                          timeout=60, check=False)
    out = proc.stdout.decode()
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in out.splitlines() if "word0" in line]
    assert len(lines) == 1, out
    assert TEXT in lines[0]
