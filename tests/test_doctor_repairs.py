"""The doctor on what a foreign writer leaves (issue 17, item 12): a record over the size
limit is reported, and ``--repair`` terminates the torn tail it reports."""

from __future__ import annotations

from pathlib import Path

import orjson

from bridge import DEFAULT_MAX_RECORD_BYTES, Bridge, run_doctor
from tests.conftest import CLI


def test_a_record_over_the_limit_is_reported(bridge_dir: Path, cli: CLI) -> None:
    with Bridge(bridge_dir, agent="kami") as b:
        b.send("small", to="claude")
        big = {"v": 1, "t": "msg", "id": "intruder-1", "ts": "2026-12-04T10:00:00.000Z",
               "from": "intruder", "type": "request", "status": "pending",
               "content": "x" * (2 * DEFAULT_MAX_RECORD_BYTES)}
        with open(b.log_path, "ab") as f:  # a writer that does not check the limit
            f.write(orjson.dumps(big) + b"\n")
        report = run_doctor(b)
        found = [f for f in report.findings if f.kind == "oversize"]
        assert len(found) == 1 and found[0].severity == "warning"
        assert found[0].ref == "intruder-1" and found[0].line == 3
        assert "over the 1,048,576-byte limit" in found[0].message
        assert report.ok  # shown and folded: a warning, not an error
    out = cli.ok("doctor")
    assert "oversize" in out or "over the 1,048,576-byte limit" in out


def test_repair_terminates_the_torn_tail_it_reports(bridge_dir: Path, cli: CLI) -> None:
    with Bridge(bridge_dir, agent="kami") as b:
        kept = b.send("before the crash", to="claude").id
    log = bridge_dir / "messages.jsonl"
    with open(log, "ab") as f:  # a writer killed mid-record
        f.write(b'{"v":1,"t":"msg","id":"cut-')
    size = log.stat().st_size
    with Bridge(bridge_dir, agent="ops") as b:
        before = run_doctor(b)
        assert [f.kind for f in before.findings if f.severity == "error"] == ["torn-tail"]
        repaired = run_doctor(b, repair=True)
        assert any("torn tail" in r for r in repaired.repaired), repaired.repaired
        assert log.read_bytes().endswith(b"\n") and log.stat().st_size > size
        after = run_doctor(b)
        assert after.ok, after.findings
        assert [f.kind for f in after.findings] == ["torn-repaired"]
        lines = log.read_bytes().splitlines()
        repair = orjson.loads(lines[-2])
        assert repair["t"] == "repair" and repair["bytes"] == len(b'{"v":1,"t":"msg","id":"cut-')
        assert orjson.loads(lines[-1])["event"] == "doctor.repair"
        assert b.get(kept).message.content == "before the crash"  # nothing lost
        b.send("after the repair", to="claude")
    # A second repair finds nothing to do and changes nothing.
    size = log.stat().st_size
    assert "was terminated" not in cli.ok("doctor", "--repair")
    assert log.stat().st_size == size
