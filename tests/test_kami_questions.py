"""Questions another agent asks the owner through Kami (Kaylee's confirmations): delivered
to the phone, answered by the owner's yes or no, the answer on the bridge for the asker —
once, after a restart too, and never when nothing was asked."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge import Bridge, MessageView
from bridge.testing.greenapi import GreenApiSimulator
from kami._commands import parse_answer
from tests.helpers import wait_for
from tests.kami_harness import OWNER, Kami, start_kami
from tests.kaylee_support import OWNER_CHAT, answers, outcome, run_once


@pytest.fixture
def kami(tmp_path: Path, sim: GreenApiSimulator) -> Iterator[Kami]:
    k = start_kami(tmp_path / "bridge", sim)
    yield k
    k.stop()


@pytest.mark.parametrize(("text", "verdict"), [
    ("yes", True), ("Yes!", True), ("כן", True), ("confirm", True), ("approve", True),
    ("אישור", True), ("no", False), ("No.", False), ("לא", False), ("cancel", False),
    ("ביטול", False), ("yes please do it", None), ("maybe", None), ("status", None),
    ("ok", None), ("y", None), ("n", None),  # too casual to approve or refuse anything
])
def test_parse_answer(text: str, verdict: bool | None) -> None:
    assert parse_answer(text) is verdict


def ask(bridge: Bridge, task: str | None = None, *, recipe: str = "wipe",
        expires_in: float = 600.0, chat: str = OWNER) -> str:
    """What Kaylee sends when a recipe needs the owner's confirmation (docs/kaylee.md),
    about a task requested by claude (made here unless given)."""
    if task is None:
        task = bridge.send(recipe, to="kaylee", sender="claude").id
    return bridge.send(f"🔐 Kaylee asks: may she run “{recipe}”? Answer yes or no.",
                       to="kami", type="request", sender="kaylee", expires_in=expires_in,
                       metadata={"kaylee": "confirm", "task": task, "recipe": recipe,
                                 "requester": "claude", "whatsapp_sender": chat},
                       idempotency_key=f"confirm:{task}").id


def replies_to(bridge: Bridge, message_id: str) -> list[MessageView]:
    fold = bridge.fold()
    return [bridge.get(i) for i in fold.replies.get(message_id, [])]


def open_questions(bridge: Bridge) -> list[MessageView]:
    return [v for v in bridge.inbox("kami") if v.message.metadata.get("kami") == "question"]


def test_yes_answers_the_question_for_the_asker(kami: Kami, sim: GreenApiSimulator) -> None:
    question = ask(kami.bridge)
    kami.wait_text("may she run “wipe”")
    wait_for(lambda: kami.bridge.get(question).state.status == "done", what="delivered")
    assert open_questions(kami.bridge)  # remembered (from its claim on, before it was sent)
    sim.send_text(OWNER, "yes")
    receipt = kami.wait_text("Told Kaylee: yes")
    assert "wipe" in receipt.message
    [answer] = replies_to(kami.bridge, question)
    m = answer.message
    assert (m.sender, m.to, m.type, m.metadata["confirmed"]) == ("kami", "kaylee", "response",
                                                                 True)
    assert open_questions(kami.bridge) == []
    # The question is answered once: a second "yes" is an ordinary message again.
    sim.send_text(OWNER, "yes")
    kami.wait_requests("claude", 1)
    assert len(replies_to(kami.bridge, question)) == 1


def test_no_declines_and_hebrew_works(kami: Kami, sim: GreenApiSimulator) -> None:
    question = ask(kami.bridge)
    kami.wait_text("may she run")
    wait_for(lambda: open_questions(kami.bridge), what="the question to be remembered")
    sim.send_text(OWNER, "לא")
    kami.wait_text("אמרתי ל-Kaylee: לא")
    [answer] = replies_to(kami.bridge, question)
    assert answer.message.metadata["confirmed"] is False


def test_yes_without_a_question_is_an_ordinary_message(kami: Kami,
                                                       sim: GreenApiSimulator) -> None:
    sim.send_text(OWNER, "yes")
    [forwarded] = kami.wait_requests("claude", 1)
    assert forwarded.message.content == "yes"
    sim.send_text(OWNER, "confirm")
    kami.wait_text("Nothing is waiting for confirmation")


def test_the_newest_question_is_answered_first(kami: Kami, sim: GreenApiSimulator) -> None:
    first = ask(kami.bridge, recipe="deploy")
    kami.wait_text("“deploy”")
    wait_for(lambda: len(open_questions(kami.bridge)) == 1, what="the first question")
    second = ask(kami.bridge, recipe="wipe")
    kami.wait_text("“wipe”")
    wait_for(lambda: len(open_questions(kami.bridge)) == 2, what="the second question")
    sim.send_text(OWNER, "no")
    kami.wait_text("Told Kaylee: no (wipe")
    sim.send_text(OWNER, "confirm")
    kami.wait_text("Told Kaylee: yes (deploy")
    assert [v.message.metadata["confirmed"] for v in replies_to(kami.bridge, second)] == [False]
    assert [v.message.metadata["confirmed"] for v in replies_to(kami.bridge, first)] == [True]


def test_a_question_survives_a_restart_of_kami(tmp_path: Path, sim: GreenApiSimulator) -> None:
    kami = start_kami(tmp_path / "bridge", sim)
    try:
        question = ask(kami.bridge)
        kami.wait_text("may she run")
        wait_for(lambda: open_questions(kami.bridge), what="the question to be remembered")
    finally:
        kami.stop()
    kami = start_kami(tmp_path / "bridge", sim)
    try:
        sim.send_text(OWNER, "yes")
        kami.wait_text("Told Kaylee: yes")
        [answer] = replies_to(kami.bridge, question)
        assert answer.message.metadata["confirmed"] is True
        assert len([t for t in kami.texts() if "may she run" in t]) == 1  # not asked twice
    finally:
        kami.stop()


def test_an_expired_question_is_not_answered(kami: Kami, sim: GreenApiSimulator) -> None:
    question = ask(kami.bridge, expires_in=1.5)
    kami.wait_text("may she run")
    wait_for(lambda: open_questions(kami.bridge), what="the question to be remembered")
    deadline = kami.bridge.get(question).state.expires or 0
    wait_for(lambda: time.time() > deadline + 0.1, what="the question to expire")
    sim.send_text(OWNER, "confirm")
    kami.wait_text("Nothing is waiting for confirmation")
    assert replies_to(kami.bridge, question) == []


def remember(bridge: Bridge, question: str, about: str) -> str:
    """Kami's record of a delivered question, as the outbox writes it."""
    return bridge.send(f"🔐 may she run “{about}”?", to="kami", type="request",
                       expires_in=600, idempotency_key=f"question:{question}",
                       metadata={"kami": "question", "question": question, "asker": "kaylee",
                                 "task": bridge.get(question).message.metadata["task"],
                                 "about": about, "whatsapp_sender": OWNER, "chats": [OWNER]}).id


