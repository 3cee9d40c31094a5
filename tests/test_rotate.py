"""Rotation: what moves where, what stays, cursors across it, archives read by jq."""

from __future__ import annotations

import gzip
import os
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from bridge import (
    BadLine,
    Bridge,
    BridgeUnavailable,
    InvalidInput,
    NotFound,
    StateConflict,
    rotate,
    run_doctor,
)
from bridge.archive._archive import list_archives
from bridge.archive._rotate import _rotation_lock
from bridge.archive._search import iter_archive
from tests.conftest import CLI, require_tool

SOON = 1.0  # rotate(now=time.time() + SOON, older_than=0): everything finished counts as old


def old_message(b: Bridge, mid: str, ts: str, *, status: str | None = None,
                status_ts: str | None = None, content: str = "hello") -> None:
    """A message written at ``ts`` (and a status change at ``status_ts``), by hand."""
    b.append_record({"v": 1, "t": "msg", "id": mid, "ts": ts, "from": "kami", "to": "claude",
                     "type": "request", "status": "pending", "content": content})
    if status is not None:
        b.append_record({"v": 1, "t": "status", "id": f"s-{mid}", "ts": status_ts or ts,
                         "from": "claude", "ref": mid, "status": status})


def all_lines(b: Bridge) -> list[dict[str, Any]]:
    """Every record in the live file and the archives."""
    out = [orjson.loads(raw) for raw in b.log_path.read_bytes().splitlines()]
    for archive in list_archives(b.directory):
        out += [e.record for e in iter_archive(archive) if not isinstance(e, BadLine)]
    return out


def record_ids(records: list[dict[str, Any]]) -> list[str]:
    return [r["id"] for r in records if r.get("t") in ("msg", "status")]


def live_ids(b: Bridge) -> set[str]:
    return {e.record["id"] for e in b.entries() if not isinstance(e, BadLine)}


def test_finished_old_messages_move_with_their_statuses_and_open_ones_stay(
        bridge: Bridge) -> None:
    old_message(bridge, "kami-a", "2026-09-03T10:00:00.000Z", status="done")
    old_message(bridge, "kami-b", "2026-09-20T10:00:00.000Z")  # pending, very old
    old_message(bridge, "kami-c", "2026-10-01T10:00:00.000Z", status="failed")
    old_message(bridge, "kami-d", "2026-10-02T10:00:00.000Z")
    bridge.append_record({"v": 1, "t": "status", "id": "claim-d", "ts": "2026-10-02T10:00:01.000Z",
                          "from": "kaylee", "ref": "kami-d", "status": "claimed",
                          "lease_until": "2099-01-01T00:00:00.000Z"})  # in flight
    old_message(bridge, "kami-e", "2026-10-03T10:00:00.000Z", status="cancelled")
    recent = bridge.send("recent and done", to="claude").id
    bridge.done(recent)
    before = record_ids(all_lines(bridge))

    result = rotate(bridge)  # 30 days by default

    assert result.rotated
    assert result.moved_messages == 3
    assert sorted(a.path.name for a in list_archives(bridge.directory)) == [
        "messages-archive-2026-09.jsonl", "messages-archive-2026-10.jsonl"]
    sept = (bridge.directory / "archive" / "messages-archive-2026-09.jsonl").read_bytes()
    assert sept.splitlines() == [
        b'{"v":1,"t":"msg","id":"kami-a","ts":"2026-09-03T10:00:00.000Z","from":"kami",'
        b'"to":"claude","type":"request","status":"pending","content":"hello"}',
        b'{"v":1,"t":"status","id":"s-kami-a","ts":"2026-09-03T10:00:00.000Z","from":"claude",'
        b'"ref":"kami-a","status":"done"}']
    kept = live_ids(bridge)
    assert {"kami-b", "kami-d", "claim-d", recent} <= kept
    assert not kept & {"kami-a", "s-kami-a", "kami-c", "s-kami-c", "kami-e", "s-kami-e"}
    after = record_ids(all_lines(bridge))
    assert sorted(after) == sorted(before)  # every record exactly once
    assert bridge.get("kami-b").status() == "pending"
    assert bridge.get("kami-d").state.claimed_by == "kaylee"
    assert run_doctor(bridge).ok


