"""Following the log: wake-ups, cursors, at-least-once, idle cost, bad and partial lines."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from bridge import BadLine, Bridge, Entry
from tests.helpers import wait_for

FOLLOWER = textwrap.dedent("""
    import sys
    from bridge import Bridge
    b = Bridge(sys.argv[1], agent="reader")
    f = b.follow("reader", start="end", poll_interval=float(sys.argv[2]))
    print("ready", flush=True)
    def handle(entry):
        if entry.kind == "msg":
            print(entry.record["id"], flush=True)
    f.run(handle, max_records=int(sys.argv[3]))
""")


def read_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    """One line within ``timeout``; the pipe must be unbuffered (bufsize=0), or a
    buffered readline() may take several lines and select() then waits in vain."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"no line from the follower within {timeout}s"
    return proc.stdout.readline().decode().strip()


def test_follower_in_another_process_is_woken_by_inotify(bridge: Bridge) -> None:
    """Polling every 60 s could not deliver within the deadline: only inotify can."""
    bridge.send("create the file")
    proc = subprocess.Popen([sys.executable, "-c", FOLLOWER, str(bridge.directory), "60", "3"],
                            stdout=subprocess.PIPE, bufsize=0)  # see read_line
    try:
        assert read_line(proc, 30) == "ready"
        for text in ("one", "two", "three"):
            mid = bridge.send(text).id
            assert read_line(proc, 10) == mid
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def test_polling_fallback_delivers_without_inotify(bridge: Bridge) -> None:
    f = bridge.follow(start="end", watch=False, poll_interval=0.02)
    got: list[str] = []
    t = threading.Thread(target=lambda: f.run(lambda e: got.append(e.record["id"]),
                                              max_records=3))
    t.start()
    try:
        ids = [bridge.send("a").id, bridge.send("b").id]
        wait_for(lambda: len(got) >= 3, timeout=10, what="the polling follower")
    finally:
        f.stop()
        t.join(timeout=10)
        f.close()
    assert got[1:] == ids  # after the new file's epoch header


def test_cursor_resumes_without_gap_or_repeat(bridge: Bridge) -> None:
    sent = [bridge.send(f"m{i}").id for i in range(10)]
    seen: list[str] = []
    with bridge.follow("worker") as f:
        f.run(lambda e: seen.append(e.record["id"]) if e.kind == "msg" else None,
              max_records=6)  # the epoch header and five messages
    assert seen == sent[:5]
    sent += [bridge.send(f"later{i}").id for i in range(3)]
    with Bridge(bridge.directory, agent="other") as again, again.follow("worker") as f:
        f.run(lambda e: seen.append(e.record["id"]), idle_timeout=0.2)
    assert seen == sent


def test_handler_failure_means_redelivery(bridge: Bridge) -> None:
    ids = [bridge.send(f"m{i}").id for i in range(3)]
    calls: list[str] = []

    def flaky(entry: Entry) -> None:
        if entry.kind != "msg":
            return
        calls.append(entry.record["id"])
        if entry.record["id"] == ids[1] and calls.count(ids[1]) == 1:
            raise RuntimeError("crashed while handling")

    with bridge.follow("flaky") as f, pytest.raises(RuntimeError):
        f.run(flaky, idle_timeout=0.2)
    with bridge.follow("flaky") as f:
        f.run(flaky, idle_timeout=0.2)
    assert calls == [ids[0], ids[1], ids[1], ids[2]]


def test_iteration_commits_each_record_once_the_next_is_asked_for(bridge: Bridge) -> None:
    ids = [bridge.send(f"m{i}").id for i in range(3)]
    with bridge.follow("iter", start="beginning") as f:
        it = iter(f)
        assert next(it).kind == "epoch"
        assert next(it).record["id"] == ids[0]
        assert bridge.cursors.load("iter").offset < bridge.get(ids[0]).state.end  # type: ignore[union-attr]
        assert next(it).record["id"] == ids[1]  # asking for the next commits the previous
        assert bridge.cursors.load("iter").offset == bridge.get(ids[0]).state.end  # type: ignore[union-attr]


def test_start_positions(bridge: Bridge) -> None:
    old = bridge.send("old").id
    with bridge.follow(start="end") as f:
        assert f.poll() == []
        new = bridge.send("new").id
        assert [e.record["id"] for e in f.poll()] == [new]
    with bridge.follow(start="beginning") as f:
        assert [e.record.get("id") for e in f.poll() if e.kind == "msg"] == [old, new]
    offset = bridge.get(new).state.offset
    with bridge.follow(start=offset) as f:
        assert [e.record["id"] for e in f.poll()] == [new]


