"""The append protocol: offsets, modes, torn tails, short writes, fsync errors, replacement."""

from __future__ import annotations

import errno
import grp
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

import bridge.store._writer as writer_mod
from bridge import (
    Bridge,
    BridgeIOError,
    DurabilityError,
    RecordTooLarge,
    UnsupportedFilesystem,
    run_doctor,
)
from bridge.format._scan import read_epoch
from bridge.store import _fs as fs_mod


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")


def records(path: Path) -> list[dict[str, object]]:
    out = []
    for raw in path.read_bytes().splitlines():
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        out.append(obj)
    return out


def test_first_append_writes_epoch_header_then_record(bridge: Bridge) -> None:
    result = bridge.send("hello", to="claude")
    data = bridge.log_path.read_bytes()
    header = orjson.loads(data.split(b"\n")[0])
    assert header["t"] == "epoch"
    assert header["epoch"] == header["id"]
    assert result.offset == len(data.split(b"\n")[0]) + 1
    line = data[result.offset:].split(b"\n")[0]
    assert orjson.loads(line)["id"] == result.id
    assert data.endswith(b"\n")


def test_files_and_directory_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        b = Bridge(tmp_path / "b")
        b.send("x")
        b.pause("check")
        b.follow("reader").commit()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "b").stat().st_mode) == 0o700
    for name in ("messages.jsonl", "bridge.lock", "PAUSE", "cursors/reader.json"):
        assert stat.S_IMODE((tmp_path / "b" / name).stat().st_mode) == 0o600, name
    b.close()


