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


@pytest.mark.parametrize("args", [("inbox", "--for", "claude"), ("tail", "-n", "1"),
                                  ("search", "zz")])
def test_a_huge_text_is_cut_in_a_pipe_and_says_how_to_see_it(
        cli: CLI, bridge_dir: Path, args: tuple[str, ...]) -> None:
    # Issue 17, item 13: a row shows at most HUMAN_CONTENT_CAP characters of a text,
    # then how many are left and the command that shows them; --json keeps all of it.
    huge = "zz " * 300_000  # 900,000 characters, under the 1 MiB record limit
    with Bridge(bridge_dir, agent="kami") as b:
        mid = b.send(huge, to="claude").id
    env = {k: v for k, v in cli.env.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.run([str(BIN / "bridge"), *args], capture_output=True, env=env,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.decode().splitlines() if "zz zz" in line)
    assert len(row) < 4_300
    assert f"(+{len(huge) - 4_000:,} characters; all of it: bridge show {mid})" in row
    shown = cli.ok(args[0], *args[1:], "--json")
    assert huge in shown.replace("\\n", "")