def test_a_crash_after_the_answer_closes_the_question_on_restart(
        tmp_path: Path, sim: GreenApiSimulator) -> None:
    """Kami died after appending the answer and the receipt, before closing the question
    and the owner's message: the restart finishes both and answers nothing twice."""
    with Bridge(tmp_path / "bridge", agent="kami") as b:
        question = ask(b)
        b.done(question, reason="sent as X1")
        kept = remember(b, question, "wipe")
        said = b.send("yes", to="kami", type="request",
                      metadata={"kami": "inbound", "whatsapp_sender": OWNER, "wa_id": "X2",
                                "lang": "en"}, idempotency_key=f"wa:{OWNER}_X2").id
        list(b.send_many([
            {"content": "yes", "to": "kaylee", "type": "response", "reply_to": question,
             "metadata": {"confirmed": True, "whatsapp_sender": OWNER},
             "idempotency_key": f"confirmation:{said}"},
            {"content": "✅ Told Kaylee: yes (wipe)", "to": "kami", "type": "response",
             "reply_to": said, "metadata": {"whatsapp_sender": OWNER, "question": kept},
             "idempotency_key": f"answered:{said}"}]))
        # A newer question, delivered and remembered too: the finished answer must not be
        # given to it, nor may it be closed.
        newer = ask(b, recipe="deploy")
        b.done(newer, reason="sent as X3")
        remember(b, newer, "deploy")
    kami = start_kami(tmp_path / "bridge", sim)
    try:
        wait_for(lambda: kami.bridge.get(said).state.status == "done", what="the message")
        assert kami.bridge.get(kept).state.status == "done"
        assert replies_to(kami.bridge, newer) == []
        assert [v.message.metadata["question"] for v in open_questions(kami.bridge)] == [newer]
        kami.wait_text("Told Kaylee: yes")
        assert len(replies_to(kami.bridge, question)) == 1
        assert [t for t in kami.texts() if "Told Kaylee" in t] == ["✅ Told Kaylee: yes (wipe)"]
    finally:
        kami.stop()


