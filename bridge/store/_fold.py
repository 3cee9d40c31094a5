"""The fold: the current state of every message, derived from the log in order.

Nothing in the log is ever rewritten; a message's state is the result of
applying its ``msg`` record and then every ``status`` record that refers to it,
in file order. The rules (docs/protocol.md, "State") are deterministic and use
only what is in the records, so every reader of the same bytes derives the same
state. Time enters only when a caller asks "what is it now?" (expiry, leases).

Transitions (anything else is ignored and reported as an issue)::

    pending ──claimed──▶ claimed ──pending──▶ pending        (hand back / retry)
       │                   │  ▲ same claimer: extend; another: only after the lease ended
       └──done|failed|cancelled|expired|dead──▶ terminal (final)
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..format import (
    MAX_LINE,
    PROTOCOL_VERSION,
    TERMINAL_STATUSES,
    BadLine,
    Entry,
    MessageFields,
    Skipped,
    StatusFields,
    check_record,
    decode_line,
    iter_chunks,
    message_fields,
    parse_ts,
    status_fields,
)

__all__ = ["Fold", "FoldIssue", "MessageState"]

_PRIORITY_RANK = {"high": 0, "normal": 1, "low": 2}


def _ts(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return parse_ts(value)
    except (TypeError, ValueError):
        return None


@dataclass(slots=True)
class MessageState:
    """What the fold knows about one message (content stays in the file: see ``offset``)."""

    id: str
    sender: str
    to: str | None
    type: str
    ts: str
    offset: int
    end: int
    reply_to: str | None = None
    priority: str = "normal"
    expires: float | None = None
    status: str = "pending"
    claimed_by: str | None = None
    lease_until: float | None = None
    not_before: float | None = None
    attempts: int = 0
    reason: str | None = None
    updated: str | None = None
    changes: int = 0

    @property
    def terminal(self) -> bool:
        """Whether the message reached a final status."""
        return self.status in TERMINAL_STATUSES

    def lease_expired(self, now: float) -> bool:
        """A claim whose lease has run out (the work may be taken again)."""
        return self.status == "claimed" and (self.lease_until or 0.0) <= now

    def effective_status(self, now: float) -> str:
        """The status as of ``now``: ``expired`` for an open message past its expiry."""
        if self.status == "pending" or self.lease_expired(now):
            if self.expires is not None and self.expires <= now:
                return "expired"
            return "pending"
        return self.status

    def available(self, now: float) -> bool:
        """Whether a worker may take it now: open, not leased, not expired, not deferred."""
        return (
            self.effective_status(now) == "pending"
            and (self.not_before is None or self.not_before <= now)
        )

    def addressed_to(self, agent: str) -> bool:
        """``to`` names the agent, or ``to`` is absent and the agent is not the sender."""
        return self.to == agent if self.to is not None else self.sender != agent


@dataclass(frozen=True, slots=True)
class FoldIssue:
    """A record the fold ignored (or noted), with where it is and why."""

    offset: int
    kind: str  # "orphan" | "duplicate" | "final" | "conflict"
    reason: str
    ref: str | None = None


@dataclass
class Fold:
    """Incrementally folded state of one log file.

    Feed it entries in file order with :meth:`apply` (or :meth:`feed`); it keeps
    the offset up to which it has consumed the file.
    """

    messages: dict[str, MessageState] = field(default_factory=dict)
    # The messages not yet final, in file order: what inboxes and claims look at,
    # so their cost follows the open work, not the size of the file.
    open: dict[str, MessageState] = field(default_factory=dict)
    idempotency: dict[tuple[str, str], str] = field(default_factory=dict)
    replies: dict[str, list[str]] = field(default_factory=dict)
    issues: list[FoldIssue] = field(default_factory=list)
    bad_lines: list[BadLine] = field(default_factory=list)
    repairs: list[Entry] = field(default_factory=list)
    epoch: str | None = None
    offset: int = 0
    records: int = 0
    last_ts: str | None = None
    max_kept_issues: int = 10_000

    def _issue(self, offset: int, kind: str, reason: str, ref: str | None = None) -> None:
        if len(self.issues) < self.max_kept_issues:
            self.issues.append(FoldIssue(offset, kind, reason, ref))

    def feed(self, items: Iterable[Entry | BadLine]) -> None:
        """Apply scanned entries; bad lines are remembered (up to a bound) and skipped."""
        apply = self.apply
        for item in items:
            if type(item) is Entry:
                apply(item)
            else:
                if len(self.bad_lines) < self.max_kept_issues:
                    self.bad_lines.append(item)  # type: ignore[arg-type]
                self.offset = item.end

    def apply(self, entry: Entry) -> None:
        """Apply one valid record."""
        rec = entry.record
        self.offset = entry.end
        self.records += 1
        t = rec["t"] if "t" in rec else None
        if "ts" in rec:
            self.last_ts = rec["ts"]
        if t == "msg" or t is None:
            self._apply_message(rec, entry.offset, entry.end)
        elif t == "status":
            fields = status_fields(rec)
            if isinstance(fields, str):  # pragma: no cover - callers pass checked records
                raise ValueError(fields)
            self._apply_status_fields(fields, entry.offset)
        elif t == "epoch":
            if entry.offset == 0:
                self.epoch = rec.get("epoch") or rec["id"]
        elif t == "repair":
            self.repairs.append(entry)

    def feed_fd(self, fd: int, start: int, end: int) -> list[BadLine]:
        """Fold the complete lines in ``[start, end)`` of ``fd``; return the bad ones.

        Same result as ``feed(scan(fd, start, end))``, with the per-line layers
        flattened: folding a large file on start-up is this loop.
        """
        # Folding millions of records creates millions of objects that are never
        # cyclic garbage; the cyclic collector scanning the growing heap over and
        # over costs a quarter of the time, so it is paused for big feeds.
        pause_gc = end - start > (8 << 20) and gc.isenabled()
        if pause_gc:
            gc.disable()
        try:
            return self._feed_fd(fd, start, end)
        finally:
            if pause_gc:
                gc.enable()

    def _feed_fd(self, fd: int, start: int, end: int) -> list[BadLine]:
        loads, decode_error = orjson.loads, orjson.JSONDecodeError
        apply_fields, apply_status = self._apply_fields, self._apply_status_fields
        bad: list[BadLine] = []
        records, last_ts = self.records, self.last_ts
        nxt = start
        try:
            for base, lines in iter_chunks(fd, start, end):
                nxt = base
                for line in lines:
                    off = nxt
                    problem: str
                    if line.__class__ is Skipped:  # type: ignore[comparison-overlap]
                        nxt = off + int(line) + 1
                        problem = f"line longer than {MAX_LINE} bytes"
                    else:
                        nxt = off + len(line) + 1
                        try:
                            rec = loads(line)
                        except decode_error:
                            rec = None
                        if type(rec) is dict:
                            # `in` and subscripts, not .get(): no method call per line.
                            kind = rec["t"] if "t" in rec else None
                            v = rec["v"] if "v" in rec else None
                            v1 = v == PROTOCOL_VERSION and v.__class__ is int  # not True
                            if kind == "msg" and v1:
                                fields = message_fields(rec)
                                if type(fields) is tuple:
                                    records += 1
                                    last_ts = fields[4]
                                    apply_fields(fields, off, nxt, False)
                                    continue
                                problem = fields  # type: ignore[assignment]
                            elif kind == "status" and v1:
                                sfields = status_fields(rec)
                                if type(sfields) is tuple:
                                    records += 1
                                    last_ts = sfields[3]
                                    apply_status(sfields, off)
                                    continue
                                problem = sfields  # type: ignore[assignment]
                            else:
                                checked = check_record(rec)
                                if checked is None:
                                    self.records, self.last_ts = records, last_ts
                                    self.apply(Entry(off, nxt, rec))
                                    records, last_ts = self.records, self.last_ts
                                    continue
                                problem = checked
                        else:
                            decoded = decode_line(line)
                            problem = decoded if isinstance(decoded, str) else "not a valid record"
                    item = BadLine(off, nxt, problem)
                    if len(self.bad_lines) < self.max_kept_issues:
                        self.bad_lines.append(item)
                    bad.append(item)
        finally:
            # Counters live in locals in the loop; attribute stores cost per line.
            self.records, self.last_ts = records, last_ts
            self.offset = max(self.offset, nxt)
        return bad

    def _apply_message(self, rec: dict[str, Any], offset: int, end: int) -> None:
        fields = message_fields(rec)
        if isinstance(fields, str):  # pragma: no cover - callers pass checked records
            raise ValueError(fields)  # noqa: TRY004 - a bad value, not a bad type
        self._apply_fields(fields, offset, end, "v" not in rec and "t" not in rec)

    def _apply_fields(self, fields: MessageFields, offset: int, end: int, seed: bool) -> None:
        mid, sender, to, mtype, ts, reply_to, priority, expires, status, idem = fields
        known = self.messages.get(mid)
        if known is not None:
            if seed:
                # The seed's writers mark a message done by writing it again
                # with the new status; read that as a status change.
                if status in TERMINAL_STATUSES and not known.terminal:
                    known.status, known.updated = status, ts
                    self.open.pop(mid, None)
                    known.changes += 1
                return
            self._issue(offset, "duplicate",
                        f"duplicate message id {mid}; the first one counts", mid)
            return
        # Positional arguments: one of these is built per message of a big file.
        state = MessageState(
            mid, sender, to, mtype, ts, offset, end, reply_to, priority,
            None if expires is None else _ts(expires),
            status if status in TERMINAL_STATUSES else "pending",
        )
        self.messages[mid] = state
        if not state.terminal:
            self.open[mid] = state
        if reply_to is not None:
            self.replies.setdefault(reply_to, []).append(mid)
        if idem is not None:
            self.idempotency.setdefault((sender, idem), mid)

    def _apply_status_fields(self, fields: StatusFields, offset: int) -> None:
        ref, new, by, ts, lease_until, not_before, reason = fields
        state = self.messages.get(ref)
        if state is None:
            self._issue(offset, "orphan", f"status {new!r} for unknown message {ref}", ref)
            return
        cur = state.status
        if cur in TERMINAL_STATUSES:
            verb = "repeated" if new == cur else "ignored"
            self._issue(offset, "final",
                        f"{new!r} after {cur!r} {verb}: {ref} was already final", ref)
            return
        if new == "claimed":
            if cur == "claimed" and state.claimed_by != by:
                when = _ts(ts)
                if when is None or when < (state.lease_until or 0.0):
                    self._issue(offset, "conflict", f"claim by {by} ignored: {ref} leased to "
                                f"{state.claimed_by}", ref)
                    return
            if not (cur == "claimed" and state.claimed_by == by):
                state.attempts += 1
            state.status, state.claimed_by, state.lease_until = "claimed", by, _ts(lease_until)
            state.not_before = None
        elif new == "pending":
            if cur == "claimed" and state.claimed_by != by:
                when = _ts(ts)
                if when is None or when < (state.lease_until or 0.0):
                    self._issue(offset, "conflict", f"release by {by} ignored: {ref} leased to "
                                f"{state.claimed_by}", ref)
                    return
            state.status, state.claimed_by, state.lease_until = "pending", None, None
            state.not_before = _ts(not_before)
        else:
            state.status = new
            state.lease_until = None
            self.open.pop(ref, None)
        if reason is not None:
            state.reason = reason
        state.updated = ts
        state.changes += 1

    # -- queries ---------------------------------------------------------------

    def get(self, message_id: str) -> MessageState | None:
        """The state of one message, or None."""
        return self.messages.get(message_id)

    def inbox(self, agent: str, now: float, *, include_claimed: bool = True) -> list[MessageState]:
        """Open messages for ``agent``: available ones (priority, then age) and, optionally,
        those claimed and in flight."""
        out = []
        for state in self.open.values():
            if state.terminal or not state.addressed_to(agent):
                continue
            eff = state.effective_status(now)
            if eff == "pending" or (include_claimed and eff == "claimed"):
                out.append(state)
        out.sort(key=lambda s: (_PRIORITY_RANK[s.priority], s.offset))
        return out

    def thread(self, message_id: str) -> list[MessageState]:
        """The conversation around a message: its root, then every reply in file order."""
        root = self.messages.get(message_id)
        if root is None:
            return []
        path = {root.id}
        while root.reply_to is not None and root.reply_to in self.messages:
            parent = self.messages[root.reply_to]
            if parent.id in path:  # a cycle written by hand; stop rather than loop
                break
            path.add(parent.id)
            root = parent
        seen = {root.id}
        members = [root]
        queue = [root.id]
        while queue:
            for child in self.replies.get(queue.pop(), []):
                state = self.messages.get(child)
                if state is not None and state.id not in seen:
                    seen.add(state.id)
                    members.append(state)
                    queue.append(state.id)
        members.sort(key=lambda s: s.offset)
        return members

    def counts(self, now: float) -> dict[str, int]:
        """Number of messages per effective status."""
        out: dict[str, int] = {}
        for state in self.messages.values():
            key = state.effective_status(now)
            out[key] = out.get(key, 0) + 1
        return out

    def __iter__(self) -> Iterator[MessageState]:
        return iter(self.messages.values())