def test_new_file_has_a_header_naming_the_old_epoch_and_keeps_its_order(
        bridge: Bridge) -> None:
    ids = [bridge.send(f"m{i}", to="x").id for i in range(6)]
    old_epoch = bridge.fold().epoch
    for mid in ids[::2]:
        bridge.done(mid)
    result = rotate(bridge, older_than=0, now=time.time() + SOON)
    lines = [orjson.loads(x) for x in bridge.log_path.read_bytes().splitlines()]
    assert lines[0]["t"] == "epoch"
    assert lines[0]["prev"] == old_epoch == result.old_epoch
    assert lines[0]["epoch"] == result.new_epoch
    assert [r["id"] for r in lines[1:]] == ids[1::2]
    assert stat.S_IMODE(bridge.log_path.stat().st_mode) == 0o600
    archive = bridge.directory / "archive"
    assert stat.S_IMODE(archive.stat().st_mode) == 0o700
    for path in archive.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_second_rotation_in_a_row_is_a_no_op(bridge: Bridge) -> None:
    for i in range(5):
        bridge.done(bridge.send(f"m{i}", to="x").id)
    bridge.send("open", to="x")
    first = rotate(bridge, older_than=0, now=time.time() + SOON)
    assert first.rotated
    inode = bridge.log_path.stat().st_ino
    content = bridge.log_path.read_bytes()
    archives = {p.name: p.read_bytes() for p in (bridge.directory / "archive").iterdir()}
    second = rotate(bridge, older_than=0, now=time.time() + SOON)
    assert not second.rotated
    assert second.moved_records == 0
    assert bridge.log_path.stat().st_ino == inode
    assert bridge.log_path.read_bytes() == content
    assert {p.name: p.read_bytes() for p in (bridge.directory / "archive").iterdir()} == archives


def test_existing_archive_months_are_appended_to_never_overwritten(bridge: Bridge) -> None:
    old_message(bridge, "kami-1", "2026-08-05T00:00:00.000Z", status="done")
    rotate(bridge)
    path = bridge.directory / "archive" / "messages-archive-2026-08.jsonl"
    first = path.read_bytes()
    old_message(bridge, "kami-2", "2026-08-06T00:00:00.000Z", status="done")
    rotate(bridge)
    assert path.read_bytes().startswith(first)
    assert [r["id"] for r in (orjson.loads(x) for x in path.read_bytes().splitlines())] == [
        "kami-1", "s-kami-1", "kami-2", "s-kami-2"]


def test_status_records_follow_their_message_to_its_month(bridge: Bridge) -> None:
    old_message(bridge, "kami-x", "2026-07-31T23:59:59.000Z", status="done",
                status_ts="2026-08-01T00:00:01.000Z")
    bridge.append_record({"v": 1, "t": "event", "id": "ev-1", "ts": "2026-08-02T00:00:00.000Z",
                          "from": "owner", "event": "pause", "by": "owner"})
    rotate(bridge)
    july = (bridge.directory / "archive" / "messages-archive-2026-07.jsonl").read_bytes()
    august = (bridge.directory / "archive" / "messages-archive-2026-08.jsonl").read_bytes()
    assert b'"s-kami-x"' in july
    assert b'"ev-1"' in august and b"kami-x" not in august


def test_dry_run_changes_nothing(bridge: Bridge) -> None:
    for i in range(4):
        bridge.done(bridge.send(f"m{i}", to="x").id)
    content = bridge.log_path.read_bytes()
    result = rotate(bridge, older_than=0, now=time.time() + SOON, dry_run=True)
    assert result.moved_messages == 4
    assert not result.rotated
    assert bridge.log_path.read_bytes() == content
    assert not (bridge.directory / "archive").exists()


