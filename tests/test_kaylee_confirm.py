"""The confirmation protocol on a real bridge: ask through Kami, run on yes, fail on no or
silence; only the owner's agent may answer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge import Bridge, MessageView
from tests.kaylee_support import OWNER_CHAT, answers, outcome, run_once

WA = {"whatsapp_sender": "972501234567@c.us"}


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "done-it"


@pytest.fixture
def extra(marker: Path) -> str:
    return f"""
confirm_timeout = "10m"
[[recipe]]
name = "wipe"
argv = ["touch", "{marker}"]
confirm = true
"""


@pytest.fixture
def claude(tmp_path: Path) -> Iterator[Bridge]:
    b = Bridge(tmp_path / "bridge", agent="claude")
    yield b
    b.close()


def the_question(b: Bridge, rid: str) -> MessageView:
    [ask] = answers(b, rid, "confirm")
    return ask


def test_the_owner_is_asked_through_kami_and_yes_runs_it(tmp_path: Path, claude: Bridge,
                                                         extra: str, marker: Path) -> None:
    rid = claude.send("wipe", to="kaylee", metadata=WA).id
    run_once(tmp_path, extra)
    assert not marker.exists()
    ask = the_question(claude, rid)
    assert ask.message.to == "kami" and ask.message.type == "request"
    meta = ask.message.metadata
    assert meta["whatsapp_sender"] == OWNER_CHAT  # the owner's chat, not the requester's
    assert (meta["task"], meta["recipe"], meta["requester"]) == (rid, "wipe", "claude")
    assert "may she run “wipe”? Requested by claude" in ask.message.content
    assert ask.state.expires is not None and 590 < ask.state.expires - time.time() <= 600
    state = claude.get(rid).state
    assert state.status == "pending" and "awaiting the owner's confirmation" in (state.reason or "")
    assert [v.message.content for v in answers(claude, rid, "progress")] == [
        "⏳ wipe: waiting for the owner's confirmation (asked through kami)"]
    run_once(tmp_path, extra)  # nothing new: still waiting, not asked twice
    assert len(answers(claude, rid, "confirm")) == 1
    with Bridge(tmp_path / "bridge", agent="kami") as kami:
        kami.reply(ask.id, "yes", metadata={"confirmed": True})
    run_once(tmp_path, extra)
    assert marker.exists()
    assert claude.get(rid).state.status == "done"
    assert outcome(claude, rid).message.metadata["attempt"] == 1  # asking is not an attempt
    assert claude.inbox("kaylee") == []  # Kami's answer was read


@pytest.mark.parametrize(("answer", "meta"), [("no", {}), ("yes", {"confirmed": False}),
                                               ("hmm, maybe later?", {})])
def test_anything_but_an_explicit_yes_declines(tmp_path: Path, claude: Bridge, extra: str,
                                               marker: Path, answer: str,
                                               meta: dict[str, object]) -> None:
    rid = claude.send("wipe", to="kaylee").id
    run_once(tmp_path, extra)
    with Bridge(tmp_path / "bridge", agent="kami") as kami:
        kami.reply(the_question(claude, rid).id, answer, metadata=meta)
    run_once(tmp_path, extra)
    assert not marker.exists()
    state = claude.get(rid).state
    assert state.status == "failed" and "the owner declined it" in (state.reason or "")


def test_an_answer_from_another_agent_does_not_count(tmp_path: Path, claude: Bridge,
                                                     extra: str, marker: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    rid = claude.send("wipe", to="kaylee").id
    run_once(tmp_path, extra)
    claude.send("yes", to="kaylee", type="response", reply_to=the_question(claude, rid).id,
                metadata={"confirmed": True})
    run_once(tmp_path, extra)
    assert not marker.exists()
    assert claude.get(rid).state.status == "pending"
    assert any(getattr(r, "event", "") == "confirm.ignored" for r in caplog.records)


def test_no_answer_in_time_fails_the_task_and_withdraws_the_question(
        tmp_path: Path, claude: Bridge, extra: str, marker: Path) -> None:
    rid = claude.send("wipe", to="kaylee").id
    run_once(tmp_path, extra)
    run_once(tmp_path, extra, wall=lambda: time.time() + 601)
    assert not marker.exists()
    state = claude.get(rid).state
    assert state.status == "failed" and "no confirmation from the owner within 10m" in (
        state.reason or "")
    assert the_question(claude, rid).state.status == "expired"


def test_a_dry_run_needs_no_confirmation(tmp_path: Path, claude: Bridge, extra: str,
                                         marker: Path) -> None:
    rid = claude.send("wipe --dry-run", to="kaylee").id
    run_once(tmp_path, extra)
    assert not marker.exists()
    assert answers(claude, rid, "confirm") == []
    assert "dry run: nothing was run" in outcome(claude, rid).message.content
