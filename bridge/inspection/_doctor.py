"""``bridge doctor``: check the whole live file, the archives and the directory around them.

Errors (exit 1) are things that lost or garbled data: a line that is not a
valid record and was not a crashed writer's fragment that a later writer
already terminated, a status record for a message that is not there, an
unterminated last line with no writer holding the lock, a damaged archive, a
message in two places, an open message in an archive, a rotation that was
interrupted and not yet finished or rolled back. Warnings are things worth
knowing that lost nothing: terminated crash fragments, duplicate ids, status
changes the fold ignored, a status that arrived after its message was
archived, permissions looser than the defaults, a cursor that points past the
end of the file or that no rotation map can move.
"""

from __future__ import annotations

import fcntl
import os
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .._errors import BridgeError
from ..format import (
    DEFAULT_MAX_RECORD_BYTES,
    BadLine,
    Entry,
    compose_event,
    line_start_before,
    read_epoch,
    scan,
)
from ..store import Fold, LogWriter, mode_problems

if TYPE_CHECKING:
    from ..store import LocalStore

__all__ = ["DoctorReport", "Finding", "run_doctor"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing the doctor found."""

    severity: str  # "error" | "warning"
    kind: str
    message: str
    offset: int | None = None
    line: int | None = None
    ref: str | None = None
    file: str | None = None
    """An archive the finding is about (None: the live file or the directory)."""


@dataclass
class DoctorReport:
    """What ``bridge doctor`` found."""

    path: str
    size: int = 0
    lines: int = 0
    records: int = 0
    messages: int = 0
    archives: int = 0
    archived_records: int = 0
    findings: list[Finding] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def ok(self) -> bool:
        """No errors (warnings allowed)."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "path": self.path, "size": self.size, "lines": self.lines,
            "records": self.records, "messages": self.messages, "archives": self.archives,
            "archived_records": self.archived_records, "repaired": self.repaired,
            "errors": len(self.errors), "warnings": len(self.warnings),
            "findings": [asdict(f) for f in self.findings],
        }  # fmt: skip


