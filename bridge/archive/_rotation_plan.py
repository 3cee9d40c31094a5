"""Planning a rotation: which lines of the live file leave, to which archive, and which stay.

The plan is made from the fold itself (a :class:`Census` is a Fold that also
notes which message each line belongs to), so rotation and every agent agree
on what is finished by construction. The rules:

- a message leaves with every line that refers to it (its ``msg`` line, its
  ``status`` lines, a seed re-write) when it is finished (done, failed,
  cancelled, expired, dead, or open past its ``expires``), its last activity
  is older than the cutoff (or ``max_size`` asks for more room), and all its
  lines lie before the *horizon*: the lowest saved consumer cursor. A consumer
  that has not read a record yet therefore still finds it in the live file;
- other records (events, repairs, unknown kinds) leave when their own ``ts``
  is older than the cutoff and they lie before the horizon;
- a line that is not a valid record goes wherever the next valid line goes
  (a crash fragment is followed by the ``repair`` record that terminated it,
  so the two stay together), and stays when nothing valid follows it;
- the old file's ``epoch`` header is replaced by the new file's.

Archived messages go to the archive of the month of their ``ts`` (UTC); other
records to the month of theirs.
"""

from __future__ import annotations

import bisect
import errno
import os
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import compress, islice, pairwise, repeat
from operator import ne
from typing import Any

from ..format import (
    TERMINAL_STATUSES,
    BadLine,
    Entry,
    MessageFields,
    StatusFields,
    format_ts,
    parse_ts,
)
from ..store import Fold, MessageState
from ._archive import month_of_ts

__all__ = ["DROP", "KEEP", "Census", "Plan", "Sink", "census", "copy_runs", "make_plan"]

KEEP = ""
"""The destination of a kept line (an archive destination is a month, ``YYYY-MM``)."""
DROP = "-"
"""The destination of the old header, which the new file's header replaces."""


@dataclass(frozen=True, slots=True)
class _Other:
    """A line that is neither a message nor a status: its ``ts`` and whether it is the header."""

    ts: str | None
    header: bool


class Census(Fold):
    """A fold that also records, for each valid line, its offset and owner.

    The owner of a ``msg`` or ``status`` line is the message id it is about;
    of any other record, an :class:`_Other`. Bad lines are what
    :meth:`Fold.feed_fd` returns.
    """

    def __init__(self) -> None:
        super().__init__(max_kept_issues=0)
        self.offsets = array("q")
        self.owners: list[object] = []
        self.last_line: dict[str, int] = {}
        self.others: list[int] = []
        """Indices of the lines whose owner is an _Other."""

    def _apply_fields(self, fields: MessageFields, offset: int, end: int, seed: bool) -> None:
        self.offsets.append(offset)
        self.owners.append(fields[0])
        self.last_line[fields[0]] = offset
        super()._apply_fields(fields, offset, end, seed)

    def _apply_status_fields(self, fields: StatusFields, offset: int) -> None:
        self.offsets.append(offset)
        self.owners.append(fields[0])
        self.last_line[fields[0]] = offset
        super()._apply_status_fields(fields, offset)

    def apply(self, entry: Entry) -> None:
        kind = entry.record.get("t")
        if kind is not None and kind not in {"msg", "status"}:
            self.others.append(len(self.offsets))
            self.offsets.append(entry.offset)
            self.owners.append(_Other(entry.record.get("ts"), entry.offset == 0
                                      and kind == "epoch"))
        super().apply(entry)


@dataclass
class Plan:
    """What a rotation will do with the lines before ``snapshot``."""

    snapshot: int
    horizon: int
    runs: list[tuple[int, int, str]] = field(default_factory=list)
    """``(start, end, destination)`` byte ranges covering ``[0, snapshot)``, in order."""
    archived: dict[str, str] = field(default_factory=dict)
    """Archived message id -> month."""
    moved_records: int = 0
    kept_records: int = 0
    corrupt_moved: list[BadLine] = field(default_factory=list)
    corrupt_kept: list[BadLine] = field(default_factory=list)
    pinned: int = 0
    """Finished, old messages that stay because a consumer has not read them yet."""
    moved_bytes: int = 0
    kept_bytes: int = 0
    dropped_bytes: int = 0
    months: dict[str, int] = field(default_factory=dict)
    """Bytes moved per month."""

    @property
    def empty(self) -> bool:
        """Nothing would leave the live file."""
        return self.moved_bytes == 0


