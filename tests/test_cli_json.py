"""One JSON shape (issue 13): a message is one flat view everywhere, every --json is one
document (JSONL for the streams), times are ISO-8601, durations carry their unit."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from referencing import Registry, Resource

from bridge import Bridge
from bridge._views import VIEW_FIELDS, view_dict
from bridge.claude._mcp import BridgeTools
from bridge.format._records import Message
from bridge.remote._wire import (
    VIEW_V2,
    history_from_wire,
    history_to_wire,
    status_from_wire,
    status_to_wire,
    view_from_wire,
    view_to_wire,
)
from bridge.store._fold import MessageState
from bridge.store._results import MessageView
from bridge.testing.health import FakeHealth
from tests.conftest import CLI, ROOT

VIEW_SCHEMA = json.loads((ROOT / "docs" / "view.schema.json").read_text())
RECORD_SCHEMA = json.loads((ROOT / "docs" / "record.schema.json").read_text())
REGISTRY = Registry().with_resources([
    (VIEW_SCHEMA["$id"], Resource.from_contents(VIEW_SCHEMA)),
    (RECORD_SCHEMA["$id"], Resource.from_contents(RECORD_SCHEMA)),
])
VIEW = jsonschema.Draft202012Validator(VIEW_SCHEMA, registry=REGISTRY)
SHOW = jsonschema.Draft202012Validator({"$ref": VIEW_SCHEMA["$id"] + "#/$defs/show"},
                                       registry=REGISTRY)
ISO = re.compile(VIEW_SCHEMA["$defs"]["timestamp"]["pattern"])


def valid(validator: jsonschema.Draft202012Validator, doc: Any) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]
    assert errors == [], errors


@pytest.fixture
def sent(bridge_dir: Path) -> dict[str, str]:
    """A request claimed by claude, one open with metadata, one that expired, one done."""
    with Bridge(bridge_dir, agent="kami") as b:
        ids = {
            "claimed": b.send("in hand", to="claude", priority="high").id,
            "open": b.send("waiting", to="claude", idempotency_key="k-1",
                           metadata={"whatsapp_sender": "972501234567@c.us"}).id,
            "done": b.send("finished", to="claude").id,
        }
        b.claim(ids["claimed"], lease=600, sender="claude")
        b.reply(ids["done"], "answered", sender="claude")
    with (bridge_dir / "messages.jsonl").open("ab") as f:  # an open message already past expiry
        f.write(orjson.dumps({"v": 1, "t": "msg", "id": "kami-expired", "from": "kami",
                              "ts": "2026-01-01T00:00:00.000Z", "to": "claude",
                              "type": "request", "status": "pending", "content": "too late",
                              "expires": "2026-01-01T00:01:00.000Z", "custom": [1]}) + b"\n")
    ids["expired"] = "kami-expired"
    return ids


def test_inbox_json_is_a_list_of_flat_views(cli: CLI, sent: dict[str, str]) -> None:
    listed = orjson.loads(cli.ok("inbox", "--for", "claude", "--json"))
    assert [v["id"] for v in listed] == [sent["claimed"], sent["open"]]
    for view in listed:
        valid(VIEW, view)
        assert list(view)[:len(VIEW_FIELDS)] == list(VIEW_FIELDS)
        assert "message" not in view and "state" not in view  # one status, not two
    claimed, waiting = listed
    assert claimed["status"] == "claimed" and claimed["claimed_by"] == "claude"
    assert claimed["priority"] == "high" and claimed["attempts"] == 1
    assert ISO.match(claimed["lease_until"]) and ISO.match(claimed["updated"])
    assert waiting["idem"] == "k-1" and waiting["status"] == "pending"
    assert waiting["metadata"] == {"whatsapp_sender": "972501234567@c.us"}
    assert waiting["claimed_by"] is None and waiting["lease_until"] is None


def test_show_json_is_the_view_with_changes_thread_and_archive(cli: CLI,
                                                               sent: dict[str, str]) -> None:
    shown = orjson.loads(cli.ok("show", sent["done"], "--json"))
    valid(SHOW, shown)
    assert shown["status"] == "done"
    assert [c["status"] for c in shown["changes"]] == ["done"]
    assert shown["thread"][0]["id"] == sent["done"]
    assert shown["thread"][1]["type"] == "response" and shown["archive"] is None
    assert "history" not in shown and "message" not in shown
    # The effective status: the record says pending, the view says expired.
    expired = orjson.loads(cli.ok("show", sent["expired"], "--json"))
    valid(SHOW, expired)
    assert expired["status"] == "expired" and expired["custom"] == [1]
    # The same view as inbox gives, field for field (but the clock-free ones only).
    inbox = {v["id"]: v for v in orjson.loads(cli.ok("inbox", "--for", "claude", "--json"))}
    one = orjson.loads(cli.ok("show", sent["open"], "--json"))
    assert {k: one[k] for k in VIEW_FIELDS} == inbox[sent["open"]]


def test_the_mcp_server_hands_out_the_same_view(bridge_dir: Path, cli: CLI,
                                                sent: dict[str, str]) -> None:
    tools = BridgeTools(str(bridge_dir), "claude", "claude.abc", 600.0)
    try:
        full = tools.show(sent["open"])
        claimed = tools.claim(sent["open"])
    finally:
        tools.close()
    valid(VIEW, full)
    valid(VIEW, claimed)
    assert full["age_s"] >= 0 and full["whatsapp_sender"] == "972501234567@c.us"
    shown = orjson.loads(cli.ok("show", sent["open"], "--json"))
    inbox = {v["id"]: v for v in orjson.loads(cli.ok("inbox", "--for", "claude", "--json"))}
    assert {k: full[k] for k in VIEW_FIELDS} == {k: shown[k] for k in VIEW_FIELDS} | {
        "status": "pending", "claimed_by": None, "lease_until": None, "attempts": 0,
        "updated": None}
    assert {k: claimed[k] for k in VIEW_FIELDS} == inbox[sent["open"]]


def test_write_commands_print_one_object(cli: CLI) -> None:
    first = orjson.loads(cli.ok("send", "hello", "--to", "claude", "--idempotency-key", "x",
                                "--json"))
    assert set(first) == {"id", "offset", "duplicate"} and first["duplicate"] is False
    again = orjson.loads(cli.ok("send", "hello", "--to", "claude", "--idempotency-key", "x",
                                "--json"))
    assert again == {**first, "duplicate": True}  # told apart from a new send
    batch = cli.ok("send", "--batch", "--json", input='{"content": "a"}\n{"content": "b"}\n')
    rows = [orjson.loads(line) for line in batch.splitlines()]
    assert [set(r) for r in rows] == [{"id", "offset", "duplicate"}] * 2
    answer = orjson.loads(cli.ok("reply", first["id"], "hi back", "--from", "claude", "--json"))
    assert set(answer) == {"id", "offset", "duplicate"} and answer["id"].startswith("claude-")
    statuses = {}
    for verb, status in (("done", "done"), ("fail", "failed"), ("cancel", "cancelled")):
        mid = cli.ok("send", verb, "--to", "claude").strip()
        result = cli.run(verb, mid, "--reason", "because", "--json")
        assert result.returncode == 0 and result.stderr == ""
        got = orjson.loads(result.stdout)
        assert got == {"id": mid, "status": status, "reason": "because",
                       "status_id": got["status_id"]}
        statuses[got["status_id"]] = mid
    records = [orjson.loads(x) for x in cli.ok("tail", "-n", "100", "--json").splitlines()]
    assert {r["id"]: r["ref"] for r in records if r.get("t") == "status"
            and r["id"] in statuses} == statuses


def test_pause_and_resume_json(cli: CLI) -> None:
    paused = orjson.loads(cli.ok("pause", "--reason", "deploying", "--by", "owner", "--json"))
    assert paused["paused"] is True and paused["changed"] is True
    assert paused["pause"]["by"] == "owner" and ISO.match(paused["pause"]["since"])
    again = orjson.loads(cli.ok("pause", "--reason", "other", "--json"))
    assert again == {**paused, "changed": False}  # the first pause stands
    status = orjson.loads(cli.ok("status", "--json"))
    assert status["paused"] is True and status["pause"] == paused["pause"]
    resumed = orjson.loads(cli.ok("resume", "--json"))
    assert resumed == {"paused": False, "pause": None, "changed": True}
    assert orjson.loads(cli.ok("resume", "--json"))["changed"] is False


def test_status_and_stats_name_the_counts_alike(cli: CLI, sent: dict[str, str]) -> None:
    status = orjson.loads(cli.ok("status", "--json"))
    stats = orjson.loads(cli.ok("stats", "--json"))
    assert "statuses" not in stats
    assert stats["counts"] == status["counts"] == {"claimed": 1, "done": 1, "expired": 1,
                                                   "pending": 2}


def test_durations_carry_their_unit(cli: CLI, bridge_dir: Path) -> None:
    with Bridge(bridge_dir, agent="kami") as b:
        b.done(b.send("old", to="x").id)
        finished = time.time()
    # rotate --older-than 0s takes what finished before now: wait for the clock to move on.
    deadline = time.monotonic() + 5
    while time.time() <= finished + 0.002:
        assert time.monotonic() < deadline
    rotated = orjson.loads(cli.ok("rotate", "--older-than", "0s", "--json"))
    assert rotated["moved_messages"] == 1
    assert isinstance(rotated["elapsed_s"], float) and "seconds" not in rotated
    assert isinstance(rotated["lock_held_ms"], float)
    with FakeHealth("kami") as peer:
        checked = orjson.loads(cli.ok("health", peer.url, "--json"))
    assert checked[0]["state"] == "ok" and "latency" not in checked[0]
    assert isinstance(checked[0]["latency_ms"], float) and ISO.match(checked[0]["checked"])
    ping = orjson.loads(cli.ok("ping", "--json"))
    assert ping["connect_ms"] is None and ping["paused"] is False


def test_streams_are_one_object_per_line(cli: CLI, sent: dict[str, str], tmp_path: Path) -> None:
    for args in (("tail", "-n", "50", "--json"), ("search", "", "--json")):
        lines = cli.ok(*args).splitlines()
        assert lines and all(isinstance(orjson.loads(x), dict) for x in lines), args
    log = tmp_path / "kami.log"
    log.write_bytes(b'{"ts": "2026-12-04T10:00:00.000Z", "level": "info", "agent": "kami", '
                    b'"event": "started"}\n' * 2)
    lines = cli.ok("logs", str(log), "--json").splitlines()
    assert [orjson.loads(x)["event"] for x in lines] == ["started", "started"]


# -- the view on the wire ----------------------------------------------------------------

def _views(bridge_dir: Path, sent: dict[str, str]) -> list[MessageView]:
    with Bridge(bridge_dir, agent="x") as b:
        return [b.get(mid) for mid in sent.values()]


def test_the_wire_carries_the_flat_view_in_version_2(bridge_dir: Path,
                                                     sent: dict[str, str]) -> None:
    now = time.time()
    for view in _views(bridge_dir, sent):
        wire = view_to_wire(view, VIEW_V2)
        flat = {k: v for k, v in wire.items() if k != "fold"}
        assert flat == view_dict(view, now)
        valid(VIEW, flat)
        assert view_from_wire(orjson.loads(orjson.dumps(wire))) == view
        assert view_from_wire(orjson.loads(orjson.dumps(view_to_wire(view)))) == view
    with Bridge(bridge_dir, agent="x") as b:
        hist, st = b.history(sent["done"]), b.status()
    for version in (1, VIEW_V2):
        assert history_from_wire(orjson.loads(orjson.dumps(history_to_wire(hist, version)))
                                 ) == hist
        assert status_from_wire(orjson.loads(orjson.dumps(status_to_wire(st, version)))) == st


def test_an_older_client_reads_what_a_server_sends_by_default(bridge_dir: Path,
                                                              sent: dict[str, str]) -> None:
    """A 0.1 client decodes ``{"message", "state"}`` and nothing else; a server sends that
    until the session says its client reads version 2."""
    for view in _views(bridge_dir, sent):
        obj = orjson.loads(orjson.dumps(view_to_wire(view)))
        old = MessageView(Message.from_record(obj["message"]), MessageState(**obj["state"]))
        assert old == view
