"""The contract with the outside: public API, import side effects, the schema, the docs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import orjson
import pytest

import bridge
from bridge import Bridge, Fold
from bridge.format._records import check_record
from bridge.format._scan import scan
from tests.conftest import ROOT

SCHEMA = json.loads((ROOT / "docs" / "record.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)

GOOD = {"v": 1, "t": "msg", "id": "kami-1", "ts": "2026-11-21T09:15:02.113Z", "from": "kami",
        "to": "claude", "type": "request", "status": "pending", "content": "hi"}
STATUS = {"v": 1, "t": "status", "id": "c-1", "ts": "2026-11-21T09:15:03.000Z", "from": "claude",
          "ref": "kami-1", "status": "done"}

# Odd records: (record, whether a reader accepts it). The schema, the reader and
# both fold paths must agree on every one.
CATALOGUE: list[tuple[dict[str, object], bool]] = [
    (GOOD, True),
    ({k: v for k, v in GOOD.items() if k not in ("v", "t", "to", "status")}, True),  # seed v0
    ({**GOOD, "id": "kami-2", "metadata": {"priority": "high", "x": [1]}}, True),
    ({**GOOD, "id": "kami-3", "reply_to": "kami-1", "expires": "2030-01-01T00:00:00Z",
      "idem": "k"}, True),
    ({**GOOD, "id": "kami-4", "to": None, "reply_to": None}, True),
    ({**GOOD, "id": "kami-5", "extra": {"nested": True}}, True),
    ({**GOOD, "id": "kami-6", "type": "shout"}, False),
    ({**GOOD, "id": "kami-7", "content": 7}, False),
    ({**GOOD, "id": "kami-8", "ts": "yesterday"}, False),
    ({**GOOD, "id": "kami-9", "v": True}, False),
    ({**GOOD, "id": "kami-10", "v": 2}, False),
    ({**GOOD, "id": "kami-11", "metadata": {"priority": "urgent"}}, False),
    ({**GOOD, "id": "kami-12", "status": "maybe"}, False),
    ({**GOOD, "id": "kami-13", "idem": ""}, False),
    ({**GOOD, "id": ""}, False),
    ({**GOOD, "id": "kami-14", "from": "x" * 65}, False),
    (STATUS, True),
    ({**STATUS, "id": "c-2", "ref": "kami-2", "status": "claimed",
      "lease_until": "2030-01-01T00:00:00Z"}, True),
    ({**STATUS, "id": "c-3", "ref": "kami-3", "status": "claimed"}, False),
    ({**STATUS, "id": "c-4", "status": "finished"}, False),
    ({**STATUS, "id": "c-5", "reason": 5}, False),
    ({**STATUS, "id": "c-6", "not_before": "later"}, False),
    ({"v": 1, "t": "repair", "id": "r-1", "ts": "2026-11-21T09:15:02Z", "offset": 3,
      "bytes": 4}, True),
    ({"v": 1, "t": "repair", "id": "r-2", "ts": "2026-11-21T09:15:02Z", "offset": -1,
      "bytes": 4}, False),
    ({"v": 1, "t": "event", "id": "e-1", "ts": "2026-11-21T09:15:02Z", "event": "pause"}, True),
    ({"v": 1, "t": "something-new", "whatever": 1}, True),
]


@pytest.mark.parametrize(("record", "valid"), CATALOGUE)
def test_schema_and_reader_agree(record: dict[str, object], valid: bool) -> None:
    assert (check_record(record) is None) == valid
    assert VALIDATOR.is_valid(record) == valid, list(VALIDATOR.iter_errors(record))


def test_both_fold_paths_agree_on_odd_records(tmp_path: Path) -> None:
    path = tmp_path / "odd.jsonl"
    with open(path, "wb") as f:
        for record, _ in CATALOGUE:
            f.write(orjson.dumps(record) + b"\n")
        f.write(b"not json\n\xff\xfe\n[1,2]\n\n")
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        slow, fast = Fold(), Fold()
        slow.feed(scan(fd, 0, size))
        bad = fast.feed_fd(fd, 0, size)
    finally:
        os.close(fd)
    assert slow.messages == fast.messages
    assert slow.issues == fast.issues
    assert [(b.offset, b.reason) for b in slow.bad_lines] == [(b.offset, b.reason) for b in bad]
    assert (slow.records, slow.offset, slow.last_ts) == (fast.records, fast.offset, fast.last_ts)
    assert len(bad) == sum(1 for _, ok in CATALOGUE if not ok) + 4


def test_everything_the_bridge_writes_validates(bridge: Bridge) -> None:
    a = bridge.send("שלום", to="claude", priority="high", metadata={"whatsapp_sender": "x@c.us"},
                    expires_in=60, idempotency_key="k").id
    bridge.reply(a, "answer", sender="claude")
    b = bridge.send("work", to="kaylee").id
    bridge.claim(b, sender="kaylee")
    bridge.release(b, sender="kaylee", delay=5, reason="retry")
    bridge.cancel(b, reason="no longer needed")
    bridge.pause("check")
    bridge.resume()
    with open(bridge.log_path, "ab") as f:
        f.write(b'{"torn')
    bridge.send("after a torn tail")
    lines = bridge.log_path.read_bytes().split(b"\n")[:-1]
    kinds = set()
    for raw in lines:
        if raw == b'{"torn':
            continue
        rec = orjson.loads(raw)
        kinds.add(rec.get("t"))
        errors = list(VALIDATOR.iter_errors(rec))
        assert not errors, (rec, errors)
    assert kinds == {"epoch", "msg", "status", "event", "repair"}


def test_public_api_is_what_init_declares() -> None:
    public = {name for name in dir(bridge) if not name.startswith("_")}
    modules = {name for name in public if isinstance(getattr(bridge, name), type(sys))}
    assert sorted(public - modules) == sorted(n for n in bridge.__all__ if n != "__version__")


def test_errors_form_one_tree_and_subclass_builtins() -> None:
    for name in bridge.__all__:
        obj = getattr(bridge, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, bridge.BridgeError), name
            assert isinstance(obj.exit_code, int)
    assert issubclass(bridge.NotFound, LookupError)
    assert issubclass(bridge.InvalidInput, ValueError)
    assert issubclass(bridge.LockTimeout, TimeoutError)
    assert issubclass(bridge.BridgeIOError, OSError)


def test_importing_the_library_does_nothing(tmp_path: Path) -> None:
    """No CLI or HTTP libraries, no threads, no files, no env reads that matter."""
    code = (
        "import sys, threading, os\n"
        "before = set(os.listdir('.'))\n"
        "import bridge\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('rich', 'typer', 'httpx', 'anthropic', 'paramiko', 'watchdog'))\n"
        "print(heavy, threading.active_count(), sorted(set(os.listdir('.')) - before))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True, env={**os.environ, "BRIDGE_DIR": "/nonexistent"})
    assert out.stdout.strip() == "[] 1 []"


def test_every_cli_command_is_documented() -> None:
    from cli import app

    doc = (ROOT / "docs" / "cli.md").read_text()
    names = [c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands]
    for name in names:
        assert re.search(rf"### `bridge {name}\b", doc) or f"`bridge {name} " in doc, name
    codes = {int(m) for m in re.findall(r"^\| (\d+) \|", doc, re.M)}
    errors = [getattr(bridge, n) for n in bridge.__all__ if isinstance(getattr(bridge, n), type)
              and issubclass(getattr(bridge, n), Exception)]
    assert {e.exit_code for e in errors} <= codes


def test_readme_opens_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```")[1]
    assert "make demo" in first_block
    assert "make test" in first_block
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