def _older(ts: str | None, cutoff: str, cutoff_s: float) -> bool:
    """Whether ``ts`` is before the cutoff (canonical timestamps compare as text)."""
    if ts is None:
        return False
    if len(ts) == 24 and ts[-1] == "Z":
        return ts < cutoff
    try:
        return parse_ts(ts) < cutoff_s
    except (TypeError, ValueError):
        return False


def _finished_at(state: MessageState, now: float) -> str | None:
    """When a finished message finished (its last change), or None if it is open."""
    if state.terminal:
        return state.updated or state.ts
    if state.effective_status(now) == "expired" and state.expires is not None:
        return format_ts(state.expires)
    return None


def census(fd: int, snapshot: int) -> tuple[Census, list[BadLine]]:
    """Fold ``[0, snapshot)`` of the live file, noting every line's owner."""
    fold = Census()
    bad = fold.feed_fd(fd, 0, snapshot)
    return fold, bad


def make_plan(
    fold: Census,
    bad: list[BadLine],
    snapshot: int,
    horizon: int,
    *,
    now: float,
    older_than: float | None,
    max_size: int | None,
) -> Plan:
    """Decide every line's destination (see the module docstring)."""
    plan = Plan(snapshot, horizon)
    cutoff_s = now - older_than if older_than is not None else None
    cutoff = format_ts(cutoff_s) if cutoff_s is not None else ""
    candidates: list[MessageState] = []
    last_line, archived = fold.last_line, plan.archived
    terminal = TERMINAL_STATUSES
    # One pass over every message: written flat, it is most of the planning time.
    for state in fold.messages.values():
        if state.status in terminal:
            done_at = state.updated or state.ts
        elif state.expires is not None:
            expired_at = _finished_at(state, now)
            if expired_at is None:
                continue
            done_at = expired_at
        else:
            continue
        if cutoff_s is None:
            old = False
        elif len(done_at) == 24 and done_at[-1] == "Z":  # canonical: compares as text
            old = done_at < cutoff
        else:
            old = _older(done_at, cutoff, cutoff_s)
        mid = state.id
        if last_line.get(mid, state.offset) >= horizon:
            if old or cutoff_s is None:
                plan.pinned += 1
        elif old:
            ts = state.ts
            archived[mid] = ts[:7] if len(ts) == 24 and ts[-1] == "Z" else month_of_ts(ts)
        else:
            candidates.append(state)
    if max_size is not None and snapshot > max_size:
        # Busy rather than old: finished messages leave oldest first until the
        # live file would fit (counting their msg lines; status lines come on top).
        excess = snapshot - max_size - sum(
            fold.messages[mid].end - fold.messages[mid].offset for mid in archived)
        for state in candidates:
            if excess <= 0:
                break
            archived[state.id] = month_of_ts(state.ts)
            excess -= state.end - state.offset
    _assign_runs(plan, fold, bad, cutoff, cutoff_s, older_than is not None)
    return plan


def _assign_runs(plan: Plan, fold: Census, bad: list[BadLine], cutoff: str,
                 cutoff_s: float | None, by_age: bool) -> None:
    offsets, owners = fold.offsets, fold.owners
    snapshot, horizon = plan.snapshot, plan.horizon
    n = len(offsets)
    # Each valid line's destination, looked up in C (map) rather than in a Python loop;
    # the few lines that are not about a message are fixed up after.
    dests: list[str] = list(map(plan.archived.get, owners, repeat(KEEP)))  # type: ignore[arg-type]
    for i in fold.others:
        other: _Other = owners[i]  # type: ignore[assignment]
        if other.header:
            dests[i] = DROP
        elif (by_age and cutoff_s is not None and offsets[i] < horizon
              and _older(other.ts, cutoff, cutoff_s)):
            dests[i] = month_of_ts(other.ts)  # type: ignore[arg-type]
    # Line i spans [starts[i], starts[i + 1]): a bad line belongs to the valid line after it.
    starts = array("q", offsets)
    starts.append(snapshot)
    trailing: list[BadLine] = []
    for item in bad:
        k = bisect.bisect_right(offsets, item.offset)
        if k == n:
            trailing.append(item)
            starts[n] = min(starts[n], item.offset)
            continue
        starts[k] = min(starts[k], item.offset)
        (plan.corrupt_kept if dests[k] == KEEP else plan.corrupt_moved).append(item)
    plan.corrupt_kept.extend(trailing)
    kept = dests.count(KEEP)
    plan.kept_records = kept
    plan.moved_records = n - kept - dests.count(DROP)
    # Runs: where the destination changes (found in C), then one Python step per run.
    cuts = [0, *compress(range(1, n), map(ne, islice(dests, 1, None), dests)), n]
    runs = plan.runs
    for a, b in pairwise(cuts):
        if a < b:
            runs.append((starts[a], starts[b], dests[a]))
    if starts[n] < snapshot:  # bad lines with no valid line after them stay
        if runs and runs[-1][2] == KEEP:
            runs[-1] = (runs[-1][0], snapshot, KEEP)
        else:
            runs.append((starts[n], snapshot, KEEP))
    for start, end, dest in runs:
        if dest == KEEP:
            plan.kept_bytes += end - start
        elif dest == DROP:
            plan.dropped_bytes += end - start
        else:
            plan.moved_bytes += end - start
            plan.months[dest] = plan.months.get(dest, 0) + end - start


