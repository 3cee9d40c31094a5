"""Rotation under faults: SIGKILL at every step, a full disk, a file size limit."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import orjson
import pytest

from bridge import Bridge, run_doctor
from bridge.archive._archive import list_archives
from bridge.archive._rotate import JOURNAL_NAME, STEPS, TMP_NAME
from bridge.archive._search import iter_archive
from bridge.format._records import BadLine
from tests.conftest import CLI, ROOT
from tests.helpers import wait_for

KILLED_ROTATION = textwrap.dedent("""
    import os, signal, sys, time
    from bridge import Bridge, rotate
    b = Bridge(sys.argv[1], agent="rotator")
    def step(name):
        if name == sys.argv[2]:
            os.kill(os.getpid(), signal.SIGKILL)
    rotate(b, older_than=0, now=time.time() + 1, on_step=step, compress=sys.argv[3] == "gz")
    print("finished without being killed")
""")

WRITER = textwrap.dedent("""
    import sys
    from bridge import Bridge
    b = Bridge(sys.argv[1], agent="writer", durability="none")
    print("ready", flush=True)
    i = 0
    while True:
        mid = b.send(f"w{i}", to="x").id
        print(mid, flush=True)
        if i % 2 == 0:
            print(b.done(mid), flush=True)
        i += 1
""")


def union_counts(directory: Path) -> Counter[str]:
    """How often each record id occurs in the live file and the archives together."""
    counts: Counter[str] = Counter()
    with Bridge(directory, agent="checker") as b:
        for item in b.entries():
            if not isinstance(item, BadLine) and item.record.get("t") in ("msg", "status"):
                counts[item.record["id"]] += 1
        for archive in list_archives(directory):
            for item in iter_archive(archive):
                if not isinstance(item, BadLine):
                    counts[item.record["id"]] += 1
    return counts


def fill(directory: Path, n: int, *, month_ts: str | None = None) -> list[str]:
    """n messages, every other one done: returns every record id written."""
    ids = []
    with Bridge(directory, agent="filler", durability="none") as b:
        for i in range(n):
            mid = b.send(f"m{i} " + "x" * 100, to="x").id
            ids.append(mid)
            if i % 2 == 0:
                ids.append(b.done(mid))
    return ids


@pytest.mark.parametrize("recover_with", ["rotate", "doctor --repair"])
@pytest.mark.parametrize("step", STEPS)
def test_sigkill_at_each_step_is_finished_or_rolled_back(
        cli: CLI, bridge_dir: Path, step: str, recover_with: str) -> None:
    gz = step in ("copied", "built") and recover_with == "rotate"
    written = fill(bridge_dir, 200)
    cli.ok("rotate", "--older-than", "0s")  # the month's archive exists before the crash
    written += fill(bridge_dir, 300)
    archive_before = {a.path.name: a.path.stat().st_size for a in list_archives(bridge_dir)}
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(bridge_dir)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "ready"
        child = subprocess.run(
            [sys.executable, "-c", KILLED_ROTATION, str(bridge_dir), step, "gz" if gz else ""],
            capture_output=True, text=True, timeout=120, check=False)
        assert child.returncode == -signal.SIGKILL, (child.stdout, child.stderr)
    finally:
        writer.send_signal(signal.SIGTERM)
        out, _ = writer.communicate(timeout=30)
    written += out.split()[1:]
    journal = (bridge_dir / JOURNAL_NAME).exists()
    assert journal == (step not in ("planned",)), "a journal exists from the journal step on"
    if step in ("copied", "built", "locked", "mapped", "sealed"):
        # The old file is still live: what the writer appended meanwhile is there.
        with Bridge(bridge_dir, agent="peek") as b:
            assert b.fold().epoch is not None

    doctor_before = cli.run("doctor")
    assert doctor_before.returncode == (1 if journal else 0), doctor_before.stdout

    if recover_with == "rotate":
        result = orjson.loads(cli.ok("rotate", "--older-than", "0s", "--json"))
        recovered = result["recovered"]
    else:
        out_repair = cli.run("doctor", "--repair", "--json")
        assert out_repair.returncode == 0, out_repair.stdout
        repaired = orjson.loads(out_repair.stdout)["repaired"]
        recovered = repaired[0].rsplit(" ", 1)[-1] if repaired else None
        recovered = {"back": "rolled back", "completed": "completed"}.get(recovered or "")
    expected = None if not journal else (
        "completed" if step in ("renamed", "committed") else "rolled back")
    assert recovered == expected
    assert not (bridge_dir / JOURNAL_NAME).exists()
    assert not (bridge_dir / TMP_NAME).exists()
    if recover_with == "doctor --repair" and expected == "rolled back":
        # Rolled back: every archive is exactly as it was before the crashed rotation.
        assert {a.path.name: a.path.stat().st_size
                for a in list_archives(bridge_dir)} == archive_before

    counts = union_counts(bridge_dir)
    assert [i for i, c in counts.items() if c > 1] == []  # nothing twice
    assert [i for i in written if i not in counts] == []  # nothing lost
    assert cli.run("doctor").returncode == 0
    mid = cli.ok("send", "after the crash", "--to", "x").strip()
    assert mid in cli.ok("search", "after the crash", "--json")


ROTATE_WITH_LIMIT = textwrap.dedent("""
    import resource, sys, time
    from bridge import Bridge, BridgeIOError, rotate
    limit = int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    b = Bridge(sys.argv[1], agent="rotator")
    try:
        rotate(b, older_than=0, now=time.time() + 1)
    except BridgeIOError as exc:
        print(exc)
        sys.exit(7)