def _rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def test_idle_poll_reads_nothing_however_big_the_file(bridge: Bridge) -> None:
    """An idle poll is an fstat and a stat: it reads zero bytes of the log."""
    list(bridge.send_many({"content": "x" * 900} for _ in range(20_000)))  # ~20 MB
    assert bridge.log_path.stat().st_size > 19_000_000
    with bridge.follow(start="end", watch=False) as f:
        assert f.poll() == []
        # Reading /proc/self/io counts too: compare with two reads and no poll between.
        r0 = _rchar()
        r1 = _rchar()
        for _ in range(200):
            assert f.poll() == []
        r2 = _rchar()
        assert r2 - r1 == r1 - r0


def test_bad_lines_are_reported_once_and_skipped(bridge: Bridge) -> None:
    first = bridge.send("good").id
    with open(bridge.log_path, "ab") as f:
        f.write(b"this is not json\n{\"v\":1,\"t\":\"msg\",\"id\":\"x\"}\n")
    last = bridge.send("also good").id
    bad: list[BadLine] = []
    with bridge.follow(on_bad_line=bad.append) as f:
        ids = [e.record.get("id") for e in f.poll() if e.kind == "msg"]
        assert f.poll() == []
    assert ids == [first, last]
    assert len(bad) == 2
    assert bad[0].reason.startswith("not JSON")
    assert bad[1].reason == "message without 'from'"


def test_partial_line_is_never_consumed(bridge: Bridge) -> None:
    bridge.send("x")
    with bridge.follow(start="end") as f:
        with open(bridge.log_path, "ab") as out:
            out.write(b'{"v":1,"t":"event","id":"e-1","ts":"2026-11-21T00:00:00.000Z",')
            out.flush()
            assert f.poll() == []
            out.write(b'"from":"sh","event":"hello"}\n')
        assert [e.record["event"] for e in f.poll()] == ["hello"]


def test_stop_from_another_thread_ends_run(bridge: Bridge) -> None:
    bridge.send("x")
    f = bridge.follow(start="end", poll_interval=30)
    done = threading.Event()

    def runner() -> None:
        f.run(lambda e: None)
        done.set()

    t = threading.Thread(target=runner)
    t.start()
    f.stop()
    wait_for(done.is_set, timeout=10, what="run() to return after stop()")
    t.join()
    f.close()


def test_follower_waits_for_a_file_that_does_not_exist_yet(bridge_dir: Path) -> None:
    reader = Bridge(bridge_dir, agent="reader")
    with reader.follow(start="beginning", poll_interval=0.05) as f:
        assert f.poll() == []
        writer = Bridge(bridge_dir, agent="writer")
        mid = writer.send("first ever").id
        got = wait_for(lambda: [e for e in f.poll() if e.kind == "msg"], timeout=10)
        assert got[0].record["id"] == mid
        writer.close()
    reader.close()


def test_cursor_file_damage_is_a_clear_error(bridge: Bridge) -> None:
    bridge.send("x")
    bridge.follow("c").commit()
    (bridge.directory / "cursors" / "c.json").write_text("{broken")
    from bridge import InvalidInput

    with pytest.raises(InvalidInput, match="delete it"):
        bridge.follow("c")
    assert os.path.exists(bridge.directory / "cursors" / "c.json")


def test_a_file_opened_empty_learns_its_epoch_from_the_header(bridge_dir: Path) -> None:
    """A follower that opens messages.jsonl in the instant between its creation and the
    first write (the epoch header and the records) learns the epoch when it reads the
    header; a remote follower's resume depends on it (a full run caught the race)."""
    bridge_dir.mkdir()
    (bridge_dir / "messages.jsonl").touch(mode=0o600)
    with Bridge(bridge_dir, agent="reader") as reader, \
            reader.follow(start="beginning") as follower:
        assert follower.epoch is None
        with Bridge(bridge_dir, agent="writer") as writer:
            writer.send("first")
        entries = follower.poll()
        assert [e.record.get("content") for e in entries if e.kind == "msg"] == ["first"]
        assert follower.epoch is not None
        assert follower.epoch == reader.fold().epoch

