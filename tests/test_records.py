"""Records, ids and times: what a line may hold and how bad lines are told apart."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

from bridge import Bridge, InvalidInput, new_id, parse_duration
from bridge.format._ids import ulid_time_ms, validate_agent_name
from bridge.format._records import Message, check_record, decode_line
from bridge.format._time import format_ts, parse_ts, parse_when

SEED_LINE = {
    "ts": "2024-03-23T21:16:07.123Z", "from": "kami", "type": "request",
    "id": "kami-1711234567", "content": "Deploy the landing page", "status": "pending",
    "metadata": {"whatsapp_sender": "972501234567@c.us", "priority": "high",
                 "context": "from WhatsApp"},
}  # fmt: skip


def test_seed_schema_line_is_a_valid_message() -> None:
    assert check_record(SEED_LINE) is None
    msg = Message.from_record(SEED_LINE)
    assert (msg.id, msg.sender, msg.type, msg.priority, msg.v) == (
        "kami-1711234567", "kami", "request", "high", 0)
    assert msg.metadata["whatsapp_sender"] == "972501234567@c.us"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"", "empty line"),
        (b"   ", "empty line"),
        (b'{"id": "x", "from": ', "not JSON"),
        (b"\x00\x00\x00\x00", "NUL"),
        (b'{"content": "\xff\xfe"}', "not UTF-8"),
        (b"[1, 2, 3]", "not a JSON object"),
        (b'"just a string"', "not a JSON object"),
    ],
)
def test_decode_line_reasons(line: bytes, reason: str) -> None:
    result = decode_line(line)
    assert isinstance(result, str)
    assert reason in result


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"id": None}, "'id'"),
        ({"from": ""}, "'from'"),
        ({"type": "question"}, "'type'"),
        ({"content": 42}, "'content'"),
        ({"ts": "yesterday"}, "'ts'"),
        ({"status": "maybe"}, "'status'"),
        ({"metadata": "x"}, "'metadata'"),
        ({"metadata": {"priority": "urgent"}}, "priority"),
        ({"to": ""}, "'to'"),
        ({"reply_to": 7}, "'reply_to'"),
        ({"expires": "soon"}, "'expires'"),
        ({"v": 99}, "protocol version 99"),
        ({"v": -1}, "'v'"),
        ({"v": True}, "'v'"),
    ],
)
def test_schema_violations_are_named(change: dict[str, object], reason: str) -> None:
    rec = {**SEED_LINE, **change}
    problem = check_record(rec)
    assert problem is not None
    assert reason in problem


def test_missing_required_field() -> None:
    rec = dict(SEED_LINE)
    del rec["content"]
    assert "content" in (check_record(rec) or "")


def test_status_record_checks() -> None:
    ok = {"v": 1, "t": "status", "id": "a-1", "ts": "2026-01-01T00:00:00Z", "from": "a",
          "ref": "kami-1", "status": "done"}
    assert check_record(ok) is None
    assert "lease_until" in (check_record({**ok, "status": "claimed"}) or "")
    assert "'status'" in (check_record({**ok, "status": "finished"}) or "")
    assert "'ref'" in (check_record({**ok, "ref": ""}) or "")


def test_unknown_kinds_and_fields_are_not_errors() -> None:
    assert check_record({"v": 1, "t": "future-thing", "x": 1}) is None
    rec = {**SEED_LINE, "v": 1, "t": "msg", "mood": "cheerful"}
    assert check_record(rec) is None
    assert Message.from_record(rec).extra == {"mood": "cheerful"}


def test_message_round_trip_keeps_unknown_fields() -> None:
    rec = {**SEED_LINE, "v": 1, "t": "msg", "to": "claude", "custom": [1, 2]}
    again = Message.from_record(rec).to_record()
    assert again == rec


def test_ids_are_unique_sorted_and_carry_the_time() -> None:
    ids = [new_id("kami") for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    ms = ulid_time_ms(ids[0])
    assert ms is not None
    assert abs(ms / 1000 - parse_ts(format_ts(ms / 1000))) < 0.001


def test_ids_are_unique_across_processes() -> None:
    code = "from bridge import new_id\nprint('\\n'.join(new_id('w') for _ in range(5000)))"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
             for _ in range(4)]
    ids: list[str] = []
    for p in procs:
        out, _ = p.communicate(timeout=60)
        ids.extend(out.decode().split())
    assert len(ids) == 20_000
    assert len(set(ids)) == 20_000


def test_forked_child_does_not_repeat_parent_ids() -> None:
    new_id("p")  # make the parent's sequence state non-empty
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.close(r)
        os.write(w, "\n".join(new_id("p") for _ in range(200)).encode())
        os._exit(0)
    os.close(w)
    parent = {new_id("p") for _ in range(200)}
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    os.waitpid(pid, 0)
    child = set(b"".join(chunks).decode().split())
    assert len(child) == 200
    assert not parent & child


@pytest.mark.parametrize("name", ["Kami", "", "-x", "a b", "x" * 65, "kami/../x", "é"])
def test_bad_agent_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput):
        validate_agent_name(name)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("10m", 600), ("1h30m", 5400), ("2d", 172800), ("1w", 604800),
     ("250ms", 0.25), ("1.5h", 5400)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "10 parsecs", "-5", "5x", "m10"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(InvalidInput, match="duration"):
        parse_duration(text)


def test_when_accepts_dates_timestamps_and_ago() -> None:
    assert parse_when("2026-11-01") == parse_ts("2026-11-01T00:00:00Z")
    assert parse_when("2026-11-01T08:00:00+02:00") == parse_ts("2026-11-01T06:00:00Z")
    assert parse_when("2h", now=10_000.0) == 10_000.0 - 7200
    with pytest.raises(InvalidInput):
        parse_when("last tuesday")


def test_written_timestamps_match_javascript_iso_format(bridge: Bridge) -> None:
    bridge.send("x")
    rec = orjson.loads(bridge.log_path.read_bytes().splitlines()[-1])
    ts = rec["ts"]
    assert len(ts) == 24
    assert ts.endswith("Z")
    assert ts[10] == "T"
    assert ts[19] == "."