BIG_RUN = 1 << 20
"""Runs at least this long are copied by the kernel when the destination allows it."""

_NO_KERNEL_COPY = frozenset({errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP})


class _KernelCopyUnavailable(Exception):
    """copy_file_range cannot copy between these two files (nothing was copied)."""


class Sink:
    """A buffered destination for copied byte ranges (one ``write`` per MiB).

    With ``fd`` (a plain file written at its own position, not O_APPEND), long
    ranges are copied by the kernel (``copy_file_range``) without passing
    through Python.
    """

    def __init__(self, write: Callable[[bytes], Any], position: int = 0,
                 fd: int | None = None) -> None:
        self._write = write
        self._parts: list[memoryview] = []
        self._size = 0
        self.position = position  # bytes written so far, buffered included
        self.fd = fd

    def copy_from(self, src: int, start: int, length: int) -> None:
        """Copy ``length`` bytes at ``start`` of ``src`` (needs ``fd``)."""
        if self.fd is None:
            raise _KernelCopyUnavailable
        self.flush()
        pos, end = start, start + length
        while pos < end:
            try:
                done = os.copy_file_range(src, self.fd, end - pos, pos)
            except OSError as exc:
                if pos == start and exc.errno in _NO_KERNEL_COPY:
                    raise _KernelCopyUnavailable from exc  # e.g. archive/ on another disk
                raise
            if done == 0:
                raise OSError(f"the live file ended at {pos} while rotating (expected {end})")
            pos += done
        self.position += length

    def add(self, data: memoryview) -> None:
        self._parts.append(data)
        self._size += len(data)
        self.position += len(data)
        if self._size >= 1 << 20:
            self.flush()

    def flush(self) -> None:
        if self._parts:
            self._write(b"".join(self._parts))
            self._parts, self._size = [], 0


def copy_runs(fd: int, runs: list[tuple[int, int, str]], sinks: dict[str, Sink],
              on_chunk: Callable[[int], None] | None = None, chunk: int = 4 << 20,
              ) -> list[int]:
    """Copy each run to its sink; return the kept runs as flat ``old, new, length`` triples."""
    kept: list[int] = []
    buf = b""
    buf_start = 0
    for start, end, dest in runs:
        if dest == DROP:
            continue
        sink = sinks[dest]
        if dest == KEEP:
            kept += (start, sink.position, end - start)
        if sink.fd is not None and end - start >= BIG_RUN:
            try:
                sink.copy_from(fd, start, end - start)
            except _KernelCopyUnavailable:
                sink.fd = None  # copy through Python from now on
            else:
                if on_chunk is not None:
                    on_chunk(end - start)
                continue
        pos = start
        while pos < end:
            if not buf_start <= pos < buf_start + len(buf):
                buf = os.pread(fd, chunk, pos)
                buf_start = pos
                if not buf:
                    raise OSError(f"the live file ended at {pos} while rotating (expected {end})")
                if on_chunk is not None:
                    on_chunk(len(buf))
            take = min(end, buf_start + len(buf)) - pos
            sink.add(memoryview(buf)[pos - buf_start : pos - buf_start + take])
            pos += take
    for sink in sinks.values():
        sink.flush()
    return kept