""")


def test_a_file_size_limit_mid_rotation_rolls_back_and_says_so(bridge_dir: Path,
                                                               cli: CLI) -> None:
    written = fill(bridge_dir, 1500)  # ~300 KB, mostly finished
    log = bridge_dir / "messages.jsonl"
    before = log.read_bytes()
    size = len(before)
    limit = size // 3
    proc = subprocess.run([sys.executable, "-c", ROTATE_WITH_LIMIT, str(bridge_dir), str(limit)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 7, proc.stderr
    assert "a file size limit was reached" in proc.stdout
    assert "nothing was moved and the bridge is unchanged" in proc.stdout
    assert log.read_bytes() == before
    assert list_archives(bridge_dir) == []
    assert not (bridge_dir / JOURNAL_NAME).exists()
    assert not (bridge_dir / TMP_NAME).exists()
    # The same through the command line: one line, exit 7, no traceback.
    limited = subprocess.run(
        [str(Path(sys.executable).parent / "bridge"), "rotate", "--older-than", "0s"],
        env=cli.env, capture_output=True, text=True, timeout=120, check=False,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
    assert limited.returncode == 7
    assert limited.stderr.startswith("error: rotation failed while writing the archives")
    assert limited.stderr.count("\n") == 1
    assert log.read_bytes() == before
    cli.ok("send", "still writable")
    cli.ok("rotate", "--older-than", "0s")  # and with room, it works
    counts = union_counts(bridge_dir)
    assert all(counts[i] == 1 for i in written)


TMPFS_SCRIPT = textwrap.dedent("""
    import json, os, sys, time
    sys.path.insert(0, sys.argv[2])
    from bridge import Bridge, BridgeIOError, rotate, run_doctor
    d = sys.argv[1]
    b = Bridge(d, agent="t", durability="none")
    ids = []
    while not os.path.exists(b.log_path) or os.path.getsize(b.log_path) < 600_000:
        mid = b.send("y" * 300, to="x").id
        ids.append(mid)
        ids.append(b.done(mid))
    before = open(b.log_path, "rb").read()
    out = {"fs": b.filesystem}
    try:
        rotate(b, older_than=0, now=time.time() + 1)
        out["error"] = None
    except BridgeIOError as exc:
        out["error"] = str(exc)
    out["unchanged"] = open(b.log_path, "rb").read() == before
    out["left"] = sorted(os.listdir(d))
    out["archives"] = sorted(os.listdir(os.path.join(d, "archive"))) \\
        if os.path.isdir(os.path.join(d, "archive")) else []
    out["after"] = b.send("after the full disk", to="x").id
    out["doctor_ok"] = run_doctor(b).ok
    print(json.dumps(out))
