"""`bridge send` refuses input that cannot be meant (issue 17, item 11), and sends nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge import Bridge
from tests.conftest import CLI


def _lines(bridge_dir: Path) -> int:
    log = bridge_dir / "messages.jsonl"
    return len(log.read_bytes().splitlines()) if log.exists() else 0


@pytest.mark.parametrize("text", ["", "   ", "\n\t\n"])
def test_an_empty_message_is_refused(cli: CLI, bridge_dir: Path, text: str) -> None:
    Bridge(bridge_dir, agent="x").close()
    before = _lines(bridge_dir)
    result = cli.run("send", text, "--to", "claude")
    assert result.returncode == 5 and "the message is empty" in result.stderr
    assert _lines(bridge_dir) == before


def test_empty_stdin_is_refused(cli: CLI, bridge_dir: Path) -> None:
    result = cli.run("send", "-", "--to", "claude", input="  \n")
    assert result.returncode == 5 and "empty" in result.stderr


def test_an_empty_sender_is_refused_like_an_empty_recipient(cli: CLI) -> None:
    result = cli.run("send", "hi", "--from", "", "--to", "claude")
    assert result.returncode == 5 and "--from is empty" in result.stderr


def test_a_reply_to_an_unknown_id_is_refused(cli: CLI, bridge_dir: Path) -> None:
    with Bridge(bridge_dir, agent="kami") as b:
        known = b.send("question", to="claude").id
    before = _lines(bridge_dir)
    result = cli.run("send", "answer", "--to", "kami", "--reply-to", "kami-NOSUCH")
    assert result.returncode == 3 and "no message kami-NOSUCH" in result.stderr
    assert _lines(bridge_dir) == before
    ok = cli.run("send", "answer", "--to", "kami", "--reply-to", known)
    assert ok.returncode == 0
