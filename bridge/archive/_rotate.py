"""Rotation: moving finished messages out of the live file while agents keep running.

The live file keeps its name; a rotation replaces it (docs/protocol.md §9):

1. **plan** (no lock): snapshot the size, fold the file up to it, and decide
   every line's destination (bridge.archive._rotation_plan);
2. **journal**: write ``rotation.json`` with each archive's size before any
   byte is appended to it, so that a crash can be rolled back exactly;
3. **build** (no lock): append the leaving lines to the month archives, write
   the new file (a new ``epoch`` header whose ``prev`` is the old epoch, then
   the kept lines in order), copy what writers appended meanwhile, fsync it
   all, and note ``built`` in the journal;
4. **commit** (holding the bridge lock for milliseconds): copy the last
   appended bytes, write the relocation map's header, append a ``seal`` event
   to the old file (every writer's size check notices it), ``rename`` the new
   file over ``messages.jsonl``, fsync the directory;
5. **finish**: remove the journal and the maps nobody needs.

A crash (SIGKILL, power loss) at any point leaves a journal. The next
``rotate`` or ``doctor --repair`` reads it: if ``messages.jsonl`` is the new
file the rename happened and the archives were complete before it, so the
rotation is finished; otherwise it is rolled back (archives cut back to their
journaled sizes, the new file and map removed). Either way every record is in
exactly one place.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from .._errors import BridgeError, BridgeIOError, BridgeUnavailable, InvalidInput
from ..format import PROTOCOL_VERSION, encode, line_start_before, new_id, now_ts, read_epoch
from ..store import (
    DEFAULT_OLDER_THAN,
    Perms,
    atomic_write,
    fsync_dir,
    lock_holders,
    open_private,
    write_all,
)
from ._archive import ArchiveAppender, archive_path
from ._rotation_map import (
    MAPS_DIR,
    RotationMap,
    list_maps,
    map_key,
    relocate_offset,
    remove_map,
    write_map_header,
    write_map_runs,
)
from ._rotation_plan import DROP, KEEP, Plan, Sink, census, copy_runs, make_plan

if TYPE_CHECKING:
    from ..store import LocalStore

__all__ = ["DEFAULT_OLDER_THAN", "STEPS", "RotationResult", "pending_archive_sizes",
           "repair_rotation", "rotate", "rotation_running", "rotation_state"]


JOURNAL_NAME = "rotation.json"
ROTATION_LOCK_NAME = "rotation.lock"
TMP_NAME = ".messages.jsonl.rotating"

CATCH_UP_ROUNDS = 16
"""Copies of the records appended meanwhile before the final one under the lock..."""
CATCH_UP_SMALL = 256 << 10
"""...which starts once fewer than this many bytes are left to copy (bounds the lock hold)."""

KEEP_MAPS = 8
"""Maps kept for consumers without a saved cursor (plus every map a saved cursor needs)."""

STEPS = ("planned", "journaled", "archiving", "copied", "built", "locked", "mapped",
         "sealed", "renamed", "committed")
"""The points where ``on_step`` is called (the crash tests kill the process at each)."""


@dataclass
class RotationResult:
    """What one rotation did (or, with ``dry_run``, would do)."""

    dry_run: bool = False
    rotated: bool = False
    moved_records: int = 0
    moved_messages: int = 0
    kept_records: int = 0
    moved_bytes: int = 0
    kept_bytes: int = 0
    delta_bytes: int = 0
    corrupt_moved: int = 0
    corrupt_kept: int = 0
    corrupt_offsets: list[int] = field(default_factory=list)
    pinned_messages: int = 0
    behind_cursors: dict[str, int] = field(default_factory=dict)
    archives: dict[str, int] = field(default_factory=dict)
    lock_held_ms: float = 0.0
    seconds: float = 0.0
    old_epoch: str | None = None
    new_epoch: str | None = None
    recovered: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextlib.contextmanager
def _rotation_lock(directory: Path, perms: Perms | None = None) -> Iterator[None]:
    """One rotation (or repair) at a time per bridge; a second one fails at once."""
    path = directory / ROTATION_LOCK_NAME
    # Read-only is enough for flock, and lets any member of a shared group take it.
    fd = open_private(path, os.O_RDONLY, perms or Perms())
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holders = lock_holders(path)
            who = f" (pid {', '.join(map(str, holders))})" if holders else ""
            raise BridgeUnavailable(f"another rotation of {directory} is running{who}") from None
        yield
    finally:
        os.close(fd)


def rotation_running(directory: Path) -> bool:
    """Whether some process holds the rotation lock right now."""
    try:
        fd = os.open(directory / ROTATION_LOCK_NAME, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def pending_archive_sizes(directory: Path, live_epoch: str | None) -> dict[str, int]:
    """How much of each archive a reader of the live file ``live_epoch`` should read.

    While a rotation has not renamed its new file, the bytes it appends to
    archives repeat records of the live file. A reader that opened the live file
    first and then calls this reads every record once: if what it opened is the
    rotation's new file, the archives are complete; if it is the old file, that
    file still holds the moved records, and the archives count up to their size
    before the rotation (archive path relative to the bridge -> bytes).
    """
    journal = rotation_state(directory)
    if not journal or not isinstance(journal.get("archives"), dict):
        return {}
    if live_epoch is not None and live_epoch == journal.get("new_epoch"):
        return {}
    return journal["archives"]  # type: ignore[no-any-return]


def rotation_state(directory: Path) -> dict[str, Any] | None:
    """The journal of an unfinished rotation (None when there is none)."""
    try:
        obj = orjson.loads((directory / JOURNAL_NAME).read_bytes())
    except FileNotFoundError:
        return None
    except orjson.JSONDecodeError:
        return {"step": "unreadable"}
    return obj if isinstance(obj, dict) else {"step": "unreadable"}


# -- recovery -----------------------------------------------------------------------------

def _read_epoch_of(path: Path) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    try:
        return read_epoch(fd)
    finally:
        os.close(fd)


def _roll_back(directory: Path, journal: dict[str, Any]) -> None:
    """Undo an uncommitted rotation: archives back to their sizes, new file and map gone."""
    for rel, size in (journal.get("archives") or {}).items():
        path = directory / rel
        try:
            if size == 0:
                os.unlink(path)
            else:
                fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
                try:
                    os.ftruncate(fd, size)
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except FileNotFoundError:
            pass
    with contextlib.suppress(FileNotFoundError):
        os.unlink(directory / TMP_NAME)
    key = journal.get("map")
    if isinstance(key, str):
        remove_map(directory, key)


def _recover(directory: Path) -> str | None:
    """Finish or roll back an interrupted rotation (caller holds the rotation lock)."""
    journal = rotation_state(directory)
    if journal is None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(directory / TMP_NAME)  # a crash before the journal: nothing else changed
        return None
    live = _read_epoch_of(directory / "messages.jsonl")
    if journal.get("new_epoch") and live == journal.get("new_epoch"):
        outcome = "completed"  # the rename happened; archives were complete before it
        with contextlib.suppress(FileNotFoundError):
            os.unlink(directory / TMP_NAME)
    else:
        outcome = "rolled back"
        _roll_back(directory, journal)
    os.unlink(directory / JOURNAL_NAME)
    fsync_dir(directory)
    return outcome


def repair_rotation(bridge: LocalStore) -> str | None:
    """Complete or roll back an interrupted rotation: "completed", "rolled back" or None."""
    with _rotation_lock(bridge.directory, bridge.perms):
        return _recover(bridge.directory)


# -- the rotation ----------------------------------------------------------------------------

def _horizon(bridge: LocalStore, old_key: str | None, old_ino: int, snapshot: int,
             result: RotationResult) -> int:
    """The lowest position of any saved cursor in the live file (``snapshot`` if none)."""
    horizon = snapshot
    for cursor in bridge.cursors.all():
        if cursor.epoch is not None and old_key is not None and cursor.epoch == old_key:
            pos: int | None = cursor.offset
        elif cursor.epoch is None and cursor.inode == old_ino:
            pos = cursor.offset
        else:  # saved before an earlier rotation: where it lies now
            pos = relocate_offset(bridge.directory, cursor.epoch, cursor.offset, old_key,
                                  old_inode=cursor.inode)
        if pos is None:
            continue  # a file replaced by hand: that consumer starts over anyway
        if pos < snapshot:
            result.behind_cursors[cursor.consumer] = pos
        horizon = min(horizon, pos)
    return horizon


def _owner_of(st: os.stat_result) -> tuple[int, int] | None:
    """Ownership to give new files so that every agent using the bridge still can.

    The owner of the live file needs nothing; root gives the files to that owner.
    In a shared group (the file is group-readable and writable and we are in its
    group), the new files keep the group and the mode, which is what the others use.
    """
    euid = os.geteuid()
    if euid == st.st_uid:
        return None
    if euid == 0:
        return (st.st_uid, st.st_gid)
    shared = stat.S_IMODE(st.st_mode) & 0o060 == 0o060
    if shared and st.st_gid in {os.getegid(), *os.getgroups()}:
        return (-1, st.st_gid)
    raise BridgeUnavailable(
        f"rotation must run as the owner of the live file (uid {st.st_uid}), as root, or as "
        f"a member of its group (gid {st.st_gid}) when it is shared (mode 0660): a new live "
        "file of ours would otherwise lock the other agents out"
    )


def _journal(directory: Path, bridge: LocalStore, data: dict[str, Any]) -> None:
    atomic_write(directory / JOURNAL_NAME, orjson.dumps(data), bridge.perms)
    fsync_dir(directory)


def _disk_error(exc: OSError, what: str) -> BridgeIOError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        why = "the disk is full"
    elif exc.errno == errno.EFBIG:
        why = "a file size limit was reached"
    else:
        why = exc.strerror or str(exc)
    return BridgeIOError(f"rotation failed while {what} ({why}); it was rolled back: "
                         "nothing was moved and the bridge is unchanged")


def rotate(
    bridge: LocalStore,
    *,
    older_than: float | None = DEFAULT_OLDER_THAN,
    max_size: int | None = None,
    dry_run: bool = False,
    compress: bool = False,
    now: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> RotationResult:
    """Move finished messages out of the live file into monthly archives.

    Args:
        bridge: the bridge to rotate (agents may keep appending and following).
        older_than: archive finished messages whose last change is older than
            this many seconds (None: only ``max_size`` decides).
        max_size: also archive finished messages, oldest first, until the live
            file would be about this many bytes.
        dry_run: plan and report, change nothing.
        compress: new archive months are gzip files (existing months keep their form).
        now: the time to judge age and expiry by (default: the clock).
        progress: called with (bytes done, bytes total) while copying.
        on_step: called with each name in :data:`STEPS` as it is reached.

    Raises:
        InvalidInput: neither threshold given, or a negative one.
        BridgeUnavailable: another rotation is running; not run as the bridge's owner.
        BridgeIOError: writing failed (disk full...); the rotation was rolled back.
    """
    if older_than is None and max_size is None:
        raise InvalidInput("give an age (--older-than) or a size (--max-size) to rotate by")
    if (older_than is not None and older_than < 0) or (max_size is not None and max_size < 0):
        raise InvalidInput("--older-than and --max-size must not be negative")
    started = time.monotonic()
    now = time.time() if now is None else now
    step = on_step or (lambda _name: None)
    result = RotationResult(dry_run=dry_run)
    directory = bridge.directory
    with _rotation_lock(directory, bridge.perms):
        if not dry_run:
            result.recovered = _recover(directory)
        try:
            fd = os.open(bridge.log_path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            result.seconds = time.monotonic() - started
            return result
        try:
            _rotate_open_file(bridge, fd, result, now=now, older_than=older_than,
                              max_size=max_size, compress=compress, progress=progress,
                              step=step)
        finally:
            os.close(fd)
    result.seconds = time.monotonic() - started
    return result


def _rotate_open_file(bridge: LocalStore, fd: int, result: RotationResult, *, now: float,
                      older_than: float | None, max_size: int | None, compress: bool,
                      progress: Callable[[int, int], None] | None,
                      step: Callable[[str], None]) -> None:
    directory = bridge.directory
    st = os.fstat(fd)
    snapshot = line_start_before(fd, st.st_size)
    old_epoch = read_epoch(fd)
    old_key = map_key(old_epoch, st.st_ino)
    result.old_epoch = old_epoch
    horizon = _horizon(bridge, old_key, st.st_ino, snapshot, result)
    fold, bad = census(fd, snapshot)
    plan = make_plan(fold, bad, snapshot, horizon, now=now, older_than=older_than,
                     max_size=max_size)
    del fold  # the plan holds what is needed; the fold can be large
    result.moved_records = plan.moved_records
    result.moved_messages = len(plan.archived)
    result.kept_records = plan.kept_records
    result.moved_bytes = plan.moved_bytes
    result.kept_bytes = plan.kept_bytes
    result.corrupt_moved = len(plan.corrupt_moved)
    result.corrupt_kept = len(plan.corrupt_kept)
    result.corrupt_offsets = [b.offset for b in (plan.corrupt_moved + plan.corrupt_kept)[:100]]
    result.pinned_messages = plan.pinned
    step("planned")
    if result.dry_run or plan.empty:
        # Nothing leaves: the live file is not replaced (a second rotation is a no-op).
        for month, size in plan.months.items():
            result.archives[_archive_for(directory, month, compress).name] = size
        return
    _execute(bridge, fd, st, plan, result, old_key, compress, progress, step)


def _archive_for(directory: Path, month: str, compress: bool) -> Path:
    """An existing archive of the month (in either form) is appended to; else a new one."""
    plain, gz = archive_path(directory, month, False), archive_path(directory, month, True)
    preferred, other = (gz, plain) if compress else (plain, gz)
    if preferred.exists() or not other.exists():
        return preferred
    return other


def _execute(bridge: LocalStore, fd: int, st: os.stat_result, plan: Plan, result: RotationResult,
             old_key: str | None, compress: bool,
             progress: Callable[[int, int], None] | None, step: Callable[[str], None]) -> None:
    directory = bridge.directory
    owner = _owner_of(st)
    new_epoch = new_id(bridge.agent)
    key = old_key or new_epoch
    targets = {month: _archive_for(directory, month, compress) for month in plan.months}
    journal: dict[str, Any] = {
        "v": 1, "step": "building", "pid": os.getpid(), "started": now_ts(),
        "old_epoch": result.old_epoch, "old_inode": st.st_ino, "new_epoch": new_epoch,
        "map": key,
        "archives": {str(p.relative_to(directory)): (p.stat().st_size if p.exists() else 0)
                     for p in targets.values()},
    }  # fmt: skip
    appenders: dict[str, ArchiveAppender] = {}
    tmp_fd = -1
    what = "writing the rotation journal"
    try:
        _journal(directory, bridge, journal)
        step("journaled")
        what = "writing the archives"
        for month, path in targets.items():
            appenders[month] = ArchiveAppender(path, bridge.perms, owner)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(directory / TMP_NAME)
        tmp_fd = open_private(directory / TMP_NAME, os.O_WRONLY | os.O_EXCL, bridge.perms)
        os.fchmod(tmp_fd, stat.S_IMODE(st.st_mode))
        if owner is not None:
            os.fchown(tmp_fd, *owner)
        header = encode({"v": PROTOCOL_VERSION, "t": "epoch", "id": new_epoch, "ts": now_ts(),
                         "from": bridge.agent, "epoch": new_epoch, "prev": result.old_epoch})
        write_all(tmp_fd, header)
        sinks = {KEEP: Sink(lambda data: write_all(tmp_fd, data), len(header), tmp_fd)}
        for month, app in appenders.items():
            sinks[month] = Sink(app.write, 0, app.plain_fd)
        total = plan.kept_bytes + plan.moved_bytes
        done = 0
        announced = False

        def on_chunk(size: int) -> None:
            nonlocal done, announced
            done += size
            if progress is not None:
                progress(min(done, total), total)
            if not announced:
                announced = True
                step("archiving")

        kept_runs = copy_runs(fd, plan.runs, sinks, on_chunk)
        step("copied")
        new_pos = sinks[KEEP].position
        what = "copying the records appended meanwhile"
        copied = _catch_up(fd, tmp_fd, plan.snapshot)
        what = "syncing the archives"
        for app in appenders.values():
            result.archives[app.path.name] = app.finish() - app.size_before
        appenders.clear()
        os.fdatasync(tmp_fd)
        write_map_runs(directory, bridge.perms, key, kept_runs)
        fsync_dir(directory / MAPS_DIR)
        journal["step"] = "built"
        _journal(directory, bridge, journal)
        step("built")
        what = "committing"
        old_header_end = plan.runs[0][1] if plan.runs and plan.runs[0][2] == DROP else 0
        rmap = RotationMap(key, new_epoch, plan.snapshot, new_pos, 0, now_ts(), old_header_end)
        held = _commit(bridge, fd, tmp_fd, st.st_ino, plan.snapshot + copied, rmap, step)
    except BaseException as exc:
        for app in appenders.values():
            app.abandon()
        if tmp_fd >= 0:
            os.close(tmp_fd)
            tmp_fd = -1
        if _read_epoch_of(bridge.log_path) != new_epoch:
            _roll_back(directory, journal)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(directory / JOURNAL_NAME)
            if isinstance(exc, OSError) and not isinstance(exc, BridgeError):
                raise _disk_error(exc, what) from exc
        raise
    finally:
        if tmp_fd >= 0:
            os.close(tmp_fd)
    result.lock_held_ms = held[0]
    result.delta_bytes = held[1] - plan.snapshot
    result.new_epoch = new_epoch
    result.rotated = True
    journal["step"] = "committed"
    try:
        _journal(directory, bridge, journal)
        step("committed")
        os.unlink(directory / JOURNAL_NAME)
        fsync_dir(directory)
    except OSError as exc:
        raise BridgeIOError(
            f"the rotation is done (the new live file is in place), but its journal could not "
            f"be removed ({exc.strerror}); the next rotate or doctor --repair clears it") from exc
    with contextlib.suppress(OSError):  # maps nobody needs: tidying, not correctness
        _prune_maps(bridge)



def _copy_range(src: int, dst: int, start: int, end: int) -> None:
    pos = start
    while pos < end:
        data = os.pread(src, min(end - pos, 4 << 20), pos)
        if not data:
            raise OSError(errno.EIO, f"the live file ended at {pos} while rotating")
        write_all(dst, data)
        pos += len(data)


def _catch_up(fd: int, tmp_fd: int, snapshot: int) -> int:
    """Copy complete lines appended after the snapshot, without the lock; bytes copied."""
    pos = snapshot
    for _ in range(CATCH_UP_ROUNDS):
        end = line_start_before(fd, os.fstat(fd).st_size)
        if end - pos <= 0:
            break
        _copy_range(fd, tmp_fd, pos, end)
        small = end - pos < CATCH_UP_SMALL
        pos = end
        if small:
            break
    return pos - snapshot


def _commit(bridge: LocalStore, fd: int, tmp_fd: int, old_ino: int, copied_to: int,
            rmap: RotationMap, step: Callable[[str], None]) -> tuple[float, int]:
    """The locked part: last bytes, map, seal, rename. Returns (ms held, old file's end)."""
    directory = bridge.directory
    bridge.lock.acquire()
    t0 = time.perf_counter()
    try:
        step("locked")
        try:
            current = os.stat(bridge.log_path).st_ino
        except FileNotFoundError:
            current = -1
        if current != old_ino:
            raise BridgeUnavailable(f"{bridge.log_path} was replaced by someone else during the "
                                    "rotation; it was rolled back")
        # Everything to the end, a crashed writer's fragment included: under the lock
        # nobody is writing, and the next writer terminates a fragment in the new file.
        end = os.fstat(fd).st_size
        _copy_range(fd, tmp_fd, copied_to, end)
        os.fdatasync(tmp_fd)
        rmap = RotationMap(rmap.old, rmap.new, rmap.delta_old, rmap.delta_new, end,
                           rmap.created, rmap.header_end)
        write_map_header(directory, bridge.perms, rmap)
        fsync_dir(directory / MAPS_DIR)
        step("mapped")
        _seal(bridge, end, rmap)
        step("sealed")
        os.rename(directory / TMP_NAME, bridge.log_path)
        fsync_dir(directory)
        step("renamed")
    finally:
        held = (time.perf_counter() - t0) * 1000
        bridge.lock.release()
    return held, end


def _seal(bridge: LocalStore, end: int, rmap: RotationMap) -> None:
    """Append the seal to the old file: every writer's size check sees the change."""
    line = encode({"v": PROTOCOL_VERSION, "t": "event", "id": new_id(bridge.agent),
                   "ts": now_ts(), "from": bridge.agent, "event": "seal",
                   "epoch": rmap.old, "next": rmap.new, "end": end})
    wfd = os.open(bridge.log_path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        try:
            written = os.write(wfd, line)
        except OSError:
            os.ftruncate(wfd, end)
            raise
        if written != len(line):
            os.ftruncate(wfd, end)
            raise OSError(errno.ENOSPC, "short write of the seal record")
    finally:
        os.close(wfd)


def _prune_maps(bridge: LocalStore) -> None:
    """Drop maps no saved cursor needs, keeping the last KEEP_MAPS for unsaved followers."""
    maps = list_maps(bridge.directory)
    if len(maps) <= KEEP_MAPS:
        return
    wanted = {c.epoch for c in bridge.cursors.all() if c.epoch} | \
        {f"inode-{c.inode}" for c in bridge.cursors.all() if c.inode and not c.epoch}
    first_needed = next((i for i, m in enumerate(maps) if m.old in wanted), len(maps))
    for rmap in maps[: min(first_needed, len(maps) - KEEP_MAPS)]:
        remove_map(bridge.directory, rmap.old)

