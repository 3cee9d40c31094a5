"""The model decides: the real anthropic SDK against the local Messages API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.testing.greenapi import GreenApiSimulator
from bridge.testing.messages_api import FakeMessagesAPI, Reply, text, tool_use
from tests.helpers import wait_for
from tests.kami_harness import OWNER, Kami, kami_config, models_for, start_kami


def last_user_text(body: dict[str, Any]) -> str:
    content = body["messages"][-1]["content"]
    return content if isinstance(content, str) else content[0]["text"]


def scripted(body: dict[str, Any]) -> Reply:
    said = last_user_text(body)
    if "2+2" in said:
        return tool_use("answer", {"text": "**4**"})
    if "site" in said or "אתר" in said:
        return tool_use("ask_claude", {"request": "Find out why the site is slow"},
                        preface="Escalating.")
    if "deploy" in said:
        return tool_use("delegate_to_kaylee", {"task": "deploy", "details": "deploy v2 to prod"})
    return text("שלום! במה אוכל לעזור?")


@pytest.fixture
def api() -> Iterator[FakeMessagesAPI]:
    with FakeMessagesAPI(responder=scripted) as a:
        yield a


def run(tmp_path: Path, sim: GreenApiSimulator, api: FakeMessagesAPI, **models: Any) -> Kami:
    config = kami_config(tmp_path / "bridge", sim, models=models_for(api, **models))
    return start_kami(tmp_path / "bridge", sim, config=config)


@pytest.fixture
def kami(tmp_path: Path, sim: GreenApiSimulator, api: FakeMessagesAPI) -> Iterator[Kami]:
    k = run(tmp_path, sim, api)
    yield k
    k.stop()


def test_acknowledged_first_then_answered(kami: Kami, sim: GreenApiSimulator,
                                          api: FakeMessagesAPI) -> None:
    sim.send_text(OWNER, "what is 2+2?")
    kami.wait_sent(2)
    assert kami.texts() == ["Got it 👍 on it…", "*4*"]  # English in, English out
    body = api.requests[0]["body"]
    assert "Kami" in body["system"]
    assert [t["name"] for t in body["tools"]] == ["answer", "ask_claude", "delegate_to_kaylee"]
    assert "answer in English" in last_user_text(body)
    assert kami.requests_for("claude") == []
    wait_for(lambda: kami.bridge.inbox("kami", include_claimed=True) == [], what="done")


def test_a_plain_answer_in_hebrew(kami: Kami, sim: GreenApiSimulator,
                                  api: FakeMessagesAPI) -> None:
    sim.send_text(OWNER, "היי קמי")
    kami.wait_sent(2)
    assert kami.texts() == ["קיבלתי 👍 בודק…", "שלום! במה אוכל לעזור?"]
    assert "answer in Hebrew" in last_user_text(api.requests[0]["body"])


def test_the_model_escalates_to_claude(kami: Kami, sim: GreenApiSimulator) -> None:
    sim.send_text(OWNER, "why is the site slow?")
    [request] = kami.wait_requests("claude", 1)
    assert request.message.content == "why is the site slow?"  # the owner's own words
    assert request.message.metadata["summary"] == "Find out why the site is slow"
    kami.wait_sent(2)
    assert kami.texts()[1] == "📨 Passed to Claude Code; I'll bring the answer."


def test_the_model_delegates_a_named_task_to_kaylee(kami: Kami, sim: GreenApiSimulator) -> None:
    sim.send_text(OWNER, "please deploy v2")
    [request] = kami.wait_requests("kaylee", 1)
    assert request.message.metadata["task"] == "deploy"
    assert request.message.metadata["whatsapp_sender"] == OWNER
    assert request.message.metadata["summary"] == "deploy v2 to prod"
    kami.wait_sent(2)
    assert kami.texts()[1] == "📋 Handed to Kaylee: deploy"


def test_direct_routes_skip_the_model(kami: Kami, sim: GreenApiSimulator,
                                      api: FakeMessagesAPI) -> None:
    sim.send_text(OWNER, "/claude run the test suite")
    sim.send_text(OWNER, "/kaylee backup: the database, now")
    [to_claude] = kami.wait_requests("claude", 1)
    [to_kaylee] = kami.wait_requests("kaylee", 1)
    assert to_claude.message.content == "run the test suite"
    assert to_kaylee.message.metadata["task"] == "backup"
    assert api.requests == []


@pytest.mark.parametrize(("fault", "note"), [
    ("overloaded", "the model did not answer"),
    ("timeout", "the model did not answer"),
    ("key", "the model did not answer"),
])
def test_when_the_model_fails_the_owner_is_told_and_nothing_is_lost(
        tmp_path: Path, sim: GreenApiSimulator, api: FakeMessagesAPI, fault: str,
        note: str) -> None:
    if fault == "overloaded":
        api.fail(529, "overloaded_error", "Overloaded", times=5)
    elif fault == "timeout":
        api.delay(3.0)
    kami = run(tmp_path, sim, api, timeout=0.5)
    if fault == "key":
        api.api_key = "revoked"  # the key Kami holds is refused from now on
    try:
        sim.send_text(OWNER, "what is 2+2?")
        [request] = kami.wait_requests("claude", 1, timeout=20)
        assert request.message.content == "what is 2+2?"
        kami.wait_sent(2, timeout=20)
        ack, told = kami.texts()
        assert ack.startswith("Got it")
        assert "Passed to Claude Code" in told
        assert note in told
    finally:
        kami.stop()


def test_budgets_downgrade_then_go_offline(tmp_path: Path, sim: GreenApiSimulator,
                                           api: FakeMessagesAPI) -> None:
    # Two routes with a budget of one call each (any call spends more than 1 token).
    kami = run(tmp_path, sim, api, daily_tokens=1, routes=2)
    try:
        for i, question in enumerate(["2+2 first", "2+2 second", "2+2 third"], 1):
            sim.send_text(OWNER, question)
            kami.wait_sent(2 * i)
        assert [r["body"]["model"] for r in api.requests] == ["claude-test-0", "claude-test-1"]
        assert kami.texts()[1] == kami.texts()[3] == "*4*"
        # Both spent: Claude Code gets it, and the owner is told why.
        assert "today's model budget is spent" in kami.texts()[5]
        assert kami.requests_for("claude")[0].message.content == "2+2 third"
        assert kami.health()["model"]["remaining"] == {"r0": 0, "r1": 0}
    finally:
        kami.stop()


def test_the_model_sees_a_bounded_prompt(tmp_path: Path, sim: GreenApiSimulator,
                                         api: FakeMessagesAPI) -> None:
    kami = run(tmp_path, sim, api)
    try:
        big = "why is the site slow? " + "log line\n" * 5000
        sim.send_text(OWNER, big)
        [request] = kami.wait_requests("claude", 1)
        assert request.message.content == big  # Claude Code gets all of it
        prompt = last_user_text(api.requests[0]["body"])
        assert len(prompt) < 4200
        assert "more characters]" in prompt
    finally:
        kami.stop()
