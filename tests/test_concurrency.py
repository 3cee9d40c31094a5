"""Many writers at once, a shell writer with flock(1), and a writer killed mid-record."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import defaultdict
from pathlib import Path

import orjson
import pytest

from bridge import Bridge, LockTimeout, run_doctor
from tests.conftest import require_tool
from tests.helpers import wait_for

WRITER = textwrap.dedent("""
    import sys
    from bridge import Bridge
    name, count = sys.argv[2], int(sys.argv[3])
    b = Bridge(sys.argv[1], agent=name, durability="none")
    ids = []
    for i in range(count):
        ids.append(b.send(f"{name}:{i}:" + "x" * (i % 300), to="sink").id)
    print("\\n".join(ids))
""")


def parse_all(path: Path) -> list[dict[str, object]]:
    out = []
    for raw in path.read_bytes().split(b"\n")[:-1]:
        out.append(orjson.loads(raw))  # any interleaving would fail to parse here
    return out


def test_eight_writer_processes_and_a_shell_writer_lose_and_tear_nothing(
        bridge_dir: Path) -> None:
    flock = require_tool("flock")
    with Bridge(bridge_dir) as b:
        b.send("start", to="sink")
    count = 1500
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(bridge_dir), f"w{n}", str(count)],
                         stdout=subprocess.PIPE)
        for n in range(8)
    ]
    # A shell script appending the documented way: flock(1) on the lock file, one printf.
    line_format = (
        '{"v":1,"t":"msg","id":"sh-%s","ts":"2026-11-21T00:00:00.000Z","from":"sh",'
        '"type":"notification","content":"sh:%s"}\\n'
    )
    shell = subprocess.Popen(
        ["bash", "-c", 'for i in $(seq 0 299); do '
                       '"$FLOCK" "$LOCK" sh -c \'printf "$FMT" "$1" "$1" >> "$LOG"\' _ "$i"; done'],
        env={**os.environ, "FLOCK": flock, "LOCK": str(bridge_dir / "bridge.lock"),
             "LOG": str(bridge_dir / "messages.jsonl"), "FMT": line_format},
    )
    acknowledged: set[str] = set()
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0
        acknowledged.update(out.decode().split())
    assert shell.wait(timeout=300) == 0
    recs = parse_all(bridge_dir / "messages.jsonl")
    msgs = [r for r in recs if r.get("t") == "msg"]
    assert len(msgs) == 8 * count + 300 + 1
    ids = [r["id"] for r in msgs]
    assert len(set(ids)) == len(ids)
    assert acknowledged <= set(ids)
    # Each writer's records appear in the order it wrote them.
    seen: dict[str, list[int]] = defaultdict(list)
    for r in msgs[1:]:
        name, seq = str(r["content"]).split(":")[:2]
        seen[name].append(int(seq))
    for n in range(8):
        assert seen[f"w{n}"] == list(range(count))
    assert sorted(seen["sh"]) == list(range(300))
    report = run_doctor(Bridge(bridge_dir))
    assert report.ok, report.findings
    assert not report.findings


def test_threads_in_one_process_do_not_interleave(bridge: Bridge) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(500):
                bridge.send(f"t{n}:{i}:" + "y" * 2000)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    msgs = [r for r in parse_all(bridge.log_path) if r.get("t") == "msg"]
    assert len(msgs) == 2000


def test_lock_timeout_names_the_holder(bridge: Bridge) -> None:
    flock = require_tool("flock")
    bridge.send("x")
    # flock(1) forks `sleep`, which inherits the lock: stop the whole (own) session.
    holder = subprocess.Popen([flock, str(bridge.lock.path), "sleep", "30"],
                              start_new_session=True)
    try:
        wait_for(lambda: bridge.lock.path.exists() and _locked(bridge.lock.path),
                 what="flock(1) to take the lock")
        bridge.lock.timeout = 0.2
        with pytest.raises(LockTimeout, match=r"not free within 0\.2s") as info:
            bridge.send("blocked")
        # /proc/locks names the flock(1) process (or the sleep it execs into).
        assert "held by pid" in str(info.value)
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()
    wait_for(lambda: not _locked(bridge.lock.path), what="the lock to be released")
    bridge.send("free again")


def _locked(path: Path) -> bool:
    import fcntl

    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


KILLED_WRITER = textwrap.dedent("""
    import os, sys
    from bridge import Bridge
    b = Bridge(sys.argv[1], agent="victim", durability="none", max_record_bytes=1 << 30)
    acked = b.send("acknowledged before the crash").id
    print(acked, flush=True)
    sys.stdin.readline()              # the parent is watching the file now
    b.send("z" * int(sys.argv[2]))    # one write() of many MB: killed in the middle
    print("finished", flush=True)
""")


def test_writer_killed_mid_record_loses_nothing_acknowledged(bridge_dir: Path) -> None:
    """SIGKILL lands inside a single large write(); the fragment is terminated once."""
    Bridge(bridge_dir).close()
    log = bridge_dir / "messages.jsonl"
    size = 256 << 20
    for _attempt in range(5):  # bounded: a fast disk may finish the write before the kill
        child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(bridge_dir),
                                  str(size)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert child.stdout is not None and child.stdin is not None
        acked = child.stdout.readline().decode().strip()
        start = log.stat().st_size
        child.stdin.write(b"go\n")
        child.stdin.flush()
        wait_for(functools.partial(_grew, log, start), timeout=30, interval=0.0005,
                 what="the big write to begin")
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        child.stdin.close()
        child.stdout.close()
        torn = log.stat().st_size - start
        if torn < size:
            break
        size *= 2
    else:  # pragma: no cover
        pytest.fail("could not kill the writer in the middle of its write")
    assert not log.read_bytes().endswith(b"\n")

    # The next writer terminates the fragment and records where it was; a reader
    # then sees every acknowledged record and the fragment as one bad line.
    survivor = Bridge(bridge_dir, agent="survivor")
    after = survivor.send("after the crash").id
    fold = Bridge(bridge_dir).fold()
    assert fold.get(acked) is not None
    assert fold.get(after) is not None
    assert len(fold.bad_lines) == 1
    assert fold.bad_lines[0].offset == start
    repairs = [r for r in (orjson.loads(x) for x in _valid_lines(log)) if r.get("t") == "repair"]
    assert len(repairs) == 1
    assert repairs[0]["offset"] == start
    assert repairs[0]["bytes"] == torn
    report = run_doctor(survivor)
    assert report.ok
    assert [f.kind for f in report.findings] == ["torn-repaired"]
    survivor.close()


def _grew(path: Path, size: int) -> bool:
    return path.stat().st_size > size


def _valid_lines(path: Path) -> list[bytes]:
    out = []
    for raw in path.read_bytes().split(b"\n"):
        try:
            orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        out.append(raw)
    return out


def test_lock_is_reopened_in_a_forked_child(bridge: Bridge) -> None:
    """A child must not share (and so release) the parent's flock."""
    with bridge.lock:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            code = 0
            try:
                bridge.lock.timeout = 0.3
                bridge.lock.acquire()  # must block on the parent's lock, not share it
                code = 1
            except LockTimeout:
                code = 0
            except BaseException:
                code = 2
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        time.sleep(0)  # the parent still holds it:
        assert _locked(bridge.lock.path)
