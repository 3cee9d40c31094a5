"""``bridge doctor``: check the whole live file and the directory around it.

Errors (exit 1) are things that lost or garbled data: a line that is not a
valid record and was not a crashed writer's fragment that a later writer
already terminated, a status record for a message that is not there, an
unterminated last line with no writer holding the lock. Warnings are things
worth knowing that lost nothing: terminated crash fragments, duplicate ids,
status changes the fold ignored, permissions looser than the defaults, a
cursor that points past the end of the file.
"""

from __future__ import annotations

import fcntl
import os
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ._fs import mode_problems
from ._records import BadLine, Entry
from ._scan import line_start_before, scan

if TYPE_CHECKING:
    from ._bridge import Bridge

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


@dataclass
class DoctorReport:
    """What ``bridge doctor`` found."""

    path: str
    size: int = 0
    lines: int = 0
    records: int = 0
    messages: int = 0
    findings: list[Finding] = field(default_factory=list)

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
            "records": self.records, "messages": self.messages,
            "errors": len(self.errors), "warnings": len(self.warnings),
            "findings": [asdict(f) for f in self.findings],
        }  # fmt: skip


def _unterminated_tail(bridge: Bridge, fd: int, size: int) -> Finding | None:
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


def run_doctor(bridge: Bridge) -> DoctorReport:
    """Validate the live file, the fold and the directory; see the module docstring."""
    from ._fold import Fold

    report = DoctorReport(path=str(bridge.log_path))
    for path in (bridge.directory, bridge.log_path, bridge.lock.path,
                 bridge.directory / "PAUSE", *sorted(bridge.cursors.directory.glob("*.json"))):
        for problem in mode_problems(path, bridge.perms):
            report.findings.append(Finding("warning", "permissions", problem))
    try:
        fd = os.open(bridge.log_path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return report
    try:
        size = os.fstat(fd).st_size
        report.size = size
        fold = Fold(max_kept_issues=1_000_000)
        bad: list[BadLine] = []
        for item in scan(fd, 0, size, line_no=1):
            report.lines += 1
            if isinstance(item, Entry):
                fold.apply(item)
            else:
                bad.append(item)
                fold.offset = item.end
        report.records = fold.records
        report.messages = len(fold.messages)
        repaired = {(r.record["offset"], r.record["bytes"]) for r in fold.repairs}
        for item in bad:
            if (item.offset, item.end - item.offset - 1) in repaired:
                report.findings.append(Finding(
                    "warning", "torn-repaired",
                    f"crash fragment ({item.reason}), terminated by a later writer",
                    item.offset, item.line_no))
            else:
                kind = "schema" if not item.reason.startswith(("not ", "empty", "line longer")) \
                    else "corrupt"
                report.findings.append(Finding("error", kind, item.reason, item.offset,
                                               item.line_no))
        for issue in fold.issues:
            orphan = issue.kind == "orphan"
            report.findings.append(Finding("error" if orphan else "warning",
                                           "orphan-status" if orphan else issue.kind,
                                           issue.reason, issue.offset, None, issue.ref))
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
                report.findings.append(Finding(
                    "warning", "cursor",
                    f"cursor {cursor.consumer} refers to another file (epoch {cursor.epoch}); "
                    "it is moved on its next read"))
            elif cursor.offset > size:
                report.findings.append(Finding(
                    "warning", "cursor",
                    f"cursor {cursor.consumer} is at {cursor.offset}, past the end ({size})"))
    finally:
        os.close(fd)
    report.findings.sort(key=lambda f: (f.offset is None, f.offset or 0))
    return report
