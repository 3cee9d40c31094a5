"""The hooks' own read of a local bridge gives what the library's inbox gives."""

from __future__ import annotations

import random
import time
from pathlib import Path

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge import Bridge
from bridge.claude._local_inbox import read_waiting

AGENTS = ["claude", "kaylee", "kami"]


def same_as_library(directory: Path, agent: str = "claude") -> list[str]:
    now = time.time()
    with Bridge(directory, agent="reader", create=False) as b:
        expected = [(v.id, v.state.status, v.state.claimed_by, v.state.attempts,
                     v.message.content, v.message.metadata) for v in b.inbox(agent)]
    got = [(w.id, w.state.status, w.state.claimed_by, w.state.attempts, w.message.content,
            w.message.metadata) for w in read_waiting(directory, agent, now)]
    assert got == expected
    return [g[0] for g in got]


def test_skips_nothing_that_matters(tmp_path: Path) -> None:
    d = tmp_path / "b"
    with Bridge(d, agent="kami") as b:
        for_claude = b.send("for claude", to="claude").id
        for_kaylee = b.send("for kaylee", to="kaylee").id
        broadcast = b.send("to everyone").id
        b.claim(for_kaylee, sender="kaylee")
        b.done(for_kaylee, sender="kaylee")
        claimed = b.send("claimed then released", to="claude", priority="high").id
        b.claim(claimed, sender="claude.x")
        b.release(claimed, sender="claude.x")
        finished = b.send("answered", to="claude").id
        b.reply(finished, "done", sender="claude.x")
        # Hand-written lines: jq's spacing, and metadata keys named like top-level fields.
        spaced = {"v": 1, "t": "msg", "id": "sh-1", "ts": "2026-12-04T10:00:00.000Z",
                  "from": "cron", "to": "claude", "type": "request", "status": "pending",
                  "content": "from a shell script"}
        b.append_record(spaced)
        tricky = {"v": 1, "t": "msg", "id": "sh-2", "ts": "2026-12-04T10:00:01.000Z",
                  "from": "cron", "type": "request", "status": "pending",
                  "metadata": {"to": "kaylee", "id": for_claude}, "content": "broadcast"}
        b.append_record(tricky)
    with (d / "messages.jsonl").open("ab") as f:
        f.write(orjson.dumps({"v": 1, "t": "status", "id": "sh-3", "ts": "2026-12-04T10:00:02Z",
                              "from": "cron", "ref": "sh-1", "status": "claimed",
                              "lease_until": "2100-01-01T00:00:00Z"}).replace(b":", b": ")
                + b"\n")
        f.write(b'{"broken json\n')
    ids = same_as_library(d)
    assert set(ids) == {for_claude, broadcast, claimed, "sh-1", "sh-2"}
    assert ids[0] == claimed  # high priority first


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_random_traffic_reads_the_same(tmp_path_factory, seed: int) -> None:
    rng = random.Random(seed)
    d = tmp_path_factory.mktemp("b")
    ids: list[str] = []
    with Bridge(d, agent="kami", durability="none") as b:
        for _ in range(rng.randrange(1, 60)):
            op = rng.random()
            if op < 0.4 or not ids:
                to = rng.choice([*AGENTS, None])
                ids.append(b.send("x", to=to, sender=rng.choice(AGENTS),
                                  priority=rng.choice(["low", "normal", "high"])).id)
                continue
            mid = rng.choice(ids)
            who = rng.choice(["claude.a", "claude.b", "kaylee"])
            try:
                if op < 0.6:
                    b.claim(mid, sender=who)
                elif op < 0.7:
                    b.release(mid, sender=who)
                elif op < 0.85:
                    b.reply(mid, "answer", sender=who)
                else:
                    b.fail(mid, "no", sender=who)
            except Exception:  # noqa: S112 - conflicts are part of random traffic
                continue
    for agent in AGENTS:
        same_as_library(d, agent)
