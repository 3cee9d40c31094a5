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


def read_waiting(directory: Path, agent: str, now: float) -> list[Waiting]:
    """Open messages addressed to ``agent``, in inbox order (priority, then age)."""
    try:
        fd = os.open(directory / LOG_NAME, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return []
    fold = Fold()
    records: dict[str, Message] = {}
    skipped: set[bytes] = set()
    mine = agent.encode() + b'"'
    msg_id, status_id = len(_MSG), len(_STATUS)
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
                # The loop runs once per line of the file: C string methods only, inline.
                if line.startswith(_MSG):
                    to_at = line.find(_TO)
                    if to_at > 0 and not line.startswith(mine, to_at + 6):
                        brace, bracket = line.find(b"{", 1), line.find(b"[")
                        # `to` at the top level: no object or array opened before it
                        # (metadata written first would be one).
                        if (brace < 0 or brace > to_at) and (bracket < 0 or bracket > to_at):
                            skipped.add(line[msg_id:line.find(b'"', msg_id)])
                            continue
                elif line.startswith(_STATUS):
                    ref_at = line.find(_REF, status_id)
                    if ref_at > 0:
                        start = ref_at + 7
                        if line[start:line.find(b'"', start)] in skipped:
                            continue
                rec = decode_line(line)
                if isinstance(rec, str) or check_record(rec) is not None:
                    continue  # a bad line: the library reports those, a hook skips them
                fold.apply(Entry(off, nxt, rec))
                if rec.get("t", "msg") == "msg" and rec["id"] not in records:
                    records[rec["id"]] = Message.from_record(rec)
    finally:
        os.close(fd)
    return [Waiting(records[s.id], s) for s in fold.inbox(agent, now) if s.id in records]
