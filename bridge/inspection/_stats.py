"""``bridge stats``: counts by kind, sender, type and status, in one pass over the file."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..format import BadLine, Entry, parse_ts, scan
from ..store import Fold

if TYPE_CHECKING:
    from ..store import LocalStore

__all__ = ["compute_stats", "stats_of"]


def compute_stats(bridge: LocalStore) -> dict[str, Any]:
    """A summary of the live file as a JSON-ready dict."""
    try:
        fd = os.open(bridge.log_path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return stats_of((), 0)
    try:
        size = os.fstat(fd).st_size
        return stats_of(scan(fd, 0, size), size)
    finally:
        os.close(fd)


def stats_of(items: Iterable[Entry | BadLine], size: int) -> dict[str, Any]:
    """The summary of a log given as its scanned lines in order (``size``: its bytes)."""
    kinds: Counter[str] = Counter()
    senders: Counter[str] = Counter()
    types: Counter[str] = Counter()
    fold = Fold()
    lines = bad = 0
    first: str | None = None
    last: str | None = None
    first_at: float | None = None
    last_at: float | None = None
    for item in items:
        lines += 1
        if not isinstance(item, Entry):
            bad += 1
            continue
        rec = item.record
        kind = rec.get("t") or "msg"
        kinds[kind] += 1
        senders[str(rec.get("from", "?"))] += 1
        if kind == "msg":
            types[rec["type"]] += 1
        if "ts" in rec:
            # The earliest and latest by time, not by position: after a rotation
            # the live file starts with a fresh epoch header before older records.
            when = _when(rec["ts"])
            if when is not None:
                if first_at is None or when < first_at:
                    first, first_at = rec["ts"], when
                if last_at is None or when > last_at:
                    last, last_at = rec["ts"], when
        fold.apply(item)
    now = time.time()
    open_states = [s for s in fold.messages.values() if not s.terminal]
    oldest = min(open_states, key=lambda s: s.offset, default=None)
    return {
        "size": size,
        "lines": lines,
        "records": fold.records,
        "bad_lines": bad,
        "first": first,
        "last": last,
        "kinds": dict(kinds.most_common()),
        "senders": dict(senders.most_common()),
        "types": dict(types.most_common()),
        "counts": dict(sorted(fold.counts(now).items())),
        "oldest_open": oldest.id if oldest else None,
        "oldest_open_age_s": round(now - parse_ts(oldest.ts), 3) if oldest else None,
    }


def _when(ts: object) -> float | None:
    try:
        return parse_ts(ts) if isinstance(ts, str) else None
    except ValueError:
        return None