def test_group_mode_shares_with_the_group(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        group = grp.getgrnam("daemon").gr_gid
    else:  # pragma: no cover - the suite runs as root in CI
        group = os.getgroups()[-1]
    b = Bridge(tmp_path / "shared", group=group)
    b.send("x")
    st = (tmp_path / "shared").stat()
    assert stat.S_IMODE(st.st_mode) == 0o2770
    assert st.st_gid == group
    log_st = b.log_path.stat()
    assert stat.S_IMODE(log_st.st_mode) == 0o660
    assert log_st.st_gid == group
    b.close()


def test_symlinked_log_is_refused(bridge_dir: Path, tmp_path: Path) -> None:
    bridge_dir.mkdir()
    target = tmp_path / "elsewhere"
    target.write_text("")
    (bridge_dir / "messages.jsonl").symlink_to(target)
    b = Bridge(bridge_dir)
    with pytest.raises(BridgeIOError, match="cannot open"):
        b.send("x")
    assert target.read_text() == ""
    b.close()


def test_torn_tail_is_terminated_and_recorded_once(bridge: Bridge) -> None:
    first = bridge.send("before the crash")
    # A writer that died mid-record leaves bytes without a newline.
    fragment = b'{"v":1,"t":"msg","id":"kami-TORN","content":"half a rec'
    with open(bridge.log_path, "ab") as f:
        f.write(fragment)
    other = Bridge(bridge.directory, agent="second")
    after = other.send("after the crash")
    data = bridge.log_path.read_bytes()
    frag_at = data.index(fragment)
    assert data[frag_at + len(fragment):frag_at + len(fragment) + 1] == b"\n"
    recs = records(bridge.log_path)
    repairs = [r for r in recs if r.get("t") == "repair"]
    assert len(repairs) == 1
    assert repairs[0]["offset"] == frag_at
    assert repairs[0]["bytes"] == len(fragment)
    fold = Bridge(bridge.directory).fold()
    assert [b.offset for b in fold.bad_lines] == [frag_at]
    assert fold.get(first.id) is not None
    assert fold.get(after.id) is not None
    # A third writer finds the tail clean: no second repair.
    other.send("and again")
    assert sum(1 for r in records(bridge.log_path) if r.get("t") == "repair") == 1
    report = run_doctor(bridge)
    assert report.ok
    assert [f.kind for f in report.findings] == ["torn-repaired"]
    other.close()


def test_doctor_flags_an_unterminated_tail_nobody_is_writing(bridge: Bridge) -> None:
    bridge.send("x")
    with open(bridge.log_path, "ab") as f:
        f.write(b'{"half')
    report = run_doctor(bridge)
    assert not report.ok
    assert [f.kind for f in report.errors] == ["torn-tail"]


_FSIZE_CHILD = textwrap.dedent("""
    import resource, signal, sys
    from bridge import Bridge, BridgeIOError
    b = Bridge(sys.argv[1], durability="none")
    b.send("warm")  # opens the file, writes the header
    size = b.log_path.stat().st_size
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + int(sys.argv[2]), resource.RLIM_INFINITY))
    try:
        b.send("x" * 5000)
    except BridgeIOError as exc:
        print("ERR", size, exc)
    else:
        print("OK", size)
""")


@pytest.mark.parametrize("room", [0, 1000])
def test_short_or_failed_write_is_cut_back(bridge_dir: Path, room: int) -> None:
    """RLIMIT_FSIZE makes the kernel refuse (room=0) or shorten (room>0) the write."""
    out = subprocess.run([sys.executable, "-c", _FSIZE_CHILD, str(bridge_dir), str(room)],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    verdict, size, *why = out.split(maxsplit=2)
    assert verdict == "ERR", out
    assert "nothing was written" in why[0]
    assert (bridge_dir / "messages.jsonl").stat().st_size == int(size)
    b = Bridge(bridge_dir)
    b.send("the disk has room again")
    assert run_doctor(b).ok
    assert len(records(b.log_path)) == 3
    b.close()


def test_fsync_error_fails_loudly_and_stops_the_writer(
        bridge: Bridge, monkeypatch: pytest.MonkeyPatch) -> None:
    bridge.send("fine")

    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", broken)
    with pytest.raises(DurabilityError, match="fsync"):
        bridge.send("lost?")
    monkeypatch.undo()
    with pytest.raises(DurabilityError, match="reopen"):
        bridge.send("refused until reopened")
    fresh = Bridge(bridge.directory)
    fresh.send("a new writer checks the tail and goes on")
    fresh.close()


def test_batch_durability_syncs_in_groups(bridge_dir: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    calls: list[int] = []
    real = os.fdatasync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", counting)
    b = Bridge(bridge_dir, durability="batch")
    b.send("warm")
    calls.clear()
    for i in range(1000):
        b.send(f"m{i}")
    assert 0 < len(calls) < 100
    b.close()
    assert b.writer._unsynced == 0


def test_too_large_message_is_refused_and_nothing_appended(bridge: Bridge) -> None:
    bridge.send("x")
    size = bridge.log_path.stat().st_size
    with pytest.raises(RecordTooLarge, match="limit"):
        bridge.send("y" * (1 << 20))
    assert bridge.log_path.stat().st_size == size


def test_replaced_file_is_followed_by_writers(bridge: Bridge, tmp_path: Path) -> None:
    """Whoever replaces the live file appends to the old one first (a seal); writers see it."""
    bridge.send("old file")
    old_epoch = read_epoch(os.open(bridge.log_path, os.O_RDONLY))
    replacement = tmp_path / "new.jsonl"
    replacement.write_bytes(b'{"v":1,"t":"epoch","id":"r-1","ts":"2026-01-01T00:00:00Z",'
                            b'"from":"r","epoch":"r-1","prev":"' + str(old_epoch).encode()
                            + b'"}\n')
    with bridge.lock:
        with open(bridge.log_path, "ab") as f:
            f.write(b'{"v":1,"t":"event","id":"r-2","ts":"2026-01-01T00:00:00Z",'
                    b'"from":"r","event":"seal"}\n')
        os.replace(replacement, bridge.log_path)
    result = bridge.send("new file")
    assert result.id.encode() in bridge.log_path.read_bytes()


def test_deleted_file_is_recreated_after_the_recheck_interval(
        bridge: Bridge, monkeypatch: pytest.MonkeyPatch) -> None:
    bridge.send("before rm")
    bridge.log_path.unlink()
    monkeypatch.setattr(writer_mod, "RECHECK_INTERVAL", 0.0)
    result = bridge.send("after rm")
    data = bridge.log_path.read_bytes()
    assert data.startswith(b'{"v":1,"t":"epoch"')
    assert result.id.encode() in data


@pytest.mark.parametrize(
    ("fstype", "why"),
    [("nfs4", "NFS"), ("cifs", "not atomic"), ("fuse.sshfs", "sshfs"), ("fuse", "FUSE")],
)
def test_network_filesystems_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         fstype: str, why: str) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    info = tmp_path / "mountinfo"
    info.write_text(
        "22 1 252:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
        f"99 22 0:50 / {mnt} rw,relatime shared:9 - {fstype} server:/export rw\n"
    )
    monkeypatch.setattr(fs_mod, "MOUNTINFO", info)
    with pytest.raises(UnsupportedFilesystem, match=why) as exc_info:
        Bridge(mnt / "bridge")
    assert "ssh://" in str(exc_info.value)
    Bridge(tmp_path / "local")  # the rest of the tree is ext4: accepted


def test_real_mount_table_is_read(tmp_path: Path) -> None:
    assert fs_mod.filesystem_type(tmp_path) is not None


def test_mountinfo_escapes_are_decoded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spaced = tmp_path / "with space"
    spaced.mkdir()
    escaped = str(spaced).replace(" ", "\\040")
    info = tmp_path / "mountinfo"
    info.write_text(f"22 1 252:0 / / rw - ext4 /dev/vda rw\n"
                    f"99 22 0:50 / {escaped} rw - nfs srv:/x rw\n")
    monkeypatch.setattr(fs_mod, "MOUNTINFO", info)
    assert fs_mod.filesystem_type(spaced / "b") == "nfs"