def test_a_reply_that_quotes_a_question_answers_that_one(kami: Kami,
                                                        sim: GreenApiSimulator) -> None:
    first = ask(kami.bridge, recipe="deploy")
    kami.wait_text("“deploy”")
    second = ask(kami.bridge, recipe="wipe")
    kami.wait_text("“wipe”")
    wait_for(lambda: len(open_questions(kami.bridge)) == 2, what="both questions")
    [deploy] = [m for m in sim.sent if "“deploy”" in m.message]
    sim.send_text(OWNER, "yes", kind="quoted", quoted_id=deploy.id_message,
                  quoted_text=deploy.message)
    kami.wait_text("Told Kaylee: yes (deploy")
    assert [v.message.metadata["confirmed"] for v in replies_to(kami.bridge, first)] == [True]
    assert replies_to(kami.bridge, second) == []


def test_a_message_written_before_the_question_is_not_its_answer(
        kami: Kami, sim: GreenApiSimulator) -> None:
    """After an outage Green API hands over messages written long before; a "no" the owner
    wrote about something else must not refuse a question they had not seen yet."""
    question = ask(kami.bridge)
    kami.wait_text("may she run")
    wait_for(lambda: open_questions(kami.bridge), what="the question to be remembered")
    sim.send_text(OWNER, "no", timestamp=int(time.time()) - 120)
    [forwarded] = kami.wait_requests("claude", 1)
    assert forwarded.message.content == "no"
    assert replies_to(kami.bridge, question) == []
    assert open_questions(kami.bridge)


def test_confirm_is_answered_while_paused(kami: Kami, sim: GreenApiSimulator) -> None:
    question = ask(kami.bridge)
    kami.wait_text("may she run")
    wait_for(lambda: open_questions(kami.bridge), what="the question to be remembered")
    kami.bridge.pause("maintenance", by="owner")
    sim.send_text(OWNER, "confirm")
    kami.wait_text("Told Kaylee: yes")
    assert kami.bridge.is_paused()
    assert [v.message.metadata["confirmed"] for v in replies_to(kami.bridge, question)] == [True]


def test_a_question_whose_task_ended_is_not_answered(kami: Kami, sim: GreenApiSimulator) -> None:
    task = kami.bridge.send("wipe", to="kaylee").id
    question = ask(kami.bridge, task)
    kami.wait_text("may she run")
    wait_for(lambda: open_questions(kami.bridge), what="the question to be remembered")
    kami.bridge.cancel(task, reason="changed my mind")
    sim.send_text(OWNER, "confirm")
    kami.wait_text("Nothing is waiting for confirmation")
    assert replies_to(kami.bridge, question) == []
    assert open_questions(kami.bridge) == []


MARKER_RECIPE = """
[[recipe]]
name = "wipe"
argv = ["touch", "{marker}"]
confirm = true
"""


def test_kaylee_asks_the_phone_and_runs_on_yes(tmp_path: Path, sim: GreenApiSimulator) -> None:
    """The whole protocol with both agents: Kaylee asks through Kami, the owner answers
    on the phone, Kaylee runs the recipe."""
    marker = tmp_path / "wiped"
    kami = start_kami(tmp_path / "bridge", sim, owners=(OWNER_CHAT,))
    try:
        rid = kami.bridge.send("wipe", to="kaylee").id
        extra = MARKER_RECIPE.format(marker=marker)
        run_once(tmp_path, extra)
        assert not marker.exists()
        kami.wait_text("may she run “wipe”", chat=OWNER_CHAT)
        wait_for(lambda: open_questions(kami.bridge), what="the question to be remembered")
        sim.send_text(OWNER_CHAT, "yes")
        kami.wait_text("Told Kaylee: yes", chat=OWNER_CHAT)
        run_once(tmp_path, extra)
        assert marker.exists()
        result = outcome(kami.bridge, rid)
        assert result.message.type == "response"
        assert kami.bridge.get(rid).state.status == "done"
        assert len(answers(kami.bridge, rid, "confirm")) == 1
    finally:
        kami.stop()
