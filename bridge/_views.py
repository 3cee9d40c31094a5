"""The JSON shapes of what the bridge reports: a message view, its history, the status.

A **view** is one flat object: the message's record — every field of it but
``t``, so ``id``, ``ts``, ``from``, ``to``, ``type``, ``reply_to``, ``content``,
``metadata``, ``expires``, ``idem`` and any field of a newer writer — with its
state beside it: ``priority``, ``status`` (the *effective* status now: an open
message past its expiry reads ``expired``; the status the record was written
with is not repeated), ``claimed_by``, ``lease_until``, ``attempts``, ``reason``,
``updated``. Times are ISO-8601 strings. docs/view.schema.json is its schema.

``bridge inbox --json``, ``bridge show --json`` (a view with ``changes``,
``thread`` and ``archive`` beside it), the MCP server's tools and the line
protocol (from its view version 2, ``bridge.remote._wire``) all use these.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final

from .format import format_ts

if TYPE_CHECKING:
    from .store import BridgeStatus, History, MessageView

__all__ = ["VIEW_FIELDS", "history_dict", "status_dict", "view_dict"]

VIEW_FIELDS: Final = ("id", "ts", "from", "to", "type", "reply_to", "content", "metadata",
                      "expires", "idem", "priority", "status", "claimed_by", "lease_until",
                      "attempts", "reason", "updated")
"""The keys every view has, in this order (a record's unknown fields follow them)."""

_NOT_EXTRA: Final = frozenset((*VIEW_FIELDS, "v", "t"))


def view_dict(view: MessageView, now: float | None = None) -> dict[str, Any]:
    """``view`` as one flat object (``from``, not ``sender``; the state beside the record)."""
    now = time.time() if now is None else now
    m, st = view.message, view.state
    claimed = st.status == "claimed"  # a lapsed claim still names who held it
    out: dict[str, Any] = {
        "id": m.id, "ts": m.ts, "from": m.sender, "to": m.to, "type": m.type,
        "reply_to": m.reply_to, "content": m.content, "metadata": m.metadata,
        "expires": m.expires, "idem": m.idempotency_key,
        "priority": st.priority,
        "status": st.effective_status(now),
        "claimed_by": st.claimed_by if claimed else None,
        "lease_until": format_ts(st.lease_until) if claimed and st.lease_until is not None
        else None,
        "attempts": st.attempts,
        "reason": st.reason,
        "updated": st.updated,
    }  # fmt: skip
    for key, value in m.extra.items():
        if key not in _NOT_EXTRA:
            out[key] = value
    return out


def history_dict(hist: History, now: float | None = None) -> dict[str, Any]:
    """``bridge show --json``: the view, its status records (``changes``), its thread, and
    the archive it was found in (None: the live file)."""
    now = time.time() if now is None else now
    return {**view_dict(hist.view, now), "changes": hist.changes,
            "thread": [view_dict(v, now) for v in hist.thread],
            "archive": None if hist.archive is None else str(hist.archive)}


def status_dict(st: BridgeStatus) -> dict[str, Any]:
    """``bridge status --json``: ``paused`` a boolean, ``pause`` who/why/since (or None)."""
    return {
        "directory": str(st.directory), "paused": st.paused is not None,
        "pause": st.paused.to_dict() if st.paused else None, "counts": st.counts,
        "size": st.size, "records": st.records, "bad_lines": st.bad_lines,
        "last_activity": st.last_activity, "epoch": st.epoch,
        "durability": st.durability, "filesystem": st.filesystem,
    }  # fmt: skip
