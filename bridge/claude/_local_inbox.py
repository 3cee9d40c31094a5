"""What waits for one agent in a local bridge, read for a hook in a fraction of a full fold.

A hook is a new process on every prompt, so it cannot keep the library's
incremental fold, and a full fold decodes every line of the live file. This
reader skips, by bytes alone, the two kinds of line that cannot change what
waits for ``agent``: a message that our writers wrote (``{"v":1,"t":"msg",…``)
whose ``"to":"X"`` names another agent, and a status record (``{"v":1,"t":"status",…``)
whose ``"ref":"R"`` names a message it skipped (a ref always follows its message
in the file). Every other line goes through the same :class:`Fold` as the
library's, so the states it reports are the library's states. A line in another
spelling (spaces after the colons, as ``jq`` writes, or another key order) is
never skipped, only decoded.

A message id that occurs twice (a writer's bug, or a hand-made line) is left to
the library: the first time the fast read meets one, it starts again with the
library's full fold of the file, which decides which line counts.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple

from ..format import Entry, Message, Skipped, check_record, decode_line, iter_chunks, read_line_at
from ..store import LOG_NAME, Fold, MessageState

__all__ = ["Waiting", "read_waiting"]

_MSG = b'{"v":1,"t":"msg","id":"'
_STATUS = b'{"v":1,"t":"status","id":"'
_TO = b'"to":"'
_CANONICAL = re.compile(rb'\{"v":1,"t":"msg","id":"([^"\\]*)","ts":"[^"\\]*","from":"[^"\\]*",'
                        rb'"to":"([^"\\]*)"')
_REF = b'"ref":"'


class Waiting(NamedTuple):
    """An open message for the agent: its record and its folded state."""

    message: Message
    state: MessageState

    @property
    def id(self) -> str:
        return self.message.id


def read_waiting(directory: Path, agent: str, now: float) -> list[Waiting]:
    """Open messages addressed to ``agent``, in inbox order (priority, then age)."""
    try:
        fd = os.open(directory / LOG_NAME, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return []
    try:
        size = os.fstat(fd).st_size
        found = _filtered(fd, size, agent, now)
        return found if found is not None else _full(fd, size, agent, now)
    finally:
        os.close(fd)


def _filtered(fd: int, size: int, agent: str, now: float) -> list[Waiting] | None:
    """The fast read; None when the file holds something only the full fold decides."""
    fold = Fold()
    records: dict[str, Message] = {}
    skipped: set[bytes] = set()
    decoded: set[bytes] = set()  # ids of the messages read in full (as bytes: no decode)
    mine = agent.encode()
    canonical = _CANONICAL.match
    status_id = len(_STATUS)
    for base, lines in iter_chunks(fd, 0, size):
        nxt = base
        for line in lines:
            off = nxt
            if line.__class__ is Skipped:  # type: ignore[comparison-overlap]
                nxt = off + int(line) + 1
                continue
            nxt = off + len(line) + 1
            # The loop runs once per line of the file: C string methods only, inline.
            if line.startswith(_MSG):
                # Our writers' prefix, matched in one call: a top-level `to` (no object or
                # array before it), its value without escapes, and no second `to` after.
                m = canonical(line)
                if m is not None and m.group(2) != mine and line.find(_TO, m.end()) < 0:
                    mid = m.group(1)
                    if mid in decoded:
                        return None  # a repeated id: the full fold says which counts
                    skipped.add(mid)
                    continue
            elif line.startswith(_STATUS):
                ref_at = line.find(_REF, status_id)
                if ref_at > 0 and line.find(b"{", 1, ref_at) < 0:
                    start = ref_at + 7
                    if line[start:line.find(b'"', start)] in skipped:
                        continue
            rec = decode_line(line)
            if isinstance(rec, str) or check_record(rec) is not None:
                continue  # a bad line: the library reports those, a hook skips them
            kind = rec.get("t")
            if kind is None or kind == "msg":
                raw_id = rec["id"].encode()
                if raw_id in skipped:
                    return None
                decoded.add(raw_id)
                if rec["id"] not in records:
                    records[rec["id"]] = Message.from_record(rec)
            fold.apply(Entry(off, nxt, rec))
    return [Waiting(records[s.id], s) for s in fold.inbox(agent, now) if s.id in records]


def _full(fd: int, size: int, agent: str, now: float) -> list[Waiting]:
    """The library's own fold of the whole file (what Bridge.inbox reads)."""
    fold = Fold()
    fold.feed_fd(fd, 0, size)
    out = []
    for state in fold.inbox(agent, now):
        rec = decode_line(read_line_at(fd, state.offset, state.end))
        if isinstance(rec, dict):
            out.append(Waiting(Message.from_record(rec), state))
    return out
