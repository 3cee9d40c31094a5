"""`bridge stats --json` after a rotation (issue 17, item 3)."""

from __future__ import annotations

import time
from pathlib import Path

import orjson

from bridge import Bridge, rotate
from bridge.format._time import parse_ts
from tests.conftest import CLI


def test_first_and_last_are_by_time_and_the_age_is_a_number(cli: CLI, bridge_dir: Path) -> None:
    with Bridge(bridge_dir, agent="kami") as b:
        old = b.send("finished long ago", to="claude").id
        b.done(old)
        kept = b.send("still open", to="claude").id
        time.sleep(0.01)  # a later clock reading for the rotation's epoch header, not a wait
        rotate(b, older_than=0)  # moves the finished one; the live file starts anew
    stats = orjson.loads(cli.ok("stats", "--json"))
    assert parse_ts(stats["first"]) <= parse_ts(stats["last"])
    assert stats["oldest_open"] == kept
    assert isinstance(stats["oldest_open_age_s"], float) and stats["oldest_open_age_s"] >= 0
    assert "oldest_open_age" not in stats
    human = cli.ok("stats")
    assert f"oldest open  {kept} (" in human
