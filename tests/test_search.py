"""Search: substring and regex, newest first, filters, archives plain and gzipped, streaming."""

from __future__ import annotations

import json
import time
from pathlib import Path

import orjson
import pytest

import bridge.archive._search as search_module
from bridge import Bridge, InvalidInput, rotate, search
from tests.conftest import CLI


def contents(hits: object) -> list[str]:
    return [h.record["content"] for h in hits]  # type: ignore[attr-defined]


@pytest.fixture
def filled(bridge: Bridge) -> Bridge:
    """Messages in September and October (archived) and now (live)."""
    for n, (month, who) in enumerate([("2026-09", "kami"), ("2026-10", "kaylee")]):
        for i in range(3):
            mid = f"{who}-{month}-{i}"
            bridge.append_record({"v": 1, "t": "msg", "id": mid, "ts": f"{month}-1{i}T08:00:00Z",
                                  "from": who, "to": "claude", "type": "request",
                                  "content": f"deploy {month} #{i} ({n})"})
            bridge.append_record({"v": 1, "t": "status", "id": f"s-{mid}",
                                  "ts": f"{month}-1{i}T09:00:00Z", "from": "claude",
                                  "ref": mid, "status": "done"})
    rotate(bridge)
    bridge.send("deploy now please", to="kaylee", sender="kami")
    bridge.send("Nothing to see", to="kaylee", sender="claude")
    return bridge


def test_newest_first_live_then_archives(filled: Bridge) -> None:
    assert contents(search(filled, "deploy")) == ["deploy now please"]
    assert contents(search(filled, "deploy", archives=True)) == [
        "deploy now please",
        "deploy 2026-10 #2 (1)", "deploy 2026-10 #1 (1)", "deploy 2026-10 #0 (1)",
        "deploy 2026-09 #2 (0)", "deploy 2026-09 #1 (0)", "deploy 2026-09 #0 (0)"]
    sources = {h.source for h in search(filled, "deploy", archives=True)}
    assert sources == {"messages.jsonl", "messages-archive-2026-10.jsonl",
                       "messages-archive-2026-09.jsonl"}


def test_gzipped_archives_are_searched_newest_first_too(bridge: Bridge) -> None:
    for i in range(5):
        mid = f"kami-{i}"
        bridge.append_record({"v": 1, "t": "msg", "id": mid, "ts": f"2026-08-0{i + 1}T00:00:00Z",
                              "from": "kami", "type": "notification", "content": f"gz {i}"})
        bridge.append_record({"v": 1, "t": "status", "id": f"s-{mid}",
                              "ts": "2026-08-09T00:00:00Z", "from": "x", "ref": mid,
                              "status": "done"})
        rotate(bridge, compress=True)  # one gzip member per rotation
    assert [a.name for a in (bridge.directory / "archive").iterdir()] == [
        "messages-archive-2026-08.jsonl.gz"]
    assert contents(search(bridge, "gz", archives=True)) == [f"gz {i}" for i in range(4, -1, -1)]


def test_filters(filled: Bridge) -> None:
    def find(**kw: object) -> list[str]:
        return contents(search(filled, "", archives=True, **kw))  # type: ignore[arg-type]

    assert find(sender="kaylee") == ["deploy 2026-10 #2 (1)", "deploy 2026-10 #1 (1)",
                                     "deploy 2026-10 #0 (1)"]
    assert find(to="kaylee") == ["Nothing to see", "deploy now please"]
    since = time.mktime((2026, 9, 11, 0, 0, 0, 0, 0, 0)) - time.timezone
    until = time.mktime((2026, 10, 11, 0, 0, 0, 0, 0, 0)) - time.timezone
    assert find(since=since, until=until) == ["deploy 2026-10 #0 (1)", "deploy 2026-09 #2 (0)",
                                             "deploy 2026-09 #1 (0)"]


def test_regex_and_case(filled: Bridge) -> None:
    assert contents(search(filled, r"#[12] \(0\)", regex=True, archives=True)) == [
        "deploy 2026-09 #2 (0)", "deploy 2026-09 #1 (0)"]
    assert contents(search(filled, "nothing")) == []
    assert contents(search(filled, "nothing", ignore_case=True)) == ["Nothing to see"]
    assert contents(search(filled, "NOTHING", regex=True, ignore_case=True)) == ["Nothing to see"]
    with pytest.raises(InvalidInput, match="regular expression"):
        list(search(filled, "(", regex=True))


