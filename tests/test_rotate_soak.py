"""Rotation while everything runs: writers, followers, `tail -F`, and rotations over and over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from bridge import Bridge, rotate, run_doctor
from tests.conftest import require_tool
from tests.helpers import wait_for
from tests.test_rotate_faults import union_counts

WRITER = textwrap.dedent("""
    import os, sys, time
    from bridge import Bridge
    d, name, count, out, stop = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
    b = Bridge(d, agent=name, durability="none")
    with open(out, "w") as acked:  # each id once its append returned
        # Until told to stop (after enough rotations overlapped), at most `count` records.
        for i in range(count):
            if i % 50 == 0 and os.path.exists(stop):
                break
            mid = b.send(f"{name}:{i}", to="sink").id
            acked.write(mid + "\\n")
            if i % 3:
                acked.write(b.done(mid) + "\\n")  # two in three finish: rotations have work
            if i % 20 == 0:
                time.sleep(0.01)  # paced: the soak is about overlap, not volume
""")

FOLLOWER = textwrap.dedent("""
    import random, sys
    from bridge import Bridge
    d, name, out_path = sys.argv[1:4]
    b = Bridge(d, agent=name)
    out = open(out_path, "a")
    finished = False
    def handle(entry):
        global finished
        rec = entry.record
        if rec.get("t") in ("msg", "status"):
            out.write(rec["id"] + "\\n")
            out.flush()
            if rec.get("content") == "END":
                finished = True
    rng = random.Random(name)
    while not finished:
        # Stop and start again now and then: the saved cursor carries it across rotations.
        with b.follow(name, poll_interval=0.05) as f:
            f.run(handle, max_records=rng.randint(20, 400), idle_timeout=0.5)
    out.close()
""")


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


@pytest.mark.slow
def test_soak_writers_followers_tail_and_repeated_rotations(tmp_path: Path) -> None:
    tail_bin = require_tool("tail")
    d = tmp_path / "bridge"
    control = Bridge(d, agent="control")
    control.send("start", to="sink")
    stop = tmp_path / "stop-writing"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(d), f"w{n}", "20000",
                                 str(tmp_path / f"w{n}.acked"), str(stop)]) for n in range(3)]
    followers = {name: subprocess.Popen([sys.executable, "-c", FOLLOWER, str(d), name,
                                         str(tmp_path / f"{name}.out")])
                 for name in ("kami", "kaylee")}
    tail_out = open(tmp_path / "tail.out", "wb")  # noqa: SIM115 - closed below
    tail = subprocess.Popen([tail_bin, "-F", "-n", "+1", "-s", "0.05", str(control.log_path)],
                            stdout=tail_out, stderr=subprocess.DEVNULL)
    cli_out = open(tmp_path / "cli-tail.out", "wb")  # noqa: SIM115 - closed below
    cli_tail = subprocess.Popen([str(Path(sys.executable).parent / "bridge"), "--dir", str(d),
                                 "tail", "-f", "-n", "1000000", "--json"], stdout=cli_out)
    rotations = 0
    acked: list[str] = []
    try:
        deadline = time.monotonic() + 90
        while any(w.poll() is None for w in writers):
            assert time.monotonic() < deadline, "writers did not finish in time"
            # Only what is a second old: `tail -F` had that second to print it.
            if rotate(control, older_than=1.0).rotated:
                rotations += 1
            if rotations >= 6:
                stop.touch()  # enough overlap whatever the machine's speed: wind down
            time.sleep(0.2)
        for n, w in enumerate(writers):
            assert w.wait(timeout=30) == 0
            acked += _lines(tmp_path / f"w{n}.acked")
        end = control.send("END", to="sink").id
        for name, proc in followers.items():
            assert proc.wait(timeout=60) == 0, name
        wait_for(lambda: end.encode() in (tmp_path / "tail.out").read_bytes(), timeout=30,
                 what="tail -F to print the last record")
        time.sleep(1.1)
        final = rotate(control, older_than=1.0)
        rotations += final.rotated
    finally:
        for proc in (tail, cli_tail, *followers.values(), *writers):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (tail, cli_tail, *followers.values(), *writers):
            proc.wait(timeout=30)
        tail_out.close()
        cli_out.close()
    assert rotations >= 5, f"only {rotations} rotations overlapped the writers"
    everything = [*acked, end]

    # The union of live file and archives holds every acknowledged record exactly once.
    counts = union_counts(d)
    assert [i for i in everything if counts[i] != 1] == []
    assert [i for i, c in counts.items() if c != 1] == []

    # Each follower handled every record once, in each writer's order.
    for name in followers:
        seen = _lines(tmp_path / f"{name}.out")
        dupes = [i for i, c in Counter(seen).items() if c > 1]
        assert dupes == [], f"{name} handled {len(dupes)} records twice"
        assert set(everything) <= set(seen), f"{name} missed records"
        order = {mid: n for n, mid in enumerate(seen)}
        for wname in ("w0", "w1", "w2"):
            mine = [i for i in acked if i.startswith(f"{wname}-")]
            assert [order[i] for i in mine] == sorted(order[i] for i in mine)

    # bridge tail -f (a follower without a cursor) printed each record once.
    printed = [orjson.loads(x) for x in (tmp_path / "cli-tail.out").read_bytes().splitlines()]
    ids = [r["id"] for r in printed if r.get("t") in ("msg", "status")]
    assert [i for i, c in Counter(ids).items() if c > 1] == []
    assert set(everything) <= set(ids)

    # `tail -F` follows the name: it re-reads each new file from its start, so it shows
    # kept records again, but it misses none.
    tail_ids = {orjson.loads(x)["id"] for x in (tmp_path / "tail.out").read_bytes().splitlines()
                if x.startswith(b"{")}
    assert set(everything) <= tail_ids
    assert run_doctor(control).ok
    control.close()


def test_tail_F_beside_a_rotation_sees_every_record(tmp_path: Path) -> None:
    tail_bin = require_tool("tail")
    d = tmp_path / "bridge"
    b = Bridge(d, agent="t", durability="none")
    first = []
    for i in range(200):
        first.append(b.send(f"a{i}", to="x").id)
        first.append(b.done(first[-1]))
    with open(tmp_path / "tail.out", "wb") as out:
        tail = subprocess.Popen([tail_bin, "-F", "-n", "+1", "-s", "0.05", str(b.log_path)],
                                stdout=out, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: first[-1].encode() in (tmp_path / "tail.out").read_bytes(),
                     timeout=30, what="tail -F to print the first batch")
            inode = os.stat(b.log_path).st_ino
            assert rotate(b, older_than=0, now=time.time() + 1).rotated
            assert os.stat(b.log_path).st_ino != inode
            later = [b.send(f"b{i}", to="x").id for i in range(50)]
            wait_for(lambda: later[-1].encode() in (tmp_path / "tail.out").read_bytes(),
                     timeout=30, what="tail -F to follow the new file")
        finally:
            tail.send_signal(signal.SIGTERM)
            tail.wait(timeout=30)
    seen = {orjson.loads(x)["id"] for x in (tmp_path / "tail.out").read_bytes().splitlines()
            if x.startswith(b"{")}
    assert set(first + later) <= seen
    b.close()
