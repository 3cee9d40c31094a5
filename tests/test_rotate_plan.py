"""Rotation on generated logs: every line lands in exactly one place, by the rules."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge import Bridge, Fold, rotate
from bridge.archive._archive import list_archives, month_of_ts
from bridge.format._records import TERMINAL_STATUSES, Entry
from bridge.format._scan import scan
from bridge.format._time import format_ts

NOW = time.time()
OLD = ["2026-01-05T10:00:00.000Z", "2026-02-10T10:00:00.000Z", "2026-03-01T00:00:00Z"]
RECENT = format_ts(NOW - 60)
STATUSES = ["done", "failed", "cancelled", "dead", "claimed", "pending"]

op = st.one_of(
    st.tuples(st.just("msg"), st.integers(0, 7), st.sampled_from([*OLD, RECENT]),
              st.booleans()),
    st.tuples(st.just("status"), st.integers(0, 7), st.sampled_from([*OLD, RECENT]),
              st.sampled_from(STATUSES)),
    st.tuples(st.just("event"), st.sampled_from([*OLD, RECENT])),
    st.tuples(st.just("bad"), st.sampled_from([b"not json", b'{"v":1,"t":"msg","id":"x"}',
                                               b"\x00\x00"])),
    st.tuples(st.just("seed"), st.integers(0, 7), st.sampled_from(OLD),
              st.sampled_from(["pending", "done"])),
)

counter = itertools.count()


def line_for(item: tuple[Any, ...], seq: int) -> bytes:
    kind = item[0]
    if kind == "msg":
        _, k, ts, expiring = item
        rec: dict[str, Any] = {"v": 1, "t": "msg", "id": f"kami-m{k}", "ts": ts, "from": "kami",
                               "type": "request", "content": f"c{seq}"}
        if expiring:
            rec["expires"] = OLD[0]
        return orjson.dumps(rec)
    if kind == "status":
        _, k, ts, status = item
        rec = {"v": 1, "t": "status", "id": f"s-{seq}", "ts": ts, "from": "kaylee",
               "ref": f"kami-m{k}", "status": status}
        if status == "claimed":
            rec["lease_until"] = "2099-01-01T00:00:00Z"
        return orjson.dumps(rec)
    if kind == "event":
        return orjson.dumps({"v": 1, "t": "event", "id": f"e-{seq}", "ts": item[1],
                             "from": "owner", "event": "note"})
    if kind == "seed":
        _, k, ts, status = item
        return orjson.dumps({"ts": ts, "from": "kami", "type": "request", "id": f"kami-m{k}",
                             "content": f"seed{seq}", "status": status})
    return item[1]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(ops=st.lists(op, max_size=40), cursor_at=st.one_of(st.none(), st.integers(0, 40)))
def test_generated_logs_rotate_by_the_rules(tmp_path: Path, ops: list[tuple[Any, ...]],
                                            cursor_at: int | None) -> None:
    d = tmp_path / f"b{next(counter)}"
    b = Bridge(d, agent="gen")
    b.event("start")  # creates the file with its header
    with open(b.log_path, "ab") as f:
        for seq, item in enumerate(ops):
            f.write(line_for(item, seq) + b"\n")
    original = b.log_path.read_bytes()
    lines = original.splitlines(keepends=True)
    starts = list(itertools.accumulate((len(x) for x in lines), initial=0))
    if cursor_at is not None:  # a consumer that has read up to some line
        with b.follow("reader") as f:
            f.commit(starts[min(cursor_at, len(lines))])
    horizon = starts[min(cursor_at, len(lines))] if cursor_at is not None else len(original)
    fold = Fold()
    with open(b.log_path, "rb") as fh:
        for item in scan(fh.fileno(), 0):
            if isinstance(item, Entry):
                fold.apply(item)

    rotate(b, older_than=30 * 86400, now=NOW)

    live = b.log_path.read_bytes().splitlines(keepends=True)
    archived: dict[str, list[bytes]] = {a.month: a.path.read_bytes().splitlines(keepends=True)
                                        for a in list_archives(d)}
    # 1. Every line is in exactly one place (the old header is replaced by the new one).
    placed = Counter(live[1:]) + sum((Counter(v) for v in archived.values()), Counter())
    assert placed == Counter(lines[1:])
    # 2. Order is kept in the live file and in each archive.
    for kept in [live[1:], *archived.values()]:
        rest = iter(lines)
        assert all(any(x == y for y in rest) for x in kept)  # a subsequence of the original
    # 3. Exactly the finished, old messages below the horizon moved, with all their lines.
    owner_lines: dict[str, list[int]] = {}
    for i, x in enumerate(lines):
        try:
            rec = orjson.loads(x)
        except orjson.JSONDecodeError:
            continue
        mid = rec.get("ref") if rec.get("t") == "status" else rec.get("id")
        if isinstance(mid, str):
            owner_lines.setdefault(mid, []).append(i)
    moved_lines = {x for v in archived.values() for x in v}
    for mid, state in fold.messages.items():
        finished = state.terminal or state.effective_status(NOW) == "expired"
        done_at = state.updated or state.ts
        if not state.terminal and state.expires is not None:
            done_at = format_ts(max(state.expires, 0))
        old = done_at < format_ts(NOW - 30 * 86400)
        below = all(starts[i] < horizon for i in owner_lines[mid])
        should_move = finished and old and below
        where = {lines[i] in moved_lines for i in owner_lines[mid] if lines.count(lines[i]) == 1}
        if should_move:
            assert where <= {True}, mid
            month = month_of_ts(state.ts)
            assert lines[owner_lines[mid][0]] in archived[month]
        else:
            assert where <= {False}, mid
    # 4. Nothing open was archived.
    for month_lines in archived.values():
        for x in month_lines:
            try:
                rec = orjson.loads(x)
            except orjson.JSONDecodeError:
                continue
            if rec.get("t") in (None, "msg") and isinstance(rec.get("id"), str):
                found = fold.messages.get(rec["id"])
                if found is not None:
                    assert found.status in TERMINAL_STATUSES or \
                        found.effective_status(NOW) == "expired"
    b.close()