def test_max_size_moves_the_oldest_finished_messages_until_the_file_fits(
        bridge: Bridge) -> None:
    ids = [bridge.send("x" * 400, to="y").id for i in range(40)]
    for mid in ids[:30]:
        bridge.done(mid)
    size = bridge.log_path.stat().st_size
    result = rotate(bridge, older_than=None, max_size=size // 2)
    assert result.rotated
    assert bridge.log_path.stat().st_size <= size // 2
    moved = [r["id"] for r in all_lines(bridge) if r.get("t") == "msg"
             and r["id"] not in live_ids(bridge)]
    assert moved == ids[: len(moved)]  # oldest first
    assert set(ids[30:]) <= live_ids(bridge)  # open ones stay whatever the size


def test_neither_threshold_is_invalid(bridge: Bridge) -> None:
    with pytest.raises(InvalidInput):
        rotate(bridge, older_than=None, max_size=None)


def test_expired_open_messages_count_as_finished(bridge: Bridge) -> None:
    mid = bridge.send("too late", to="x", expires_in=1).id
    rotate(bridge, older_than=0, now=time.time() + 5)
    assert mid not in live_ids(bridge)
    assert bridge.get(mid).status(time.time() + 5) == "expired"


def test_corrupt_lines_are_carried_as_they_are_and_reported(bridge: Bridge) -> None:
    first = bridge.send("a", to="x").id
    bridge.done(first)
    with open(bridge.log_path, "ab") as f:
        f.write(b"garbage that is not json\n")
    second = bridge.send("b", to="x").id
    bridge.done(second)
    with open(bridge.log_path, "ab") as f:
        f.write(b"\x00\x00\x00 trailing damage\n")
    keep = bridge.send("c", to="x").id
    result = rotate(bridge, older_than=0, now=time.time() + SOON)
    assert result.corrupt_moved == 1  # it preceded a record that moved
    assert result.corrupt_kept == 1  # it preceded one that stayed
    archive = next(iter(list_archives(bridge.directory)))
    assert b"garbage that is not json\n" in archive.path.read_bytes()
    assert b"\x00\x00\x00 trailing damage\n" in bridge.log_path.read_bytes()
    assert keep in live_ids(bridge)
    report = run_doctor(bridge)
    corrupt = [(f.file, f.kind) for f in report.errors]
    assert (None, "corrupt") in corrupt
    assert (f"archive/{archive.path.name}", "corrupt") in corrupt


def test_a_repaired_crash_fragment_moves_with_its_repair_record(bridge: Bridge) -> None:
    mid = bridge.send("a", to="x").id
    with open(bridge.log_path, "ab") as f:
        f.write(b'{"v":1,"t":"msg","id":"torn-')  # a writer killed mid-record
    bridge.done(mid)  # this writer terminates the fragment and writes a repair record
    assert bridge.writer.repairs == 1
    rotate(bridge, older_than=0, now=time.time() + SOON)
    archive = next(iter(list_archives(bridge.directory))).path.read_bytes()
    assert b'"t":"repair"' not in bridge.log_path.read_bytes()
    lines = archive.splitlines()
    torn = lines.index(b'{"v":1,"t":"msg","id":"torn-')
    assert b'"t":"repair"' in lines[torn + 1]
    report = run_doctor(bridge)
    assert report.ok, report.findings
    assert [f.kind for f in report.warnings] == ["torn-repaired"]


def test_archives_are_read_by_jq_plain_and_gzipped(bridge: Bridge, tmp_path: Path) -> None:
    jq = require_tool("jq")
    old_message(bridge, "kami-p", "2026-05-01T00:00:00.000Z", status="done",
                content='quotes " and unicode ✓')
    rotate(bridge)
    old_message(bridge, "kami-q", "2026-06-01T00:00:00.000Z", status="done")
    rotate(bridge, compress=True)
    old_message(bridge, "kami-r", "2026-06-02T00:00:00.000Z", status="done")
    rotate(bridge, compress=True)  # a second gzip member in the same month
    plain = bridge.directory / "archive" / "messages-archive-2026-05.jsonl"
    gz = bridge.directory / "archive" / "messages-archive-2026-06.jsonl.gz"
    out = subprocess.run([jq, "-c", "[.id, .content]", str(plain)], capture_output=True,
                         check=True, text=True).stdout
    assert out.splitlines()[0] == '["kami-p","quotes \\" and unicode ✓"]'
    zcat = subprocess.run(["zcat", str(gz)], capture_output=True, check=True).stdout
    ids = subprocess.run([jq, "-r", ".id"], input=zcat, capture_output=True,
                         check=True).stdout.decode().split()
    assert ids == ["kami-q", "s-kami-q", "kami-r", "s-kami-r"]
    assert gzip.decompress(gz.read_bytes()) == zcat
    assert bridge.get("kami-r").status() == "done"


def test_a_month_keeps_the_form_it_has(bridge: Bridge) -> None:
    old_message(bridge, "kami-1", "2026-04-01T00:00:00.000Z", status="done")
    rotate(bridge, compress=True)
    old_message(bridge, "kami-2", "2026-04-02T00:00:00.000Z", status="done")
    rotate(bridge)  # without compression: still appended to the existing .gz
    names = [a.path.name for a in list_archives(bridge.directory)]
    assert names == ["messages-archive-2026-04.jsonl.gz"]


def test_show_and_get_find_archived_messages_and_refuse_changes(bridge: Bridge) -> None:
    root = bridge.send("question", to="claude", sender="kami").id
    answer = bridge.reply(root, "answer", sender="claude").id
    bridge.done(answer, sender="kami")
    rotate(bridge, older_than=0, now=time.time() + SOON)
    assert root not in live_ids(bridge)
    hist = bridge.history(root)
    assert hist.view.message.content == "question"
    assert hist.view.status() == "done"
    assert hist.archive is not None and hist.archive.name.startswith("messages-archive-")
    assert [c["status"] for c in hist.changes] == ["done"]
    assert [v.id for v in hist.thread] == [root, answer]
    assert bridge.get(answer).status() == "done"
    with pytest.raises(StateConflict, match="archived"):
        bridge.done(root)
    with pytest.raises(NotFound, match="or its archives"):
        bridge.get("kami-01JD3X6ZB5T4Q8W2M7N9P0R1S2")


def test_a_writer_opened_before_the_rotation_appends_to_the_new_file(bridge_dir: Path) -> None:
    writer = Bridge(bridge_dir, agent="writer", durability="none")
    for i in range(10):
        writer.done(writer.send(f"m{i}", to="x").id)
    rotator = Bridge(bridge_dir, agent="rotator")
    rotate(rotator, older_than=0, now=time.time() + SOON)
    late = writer.send("after the rotation", to="x").id  # its descriptor is the old file
    assert late in live_ids(rotator)
    assert rotator.get(late).status() == "pending"
    writer.close()
    rotator.close()


def test_a_follower_continues_exactly_where_it_was(bridge: Bridge) -> None:
    ids = [bridge.send(f"m{i}", to="x").id for i in range(10)]
    for mid in ids[:6]:
        bridge.done(mid)
    seen: list[str] = []
    with bridge.follow(start="beginning", watch=False) as f:
        for entry in f.poll(limit=8):  # part way: the header and 7 records
            seen.append(entry.record["id"])
        rotate(bridge, older_than=0, now=time.time() + SOON)
        more = bridge.send("after", to="x").id
        for _ in range(5):
            seen += [e.record["id"] for e in f.poll() if e.record.get("event") != "seal"]
    every = [r["id"] for r in (orjson.loads(x) for x in bridge.log_path.read_bytes().splitlines())]
    assert more in seen
    assert len(seen) == len(set(seen))  # nothing twice
    # Everything it had not seen yet, it saw: the rest of the old file, then the new records.
    assert set(every[1:]) <= set(seen)


def test_a_stopped_consumer_behind_keeps_its_records_and_resumes_without_gap(
        bridge: Bridge) -> None:
    ids = []
    for i in range(10):
        ids.append(bridge.send(f"m{i}", to="x").id)
        bridge.done(ids[-1])
    handled: list[str] = []
    with bridge.follow("slow") as f:  # the header, then 4 messages and their statuses
        f.run(lambda e: handled.append(e.record["id"]), max_records=9)
    result = rotate(bridge, older_than=0, now=time.time() + SOON)
    assert result.behind_cursors.keys() == {"slow"}
    assert result.pinned_messages == 6  # m4..m9 are finished and old but not read by "slow"
    assert set(ids[4:]) <= live_ids(bridge)
    assert not set(ids[:4]) & live_ids(bridge)
    with bridge.follow("slow") as f:
        f.run(lambda e: handled.append(e.record["id"]), idle_timeout=0.2)
    msgs = [h for h in handled if h in ids]
    assert msgs == ids  # in order, each once
    assert len(handled) == len(set(handled))


def test_a_cursor_several_rotations_old_is_relocated_through_the_chain(bridge: Bridge) -> None:
    handled: list[str] = []
    first = [bridge.send(f"a{i}", to="x").id for i in range(3)]
    with bridge.follow("late") as f:
        f.run(lambda e: handled.append(e.record["id"]), idle_timeout=0.1)
    second = [bridge.send(f"b{i}", to="x").id for i in range(3)]
    for mid in first + second[:1]:
        bridge.done(mid)
    rotate(bridge, older_than=0, now=time.time() + SOON)
    third = [bridge.send(f"c{i}", to="x").id for i in range(2)]
    for mid in second[1:]:
        bridge.done(mid)
    rotate(bridge, older_than=0, now=time.time() + SOON)
    with bridge.follow("late") as f:
        f.run(lambda e: handled.append(e.record["id"]), idle_timeout=0.2)
    msgs = [h for h in handled if h in first + second + third]
    assert msgs == first + second + third


def test_rotation_refuses_to_run_twice_at_once(bridge: Bridge) -> None:
    bridge.done(bridge.send("x", to="y").id)
    with _rotation_lock(bridge.directory), pytest.raises(BridgeUnavailable,
                                                         match="another rotation"):
        rotate(bridge, older_than=0, now=time.time() + SOON)


def test_doctor_finds_archive_problems(bridge: Bridge) -> None:
    bridge.done(bridge.send("x", to="y").id)
    rotate(bridge, older_than=0, now=time.time() + SOON)
    archive = next(iter(list_archives(bridge.directory))).path
    kept = bridge.send("open", to="y").id
    line = next(x for x in bridge.log_path.read_bytes().splitlines() if kept.encode() in x)
    with open(archive, "ab") as f:
        f.write(line + b"\n")  # an open message, and one that is also live
        f.write(b'{"v":1,"t":"msg","id":"half')  # and a damaged tail
    kinds = {f.kind for f in run_doctor(bridge).errors}
    assert {"archived-open", "duplicate-archived", "corrupt"} <= kinds


def test_a_status_after_archiving_is_a_warning_not_an_orphan(bridge: Bridge) -> None:
    mid = bridge.send("x", to="y").id
    bridge.done(mid)
    rotate(bridge, older_than=0, now=time.time() + SOON)
    bridge.append_record({"v": 1, "t": "status", "id": "late-1", "ts": "2026-11-21T00:00:00Z",
                          "from": "sh", "ref": mid, "status": "done"})
    report = run_doctor(bridge)
    assert report.ok
    assert [f.kind for f in report.warnings] == ["late-status"]


# -- the command line ------------------------------------------------------------------------

def test_cli_rotate_summary_json_and_search(cli: CLI) -> None:
    for i in range(3):
        cli.ok("done", cli.ok("send", f"deploy {i}", "--to", "kaylee").strip())
    cli.ok("send", "deploy pending", "--to", "kaylee")
    dry = cli.run("rotate", "--older-than", "0s", "--dry-run")
    assert dry.returncode == 0
    assert dry.stderr.startswith("would move 6 records (3 messages,")
    done = cli.run("rotate", "--older-than", "0s")
    assert done.stderr.startswith("moved 6 records (3 messages,"), done.stderr
    assert "lock held" in done.stderr
    again = orjson.loads(cli.ok("rotate", "--older-than", "0s", "--json"))
    assert again["rotated"] is False and again["moved_records"] == 0
    live = cli.ok("search", "deploy", "--json")
    assert [orjson.loads(x)["content"] for x in live.splitlines()] == ["deploy pending"]
    both = cli.ok("search", "deploy", "--archives", "--json")
    assert [orjson.loads(x)["content"] for x in both.splitlines()] == [
        "deploy pending", "deploy 2", "deploy 1", "deploy 0"]
    human = cli.ok("search", "deploy 1", "--archives")
    assert "[messages-archive-" in human


@pytest.mark.parametrize(("args", "code"), [
    (["rotate", "--older-than", "soon"], 5),
    (["rotate", "--max-size", "big"], 5),
    (["rotate", "--older-than", "off"], 5),
    (["search", "(", "--regex"], 5),
    (["search", "x", "--since", "yesterday-ish"], 5),
])
def test_cli_bad_rotation_and_search_input(cli: CLI, args: list[str], code: int) -> None:
    cli.ok("send", "make the bridge")
    result = cli.run(*args)
    assert result.returncode == code, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


def test_cli_show_and_doctor_repair(cli: CLI) -> None:
    mid = cli.ok("send", "to be archived", "--to", "kaylee").strip()
    cli.ok("done", mid)
    cli.ok("rotate", "--older-than", "0s")
    shown = cli.ok("show", mid)
    assert "archived in archive/messages-archive-" in shown
    assert cli.run("done", mid).returncode == 4
    (cli.directory / "rotation.json").write_text(
        '{"v":1,"step":"building","pid":1,"new_epoch":"x","archives":{}}')
    assert cli.run("doctor").returncode == 1
    repaired = cli.run("doctor", "--repair")
    assert repaired.returncode == 0, repaired.stdout
    assert "repaired: an interrupted rotation was rolled back" in repaired.stdout
    assert not (cli.directory / "rotation.json").exists()


def test_rotation_keeps_the_owner_when_run_as_root(bridge: Bridge) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give files away")
    bridge.done(bridge.send("x", to="y").id)
    os.chown(bridge.log_path, 4242, 4343)
    rotate(bridge, older_than=0, now=time.time() + SOON)
    st = bridge.log_path.stat()
    assert (st.st_uid, st.st_gid) == (4242, 4343)
    for path in (bridge.directory / "archive").iterdir():
        assert (path.stat().st_uid, path.stat().st_gid) == (4242, 4343)


@pytest.mark.parametrize("kernel_copy", [True, False])
def test_long_stretches_are_copied_exactly(bridge: Bridge, monkeypatch: pytest.MonkeyPatch,
                                           kernel_copy: bool) -> None:
    """Megabytes in one stretch go through copy_file_range; without it (archive/ on another
    disk: EXDEV) the same bytes go through Python."""
    import errno

    if not kernel_copy:
        def unavailable(*args: object) -> int:
            raise OSError(errno.EXDEV, "Invalid cross-device link")

        monkeypatch.setattr(os, "copy_file_range", unavailable)
    keep = bridge.send("stays", to="x").id
    results = list(bridge.send_many({"content": "y" * 500, "to": "x"} for _ in range(5000)))
    bridge.writer.append([orjson.dumps({"v": 1, "t": "status", "id": f"s-{r.id}",
                                        "ts": "2026-11-21T00:00:00Z", "from": "x",
                                        "ref": r.id, "status": "done"}) + b"\n"
                          for r in results])
    original = bridge.log_path.read_bytes().splitlines(keepends=True)
    rotate(bridge, older_than=0, now=time.time() + SOON)
    archive = next(iter(list_archives(bridge.directory))).path.read_bytes()
    assert len(archive) > 2 << 20
    assert archive == b"".join(original[2:])  # everything after the header and `keep`
    assert next(r["id"] for r in all_lines(bridge) if r.get("t") == "msg") == keep


def test_a_follower_that_slept_through_a_rotation_reads_the_old_file_first(
        bridge: Bridge) -> None:
    """The race the follower guards against: it looked at the old file (nothing new), then
    records arrived, a rotation archived them and renamed the new file in, and only then did
    it look at the name. It must read the old file's rest before moving on, not skip it."""
    bridge.send("before", to="x")
    with bridge.follow(start="beginning", watch=False) as f:
        assert len(f.poll()) == 2  # the header and "before": it is at the end of the old file
        late = []
        for i in range(5):
            late.append(bridge.send(f"late {i}", to="x").id)
            late.append(bridge.done(late[-1]))
        rotate(bridge, older_than=0, now=time.time() + SOON)
        assert not set(late) & live_ids(bridge)  # they went to the archive
        f._switch_if_replaced()  # the look at the name, as inside poll()
        seen = [e.record["id"] for _ in range(3) for e in f.poll()
                if e.record.get("t") in ("msg", "status")]
    assert seen == late


def test_a_seed_file_without_a_header_rotates_and_its_consumer_resumes(bridge_dir: Path) -> None:
    """The seed's file has no epoch header: its cursor and map are keyed by inode."""
    bridge_dir.mkdir(mode=0o700)
    log = bridge_dir / "messages.jsonl"
    lines = [orjson.dumps({"ts": f"2026-01-0{i + 1}T00:00:00Z", "from": "kami",
                           "type": "request", "id": f"kami-171123456{i}",
                           "content": f"seed {i}", "status": "pending"}) for i in range(4)]
    lines.append(orjson.dumps({"ts": "2026-01-09T00:00:00Z", "from": "kami",
                               "type": "request", "id": "kami-1711234560",
                               "content": "seed 0", "status": "done"}))  # the seed's "done"
    log.write_bytes(b"\n".join(lines) + b"\n")
    os.chmod(log, 0o600)
    b = Bridge(bridge_dir, agent="tester")
    handled: list[str] = []
    with b.follow("old-consumer") as f:
        f.run(lambda e: handled.append(e.record["id"]), max_records=2)
    assert b.cursors.load("old-consumer").epoch is None  # type: ignore[union-attr]
    first = rotate(b)
    assert not first.rotated and first.pinned_messages == 1  # it has not read the "done"
    with b.follow("old-consumer") as f:
        f.run(lambda e: handled.append(e.record["id"]), max_records=3)
    second = rotate(b)
    assert second.rotated and second.old_epoch is None and second.moved_messages == 1
    later = b.send("after the seed", to="kami").id
    with b.follow("old-consumer") as f:  # resumes through the inode-keyed map
        f.run(lambda e: handled.append(e.record["id"]), idle_timeout=0.2)
    assert handled == [*(f"kami-171123456{i}" for i in range(4)), "kami-1711234560", later]
    b.close()


def test_doctor_repair_removes_a_leftover_new_file(bridge: Bridge) -> None:
    bridge.send("x", to="y")
    (bridge.directory / ".messages.jsonl.rotating").write_bytes(b"half a file")
    report = run_doctor(bridge)
    assert report.ok
    assert [f.kind for f in report.warnings] == ["rotation-leftover"]
    assert run_doctor(bridge, repair=True).warnings == []
    assert not (bridge.directory / ".messages.jsonl.rotating").exists()


def test_cli_rotate_shows_a_progress_bar_on_a_terminal(cli: CLI) -> None:
    script = require_tool("script")  # util-linux: runs the command on a pseudo-terminal
    for i in range(3):
        cli.ok("done", cli.ok("send", f"m{i}", "--to", "x").strip())
    env = {k: v for k, v in cli.env.items() if k != "NO_COLOR"}
    proc = subprocess.run([script, "-qec", f"{cli.env['PATH'].split(':')[0]}/bridge rotate "
                           "--older-than 0s", "/dev/null"], env=env, capture_output=True,
                          timeout=60, check=False)
    out = proc.stdout.decode("utf-8", "replace")
    assert proc.returncode == 0, out
    assert "rotating" in out and "bytes" in out  # the bar (it clears itself at the end)
    assert "moved 6 records (3 messages" in out
    assert "Traceback" not in out


AS_USER = """
import os, sys, time
# Everything is imported first: the interpreter's own files may not be readable for
# that user, and neither may the path above the bridge (hence the chdir).
import bridge.delivery._follow, bridge.archive._rotate  # noqa: E401
import bridge.archive._search, bridge.delivery._watch  # noqa: E401
from bridge import Bridge, BridgeUnavailable, rotate
uid, gid, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
os.chdir(sys.argv[4])
os.setgroups([gid] if mode == "member" else [])
os.setgid(gid if mode == "member" else uid)
os.setuid(uid)
b = Bridge(".", agent="kaylee", group=gid if mode == "member" else None)
try:
    r = rotate(b, older_than=0, now=time.time() + 1)
except BridgeUnavailable as exc:
    print("refused:", exc)
else:
    print("rotated", r.moved_messages)
"""


@pytest.mark.parametrize("mode", ["member", "stranger"])
def test_another_agent_of_a_shared_group_may_rotate(bridge_dir: Path, mode: str) -> None:
    """Kaylee rotates a bridge whose live file Kami created: in a shared group that works
    and Kami can still write; a user outside the group is refused before anything changes."""
    if os.geteuid() != 0:
        pytest.skip("needs root to act as two users")
    import sys

    kami, kaylee, group = 4242, 4243, 4343
    b = Bridge(bridge_dir, agent="kami", group=group)
    for i in range(4):
        b.done(b.send(f"m{i}", to="x").id)
    b.close()
    for path in [bridge_dir, *bridge_dir.rglob("*")]:
        os.chown(path, kami, group)
    if mode == "stranger":  # it can reach and write everything, but shares no group
        bridge_dir.chmod(0o777)
        for path in bridge_dir.iterdir():
            path.chmod(0o666)
    before = (bridge_dir / "messages.jsonl").read_bytes()
    proc = subprocess.run([sys.executable, "-c", AS_USER, str(kaylee), str(group), mode,
                           str(bridge_dir)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    if mode == "stranger":
        assert proc.stdout.startswith("refused: rotation must run as the owner")
        assert (bridge_dir / "messages.jsonl").read_bytes() == before
        assert not (bridge_dir / "archive").exists()
        return
    assert proc.stdout.strip() == "rotated 4"
    st = (bridge_dir / "messages.jsonl").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (kaylee, group, 0o660)
    for path in (bridge_dir / "archive").iterdir():
        assert path.stat().st_gid == group and stat.S_IMODE(path.stat().st_mode) == 0o660
    # Kami (the same group) still appends to the new file.
    as_kami = AS_USER.partition("b = Bridge")[0] + \
        "print(Bridge('.', agent='kami', group=gid).send('after', to='x').id)"
    proc = subprocess.run([sys.executable, "-c", as_kami,
                           str(kami), str(group), "member", str(bridge_dir)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    with Bridge(bridge_dir, agent="root") as again:
        assert again.get(proc.stdout.strip()).message.content == "after"


@pytest.mark.parametrize(("size", "expected"), [("1k", 1024), ("2KiB", 2048), ("0.5M", 524288),
                                                ("3000", 3000)])
def test_cli_max_size_units(cli: CLI, size: str, expected: int) -> None:
    with Bridge(cli.directory, agent="filler") as b:
        for i in range(40):
            b.done(b.send(f"m{i} " + "x" * 200, to="x").id)
    out = orjson.loads(cli.ok("rotate", "--older-than", "off", "--max-size", size, "--json"))
    live = (cli.directory / "messages.jsonl").stat().st_size
    before = out["moved_bytes"] + out["kept_bytes"]
    assert out["rotated"] == (before > expected)
    if out["rotated"]:
        assert live <= max(expected, 400)  # at most about the header and a last record over
