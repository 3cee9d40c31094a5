"""A message as one flat JSON object: its record's fields and its effective state.

This is the shape the MCP server hands the model (and the one ``--json`` views
are to share): no nested ``message``, one ``status`` (the effective one, so an
open message past its expiry reads ``expired``), times as ISO-8601, ages as
numbers with their unit in the name.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .format._time import format_ts, parse_ts

if TYPE_CHECKING:
    from .local._bridge import MessageView

__all__ = ["view_dict"]


def view_dict(view: MessageView, now: float | None = None) -> dict[str, Any]:
    """``view`` as one flat object (``from``, not ``sender``; state fields beside the record's)."""
    now = time.time() if now is None else now
    m, st = view.message, view.state
    out: dict[str, Any] = {"id": m.id, "from": m.sender, "to": m.to, "type": m.type,
                           "reply_to": m.reply_to, "ts": m.ts}
    try:
        out["age_s"] = round(max(0.0, now - parse_ts(m.ts)), 3)
    except ValueError:
        out["age_s"] = None
    out.update(
        priority=st.priority,
        status=st.effective_status(now),
        claimed_by=st.claimed_by if st.status == "claimed" else None,
        lease_until=format_ts(st.lease_until) if st.lease_until and st.status == "claimed"
        else None,
        attempts=st.attempts,
        reason=st.reason,
        updated=st.updated,
        expires=m.expires,
        metadata=m.metadata,
        content=m.content,
    )
    return out
