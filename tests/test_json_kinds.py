"""Errors name JSON's kinds, not Python's (issue 17, item 14: "a NoneType")."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge import Bridge
from bridge.format._records import decode_line
from bridge.runtime.greenapi import MalformedNotification, parse_notification
from tests.conftest import CLI


@pytest.mark.parametrize(("line", "kind"), [
    (b"null", "null"), (b"[1, 2]", "an array"), (b'"text"', "a string"), (b"3.5", "a number"),
    (b"true", "true"), (b"false", "false"),
])
def test_a_line_that_is_not_an_object_is_named_in_json_terms(line: bytes, kind: str) -> None:
    assert decode_line(line) == f"not a JSON object ({kind})"


def test_doctor_reports_json_kinds(cli: CLI, bridge_dir: Path) -> None:
    with Bridge(bridge_dir, agent="kami") as b:
        b.send("fine", to="claude")
    with (bridge_dir / "messages.jsonl").open("ab") as f:
        f.write(b"null\n")
    result = cli.run("doctor")
    assert "not a JSON object (null)" in result.stdout + result.stderr
    assert "NoneType" not in result.stdout + result.stderr


def test_a_notification_that_is_not_an_object(tmp_path: Path) -> None:
    with pytest.raises(MalformedNotification, match=r"not an array$"):
        parse_notification([1])