def _unterminated_tail(bridge: LocalStore, fd: int, size: int) -> Finding | None:
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return None
    pos = line_start_before(fd, size)
    # A writer holding the lock may simply be mid-append; only a tail nobody is
    # writing is a crashed writer's fragment.
    lock_fd = os.open(bridge.lock.path, os.O_RDONLY | os.O_CLOEXEC | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        fcntl.flock(lock_fd, fcntl.LOCK_UN)
    finally:
        os.close(lock_fd)
    return Finding("error", "torn-tail",
                   f"last {size - pos} bytes have no newline: a writer died mid-record "
                   "(the next append terminates and records it)", offset=pos)


def _terminate_torn_tail(bridge: LocalStore) -> str | None:
    """End a crashed writer's fragment at EOF the way the next append would: a newline
    and a ``repair`` record naming it (the fragment itself is never rewritten)."""
    try:
        fd = os.open(bridge.log_path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        torn = _unterminated_tail(bridge, fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)
    if torn is None:
        return None
    writer = LogWriter(bridge.log_path, bridge.lock, bridge.perms, agent=bridge.agent)
    try:
        # The writer terminates the fragment before its first line; the event says who.
        writer.append((compose_event(bridge.agent, "doctor.repair",
                                     {"repaired": "torn tail", "offset": torn.offset}),))
        repaired = writer.repairs
    finally:
        writer.close()
    if not repaired:  # another writer terminated it between the check and the append
        return None
    return f"the torn tail at offset {torn.offset} was terminated (a repair record names it)"


def _repair_matches(fold: Fold, bad: list[BadLine]) -> set[int]:
    """Offsets of bad lines that are crash fragments a later writer terminated.

    A ``repair`` record names the fragment's offset and length, and is written
    right after it; after a rotation moved both, the offset no longer matches,
    but the repair record still directly follows a fragment of that length.
    """
    named = {(r.record["offset"], r.record["bytes"]) for r in fold.repairs}
    following = {r.offset: r.record["bytes"] for r in fold.repairs}
    out = set()
    for item in bad:
        length = item.end - item.offset - 1
        if (item.offset, length) in named or following.get(item.end) == length:
            out.add(item.offset)
    return out


def _line_findings(report: DoctorReport, fold: Fold, bad: list[BadLine],
                   file: str | None) -> None:
    repaired = _repair_matches(fold, bad)
    for item in bad:
        if item.offset in repaired:
            report.findings.append(Finding(
                "warning", "torn-repaired",
                f"crash fragment ({item.reason}), terminated by a later writer",
                item.offset, item.line_no, file=file))
        else:
            kind = "schema" if not item.reason.startswith(("not ", "empty", "line longer")) \
                else "corrupt"
            report.findings.append(Finding("error", kind, item.reason, item.offset,
                                           item.line_no, file=file))


def run_doctor(bridge: LocalStore, *, repair: bool = False) -> DoctorReport:
    """Validate the live file, the archives, the fold and the directory.

    With ``repair``, first complete or roll back an interrupted rotation (the
    only repair there is: damaged lines are never rewritten).
    """
    report = DoctorReport(path=str(bridge.log_path))
    if repair:
        from ..archive import repair_rotation

        outcome = repair_rotation(bridge)
        if outcome is not None:
            report.repaired.append(f"an interrupted rotation was {outcome}")
        terminated = _terminate_torn_tail(bridge)
        if terminated is not None:
            report.repaired.append(terminated)
    for path in (bridge.directory, bridge.log_path, bridge.lock.path,
                 bridge.directory / "PAUSE", *sorted(bridge.cursors.directory.glob("*.json"))):
        for problem in mode_problems(path, bridge.perms):
            report.findings.append(Finding("warning", "permissions", problem))
    from ..archive import pending_archive_sizes

    _check_rotation_state(bridge, report)
    try:
        fd: int | None = os.open(bridge.log_path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        fd = None
    # A rotation that has not renamed its new file yet has appended records to archives
    # that are still in the live file: only the archives' part from before it counts.
    limits = pending_archive_sizes(bridge.directory, read_epoch(fd) if fd is not None else None)
    try:
        archived = check_archives(bridge, report, limits)
    except BaseException:
        if fd is not None:
            os.close(fd)
        raise
    if fd is None:
        return report
    # While a rotation runs (or started while we read), its half-built archives may repeat
    # live records, legitimately.
    from ..archive import rotation_running

    running = rotation_running(bridge.directory) or any(
        f.kind == "rotation" and f.severity == "warning" for f in report.findings)
    try:
        _check_live(bridge, fd, report, archived, check_duplicates=not running)
    finally:
        os.close(fd)
    report.findings.sort(key=lambda f: (f.file is not None, f.file or "", f.offset is None,
                                        f.offset or 0))
    return report


def _check_live(bridge: LocalStore, fd: int, report: DoctorReport, archived: dict[str, str],
                *, check_duplicates: bool) -> None:
    size = os.fstat(fd).st_size
    report.size = size
    fold = Fold(max_kept_issues=1_000_000)
    bad: list[BadLine] = []
    for item in scan(fd, 0, size, line_no=1):
        report.lines += 1
        if isinstance(item, Entry):
            fold.apply(item)
            if item.end - item.offset - 1 > DEFAULT_MAX_RECORD_BYTES:
                # Valid, so it is folded and shown; but no toolkit writer makes one (send
                # refuses it), and every fold and tail pays for it.
                report.findings.append(Finding(
                    "warning", "oversize",
                    f"a {item.kind} record of {item.end - item.offset - 1:,} bytes, over the "
                    f"{DEFAULT_MAX_RECORD_BYTES:,}-byte limit: written by a writer that does "
                    "not check it (every fold and tail reads it in full)",
                    item.offset, report.lines, item.record.get("id")))
        else:
            bad.append(item)
            fold.offset = item.end
    report.records = fold.records
    report.messages = len(fold.messages)
    _line_findings(report, fold, bad, None)
    for issue in fold.issues:
        if issue.kind == "orphan" and issue.ref in archived:
            report.findings.append(Finding(
                "warning", "late-status",
                f"{issue.reason}: that message was archived ({archived[issue.ref]}) before "
                "this status arrived; it changes nothing", issue.offset, None, issue.ref))
            continue
        orphan = issue.kind == "orphan"
        report.findings.append(Finding("error" if orphan else "warning",
                                       "orphan-status" if orphan else issue.kind,
                                       issue.reason, issue.offset, None, issue.ref))
    for mid in fold.messages if check_duplicates else ():
        if mid in archived:
            report.findings.append(Finding(
                "error", "duplicate-archived",
                f"message {mid} is both in the live file and in {archived[mid]}",
                fold.messages[mid].offset, None, mid))
    tail = _unterminated_tail(bridge, fd, size)
    if tail is not None:
        report.findings.append(tail)
    now = time.time()
    expired = sum(1 for s in fold.messages.values()
                  if s.effective_status(now) == "expired" and not s.terminal)
    if expired:
        report.findings.append(Finding(
            "warning", "expired",
            f"{expired} open message(s) are past their expiry (shown as expired)"))
    for cursor in bridge.cursors.all():
        if cursor.epoch and fold.epoch and cursor.epoch != fold.epoch:
            from ..archive import relocate_offset

            if relocate_offset(bridge.directory, cursor.epoch, cursor.offset, fold.epoch,
                               old_inode=cursor.inode) is None:
                report.findings.append(Finding(
                    "warning", "cursor",
                    f"cursor {cursor.consumer} refers to another file (epoch {cursor.epoch}) "
                    "and no rotation map leads from it: that consumer restarts at the "
                    "beginning of the live file"))
        elif cursor.offset > size:
            report.findings.append(Finding(
                "warning", "cursor",
                f"cursor {cursor.consumer} is at {cursor.offset}, past the end ({size})"))


def _check_rotation_state(bridge: LocalStore, report: DoctorReport) -> None:
    """Report a running or interrupted rotation, or one's leftovers."""
    from ..archive import TMP_NAME, rotation_running, rotation_state

    journal = rotation_state(bridge.directory)
    if rotation_running(bridge.directory):
        report.findings.append(Finding("warning", "rotation",
                                       "a rotation is running right now"))
    elif journal is not None:
        report.findings.append(Finding(
            "error", "rotation",
            f"a rotation was interrupted (step {journal.get('step')}, pid {journal.get('pid')}): "
            "run `bridge doctor --repair` (or `bridge rotate`) to finish or roll it back"))
    elif (bridge.directory / TMP_NAME).exists():
        report.findings.append(Finding(
            "warning", "rotation-leftover",
            f"{TMP_NAME} is left from a rotation that crashed before it changed anything "
            "(`bridge doctor --repair` removes it)"))


def check_archives(bridge: LocalStore, report: DoctorReport,
                   limits: dict[str, int] | None = None) -> dict[str, str]:
    """Check every archive; return archived message id -> archive name.

    ``limits`` (archive path relative to the bridge -> size) restricts a check
    to what an archive held before a rotation that is appending to it.
    """
    from ..archive import iter_archive, list_archives

    seen: dict[str, str] = {}
    now = time.time()
    for archive in list_archives(bridge.directory):
        name = f"archive/{archive.path.name}"
        report.archives += 1
        for problem in mode_problems(archive.path, bridge.perms):
            report.findings.append(Finding("warning", "permissions", problem))
        fold = Fold(max_kept_issues=1_000_000)
        bad: list[BadLine] = []
        limit = (limits or {}).get(f"archive/{archive.path.name}")
        try:
            for item in iter_archive(archive, limit):
                if isinstance(item, Entry):
                    fold.apply(item)
                else:
                    bad.append(item)
        except BridgeError as exc:
            report.findings.append(Finding("error", "archive", str(exc), file=name))
        report.archived_records += fold.records
        _line_findings(report, fold, bad, name)
        for issue in fold.issues:
            orphan = issue.kind == "orphan"
            report.findings.append(Finding("error" if orphan else "warning",
                                           "orphan-status" if orphan else issue.kind,
                                           issue.reason, issue.offset, None, issue.ref,
                                           file=name))
        for mid, state in fold.messages.items():
            if mid in seen:
                report.findings.append(Finding(
                    "error", "duplicate-archived", f"message {mid} is also in {seen[mid]}",
                    state.offset, None, mid, file=name))
                continue
            seen[mid] = name
            if not state.terminal and state.effective_status(now) != "expired":
                report.findings.append(Finding(
                    "error", "archived-open",
                    f"message {mid} is {state.effective_status(now)} but was archived",
                    state.offset, None, mid, file=name))
    return seen