""")


def test_a_full_disk_mid_rotation_rolls_back(tmp_path: Path) -> None:
    """A real ENOSPC: a 1 MiB tmpfs mounted in a private mount namespace of this test only."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs in a private namespace needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    script = tmp_path / "fill.py"
    script.write_text(TMPFS_SCRIPT)
    shell = ('mount -t tmpfs -o size=1m,mode=0700 tmpfs "$1" && '
             'exec "$2" "$3" "$1/bridge" "$4"')
    proc = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", shell, "sh",
         str(mnt), sys.executable, str(script), str(ROOT)],
        capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0 and "unshare" in proc.stderr:
        pytest.skip(f"no private mount namespace here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    out = orjson.loads(proc.stdout.strip().splitlines()[-1])
    assert out["fs"] == "tmpfs"
    assert "the disk is full" in out["error"]
    assert out["unchanged"] is True
    assert out["archives"] == []
    assert JOURNAL_NAME not in out["left"] and TMP_NAME not in out["left"]
    assert out["doctor_ok"] is True
    assert os.listdir(mnt) == []  # the mount was private to the namespace


def test_a_rotation_waiting_on_a_busy_lock_does_not_block_readers(bridge: Bridge) -> None:
    """Followers and folds read without the lock: a rotation stuck at its commit (here: the
    lock held by someone else) stops nobody reading, and finishes once the lock is free."""
    for i in range(20):
        bridge.done(bridge.send(f"m{i}", to="x").id)
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import fcntl, os, sys
        fd = os.open(sys.argv[1], os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)
        print("held", flush=True)
        sys.stdin.read()
    """), str(bridge.lock.path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        rot = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
            import sys, time
            from bridge import Bridge, rotate
            r = rotate(Bridge(sys.argv[1], agent="r"), older_than=0, now=time.time() + 1)
            print(r.rotated)
        """), str(bridge.directory)], stdout=subprocess.PIPE, text=True)
        wait_for((bridge.directory / JOURNAL_NAME).exists, timeout=30,
                 what="the rotation to reach its commit")
        assert len(bridge.fold().messages) == 20  # reading goes on meanwhile
        report = run_doctor(bridge)  # the half-built archive does not count yet
        assert [f.kind for f in report.findings] == ["rotation"]
        assert report.ok
    finally:
        holder.kill()
        holder.communicate(timeout=30)  # closes its pipes too
    out, _ = rot.communicate(timeout=60)
    assert out.strip() == "True"
    assert len(bridge.fold().messages) == 0


def test_doctor_repair_after_a_crash_leaves_no_trace_of_it(bridge_dir: Path) -> None:
    fill(bridge_dir, 100)
    before = (bridge_dir / "messages.jsonl").read_bytes()
    subprocess.run([sys.executable, "-c", KILLED_ROTATION, str(bridge_dir), "copied", ""],
                   check=False, timeout=120)
    assert (bridge_dir / TMP_NAME).exists()
    assert list_archives(bridge_dir) != []  # half-written
    with Bridge(bridge_dir, agent="t") as b:
        report = run_doctor(b, repair=True)
    assert report.repaired == ["an interrupted rotation was rolled back"]
    assert report.ok
    assert not (bridge_dir / TMP_NAME).exists()
    assert not (bridge_dir / JOURNAL_NAME).exists()
    assert list_archives(bridge_dir) == []
    assert (bridge_dir / "messages.jsonl").read_bytes() == before
