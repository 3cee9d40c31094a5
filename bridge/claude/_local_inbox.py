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

One divergence is accepted: a message id repeated by a writer, first to another
agent and then to this one, counts for this one here (the fold says the first
counts). The hooks only announce; a claim goes through the library, which
refuses it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from .._fold import Fold, MessageState
from .._records import Entry, Message, check_record, decode_line
from .._scan import Skipped, iter_chunks

__all__ = ["Waiting", "read_waiting"]

LOG_NAME = "messages.jsonl"  # bridge._bridge.LOG_NAME, without importing the writer side
_MSG = b'{"v":1,"t":"msg","id":"'
_STATUS = b'{"v":1,"t":"status","id":"'
_TO = b'"to":"'
_REF = b'"ref":"'


class Waiting(NamedTuple):
    """An open message for the agent: its record and its folded state."""

    message: Message
    state: MessageState

    @property
    def id(self) -> str:
        return self.message.id


def _quoted_after(line: bytes, key: bytes) -> tuple[int, bytes | None]:
    """Where ``key`` first occurs and the string value after it (-1, None: absent)."""
    at = line.find(key)
    if at < 0:
        return -1, None
    start = at + len(key)
    end = line.find(b'"', start)
    return at, (line[start:end] if end >= 0 else None)


def _skippable_message(line: bytes, mine: bytes) -> bytes | None:
    """The id of a message line addressed to another agent, in the canonical spelling.

    Only for lines in our writers' spelling (``{"v":1,"t":"msg","id":…``) whose ``to``
    comes before any nested object or array: a key of the same name nested in
    metadata must not be taken for the top-level field.
    """
    if not line.startswith(_MSG):
        return None
    id_end = line.find(b'"', len(_MSG))
    to_at, to = _quoted_after(line, _TO)
    if id_end < 0 or to is None or to == mine:
        return None
    # Top level only: no object or array opens before it (strings cannot hold a bare
    # brace-quote sequence, but metadata written before `to` is an object).
    nested = min((i for i in (line.find(b"{", 1), line.find(b"[")) if i >= 0), default=-1)
    if 0 <= nested < to_at:
        return None
    return line[len(_MSG):id_end]


def _skippable_status(line: bytes, skipped: set[bytes]) -> bool:
    if not line.startswith(_STATUS):
        return False
    _, ref = _quoted_after(line, _REF)
    return ref is not None and ref in skipped


def read_waiting(directory: Path, agent: str, now: float) -> list[Waiting]:
    """Open messages addressed to ``agent``, in inbox order (priority, then age)."""
    try:
        fd = os.open(directory / LOG_NAME, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return []
    fold = Fold()
    records: dict[str, Message] = {}
    skipped: set[bytes] = set()
    mine = agent.encode()
    try:
        size = os.fstat(fd).st_size
        for base, lines in iter_chunks(fd, 0, size):
            nxt = base
            for line in lines:
                off = nxt
                if line.__class__ is Skipped:  # type: ignore[comparison-overlap]
                    nxt = off + int(line) + 1
                    continue
                nxt = off + len(line) + 1
                other = _skippable_message(line, mine)
                if other is not None:
                    skipped.add(other)
                    continue
                if _skippable_status(line, skipped):
                    continue
                rec = decode_line(line)
                if isinstance(rec, str) or check_record(rec) is not None:
                    continue  # a bad line: the library reports those, a hook skips them
                fold.apply(Entry(off, nxt, rec))
                kind = rec.get("t", "msg")
                if kind == "msg" and rec["id"] not in records:
                    records[rec["id"]] = Message.from_record(rec)
    finally:
        os.close(fd)
    return [Waiting(records[s.id], s) for s in fold.inbox(agent, now) if s.id in records]
