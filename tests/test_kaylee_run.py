"""Running a recipe's command: real processes, process groups, timeouts, capped output."""

from __future__ import annotations

import os
import stat
import sys
import threading
from pathlib import Path

import pytest

from kaylee import RecipeFailed
from kaylee._run import base_environment, run_command
from tests.sshd import wait_gone


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_hanging_command_is_killed_with_its_whole_group_at_the_timeout(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    # A child that ignores SIGTERM and a grandchild in the background: both must go.
    script = f"trap '' TERM; sleep 300 & echo $! > {pids}; echo $$ >> {pids}; sleep 300"
    result = run_command(["sh", "-c", script], timeout=1.0, kill_grace=0.5)
    assert result.timed_out and not result.ok
    assert "did not finish within 1s" in result.failure(1.0)
    recorded = [int(x) for x in pids.read_text().split()]
    assert len(recorded) == 2
    wait_gone(recorded, timeout=10)
    assert not any(alive(p) for p in recorded)


def test_megabytes_of_output_are_capped_and_kept_whole_in_a_side_file(tmp_path: Path) -> None:
    side = tmp_path / "output" / "task.1.log"
    size = 5 * 1024 * 1024
    code = f"import sys; sys.stdout.write('a' * {size - 4}); sys.stdout.write('TAIL')"
    result = run_command([sys.executable, "-c", code], timeout=30, limit=4096, side_file=side)
    assert result.ok
    assert result.output_bytes == size
    assert result.truncated
    assert result.output_file == side
    assert side.stat().st_size == size
    assert stat.S_IMODE(side.stat().st_mode) == 0o600
    assert len(result.output) < 4096 + 200  # the tail plus one line saying where the rest is
    assert result.output.endswith("TAIL")
    assert str(side) in result.output


def test_the_side_file_itself_is_bounded(tmp_path: Path) -> None:
    side = tmp_path / "big.log"
    code = "import sys; sys.stdout.write('b' * 3_000_000)"
    result = run_command([sys.executable, "-c", code], timeout=30, limit=1024, side_file=side,
                         file_limit=100_000)
    assert result.output_bytes == 3_000_000
    data = side.read_bytes()
    assert data.startswith(b"b" * 100_000)
    assert b"output cut here" in data[100_000:]
    assert len(data) < 100_300


def test_small_output_stays_in_the_message_and_no_file_is_left(tmp_path: Path) -> None:
    side = tmp_path / "small.log"
    result = run_command(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=10,
                         side_file=side)
    assert result.exit_code == 3
    assert result.output == "out\nerr\n"
    assert result.output_file is None and not side.exists()
    assert "exited with status 3" in result.failure(10)


def test_background_processes_left_behind_are_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "bg"
    result = run_command(["sh", "-c", f"sleep 300 & echo $! > {pid_file}; echo done"],
                         timeout=30)
    assert result.ok and result.leftovers_killed
    wait_gone([int(pid_file.read_text())], timeout=10)


def test_a_stop_gives_the_command_its_grace_then_kills_it() -> None:
    stop = threading.Event()
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    try:
        result = run_command(["sleep", "300"], timeout=60, stop=stop, stop_grace=0.5,
                             kill_grace=0.5)
    finally:
        timer.cancel()
    assert result.interrupted and not result.timed_out


def test_a_command_that_finishes_within_the_grace_is_not_interrupted() -> None:
    stop = threading.Event()
    stop.set()
    result = run_command(["sh", "-c", "sleep 0.3; echo finished"], timeout=60, stop=stop,
                         stop_grace=20)
    assert result.ok and result.output == "finished\n"


def test_a_missing_program_or_directory_is_a_recipe_failure(tmp_path: Path) -> None:
    with pytest.raises(RecipeFailed, match="cannot run /no/such/program"):
        run_command(["/no/such/program"], timeout=5)
    with pytest.raises(RecipeFailed, match="cannot run true"):
        run_command(["true"], timeout=5, cwd=tmp_path / "missing")


def test_recipes_do_not_inherit_kaylees_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAYLEE_ANTHROPIC_API_KEY", "sk-ant-secret")
    monkeypatch.setenv("KAYLEE_GREEN_API_TOKEN", "green-secret")
    env = base_environment({"EXTRA": "1"})
    result = run_command(["env"], timeout=10, env=env)
    assert "secret" not in result.output
    assert "EXTRA=1" in result.output
    assert f"PATH={os.environ['PATH']}" in result.output
