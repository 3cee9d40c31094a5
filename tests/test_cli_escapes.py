"""Terminal escape injection: message text never drives the reader's terminal.

Message content comes from WhatsApp senders and remote agents; `bridge tail`,
`show`, `inbox`, `search` and `logs` show control characters as ``\\xHH``.
"""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from bridge import Bridge
from tests.conftest import CLI

HOSTILE = "a\x1b[31mRED\x1b[0m\x07b\x1b]0;pwned\x07\rc\x9b2Jd [bold]markup[/bold]"
# Any control character but tab and newline, in the C0 or C1 range, or DEL.
RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")


@pytest.fixture
def hostile(bridge_dir: Path) -> str:
    with Bridge(bridge_dir, agent="kami") as b:
        mid = b.send(HOSTILE, to="claude", metadata={"note": "x\x1b[2Jy"}).id
        b.fail(b.send("second", to="claude").id, reason="r\x1b[5mblink")
    return mid


@pytest.mark.parametrize("args", [("tail",), ("tail", "-n", "5"), ("inbox", "--for", "claude"),
                                  ("search", "RED")])
def test_human_views_escape_control_characters(cli: CLI, hostile: str,
                                               args: tuple[str, ...]) -> None:
    out = cli.ok(*args)
    assert not RAW_CONTROL.search(out), repr(out)
    assert "\\x1b[31mRED" in out


def test_show_escapes_and_does_not_read_markup(cli: CLI, hostile: str) -> None:
    out = cli.ok("show", hostile)
    assert not RAW_CONTROL.search(out), repr(out)
    assert "\\x1b]0;pwned\\x07" in out and "\\x9b2J" in out
    assert "[bold]markup[/bold]" in out  # rich markup in a message is text
    assert "x\\x1b[2Jy" in out  # metadata too


def test_status_reasons_are_escaped(cli: CLI, hostile: str) -> None:
    out = cli.ok("tail", "-n", "10")
    assert "r\\x1b[5mblink" in out and not RAW_CONTROL.search(out)


def test_json_output_keeps_the_text_exactly(cli: CLI, hostile: str) -> None:
    doc = orjson.loads(cli.ok("show", hostile, "--json"))
    assert doc["content"] == HOSTILE


def test_agent_logs_are_escaped(cli: CLI, tmp_path: Path) -> None:
    log = tmp_path / "kami.log"
    log.write_bytes(orjson.dumps({"ts": "2026-12-04T10:00:00.000Z", "level": "info",
                                  "agent": "kami", "event": "message.received",
                                  "text": "hi\x1b[2J"}) + b"\n")
    out = cli.ok("logs", str(log))
    assert "hi\\x1b[2J" in out and not RAW_CONTROL.search(out)

