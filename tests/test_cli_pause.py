"""Pausing a bridge that is already paused (issue 17, item 4)."""

from __future__ import annotations

from pathlib import Path

from bridge import Bridge, Entry
from tests.conftest import CLI


def test_pausing_a_paused_bridge_keeps_the_first_pause(cli: CLI, bridge_dir: Path) -> None:
    """A second pause used to replace the first one's reason, pauser and time."""
    first = cli.run("pause", "--reason", "deploy window", "--by", "owner")
    assert first.returncode == 0 and "paused by owner: deploy window" in first.stderr
    second = cli.run("pause", "--reason", "something else", "--by", "kaylee")
    assert second.returncode == 0
    assert "already paused by owner" in second.stderr and "deploy window" in second.stderr
    with Bridge(bridge_dir, agent="x") as b:
        info = b.paused()
        assert info is not None and (info.by, info.reason) == ("owner", "deploy window")
        events = [e.record for e in b.entries() if isinstance(e, Entry) and e.kind == "event"]
    assert [e["event"] for e in events] == ["pause"]  # one pause, one audit record
