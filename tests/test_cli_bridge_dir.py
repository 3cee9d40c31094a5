"""A bridge directory that is wrong, or new (issue 17, items 9 and 10)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import CLI


@pytest.mark.parametrize("args", [("inbox", "--for", "claude"), ("send", "hi"), ("status",),
                                  ("pause",)])
def test_a_file_where_the_directory_should_be(cli: CLI, bridge_dir: Path,
                                              args: tuple[str, ...]) -> None:
    bridge_dir.write_text("not a directory")
    result = cli.run(*args)
    assert result.returncode == 6, result.stderr
    assert result.stderr.strip() == (f"error: {bridge_dir} is a file, not a bridge directory "
                                     "(check --dir / $BRIDGE_DIR)")
    assert bridge_dir.read_text() == "not a directory"


@pytest.mark.parametrize("args", [("inbox", "--for", "claude"), ("send", "hi")])
def test_a_directory_where_the_log_should_be(cli: CLI, bridge_dir: Path,
                                             args: tuple[str, ...]) -> None:
    (bridge_dir / "messages.jsonl").mkdir(parents=True)
    result = cli.run(*args)
    assert result.returncode == 7  # an I/O error, as the writer has always said
    assert result.stderr.startswith(f"error: cannot open {bridge_dir / 'messages.jsonl'}: "
                                    "it is a directory")
    assert result.stderr.count("\n") == 1


def test_a_new_bridge_is_announced_once(cli: CLI, bridge_dir: Path) -> None:
    first = cli.run("send", "hello", "--to", "claude")
    assert first.returncode == 0
    assert first.stderr.strip() == f"note: created a new bridge at {bridge_dir}"
    second = cli.run("send", "again", "--to", "claude")
    assert second.returncode == 0 and second.stderr == ""