def test_quotes_unicode_and_other_encoders(bridge: Bridge) -> None:
    bridge.send('she said "ship it"', to="x")
    bridge.send("déploiement réussi ✓", to="x")
    # A writer that escapes non-ASCII (Python's json.dumps does by default), and "/".
    line = json.dumps({"v": 1, "t": "msg", "id": "py-1", "ts": "2026-11-21T00:00:00Z",
                       "from": "py", "type": "notification",
                       "content": "réussi aussi, a/b"}).replace("/", "\\/")
    with open(bridge.log_path, "a") as f:
        f.write(line + "\n")
    assert contents(search(bridge, '"ship it"')) == ['she said "ship it"']
    assert contents(search(bridge, "réussi")) == ["réussi aussi, a/b", "déploiement réussi ✓"]
    assert contents(search(bridge, "a/b")) == ["réussi aussi, a/b"]
    assert contents(search(bridge, "RÉUSSI", ignore_case=True)) == [
        "réussi aussi, a/b", "déploiement réussi ✓"]


def test_only_message_content_matches(bridge: Bridge) -> None:
    mid = bridge.send("hello", to="x", sender="kami").id
    bridge.done(mid, reason="kami asked")
    assert contents(search(bridge, "kami")) == []  # ids, senders and reasons are not content
    assert contents(search(bridge, "hello")) == ["hello"]


def test_lines_across_chunk_boundaries(bridge: Bridge, monkeypatch: pytest.MonkeyPatch) -> None:
    sent = [bridge.send(f"needle {i} " + "x" * (i * 37 % 500), to="x").id for i in range(300)]
    monkeypatch.setattr(search_module, "CHUNK", 1000)  # far shorter than many lines
    assert [h.record["id"] for h in search(bridge, "needle")] == sent[::-1]
    assert [h.record["id"] for h in search(bridge, "needle", regex=True)] == sent[::-1]


def _rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar")


def test_search_streams_from_the_end(bridge: Bridge) -> None:
    """The newest hit comes after reading about one chunk, not the whole file."""
    list(bridge.send_many({"content": "filler " + "x" * 900} for _ in range(20_000)))
    last = bridge.send("the needle", to="x").id
    size = bridge.log_path.stat().st_size
    assert size > 19_000_000
    before = _rchar()
    hit = next(search(bridge, "needle"))
    read = _rchar() - before
    assert hit.record["id"] == last
    assert read < 2 * search_module.CHUNK + 100_000 < size


def test_cli_search_json_and_limit(cli: CLI) -> None:
    ids = [cli.ok("send", f"report {i}", "--to", "kami").strip() for i in range(5)]
    out = cli.ok("search", "report", "--json", "--limit", "2")
    assert [orjson.loads(x)["id"] for x in out.splitlines()] == [ids[4], ids[3]]
    human = cli.ok("search", "report 3")
    assert "report 3" in human and ids[3] in human
    assert cli.ok("search", "absent") == ""


@pytest.mark.parametrize("step", ["built", "locked", "sealed", "renamed", "committed"])
def test_search_and_doctor_during_a_rotation_see_each_message_once(bridge: Bridge,
                                                                   step: str) -> None:
    """Mid-rotation the archives already hold records the live file still has (until the
    rename); search and doctor must count them once, and miss none after the rename."""
    from bridge import run_doctor

    ids = []
    for i in range(20):
        ids.append(bridge.send(f"needle {i}", to="x").id)
        bridge.done(ids[-1])
    seen: list[list[str]] = []
    problems: list[list[str]] = []

    def look(name: str) -> None:
        if name == step:
            seen.append([h.record["id"] for h in search(bridge, "needle", archives=True)])
            problems.append([f.kind for f in run_doctor(bridge).errors])

    rotate(bridge, older_than=0, now=time.time() + 1, on_step=look)
    assert sorted(seen[0]) == sorted(ids)
    assert problems == [[]]
