"""Kami's loop end to end: WhatsApp (the simulator) in, the bridge, WhatsApp out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.runtime.greenapi import RLM, utf16_len
from bridge.testing.greenapi import GreenApiSimulator, incoming_body
from tests.helpers import wait_for
from tests.kami_harness import (
    GROUP,
    OTHER_GROUP,
    OWNER,
    OWNER_LID,
    STRANGER,
    Kami,
    start_kami,
)


@pytest.fixture
def kami(tmp_path: Path, sim: GreenApiSimulator) -> Iterator[Kami]:
    k = start_kami(tmp_path / "bridge", sim, allow_groups=(GROUP,))
    yield k
    k.stop()


def test_a_message_goes_to_claude_and_the_answer_comes_back(kami: Kami,
                                                            sim: GreenApiSimulator) -> None:
    wa_id = sim.send_text(OWNER, "למה האתר איטי?", sender_name="דנה")
    [request] = kami.wait_requests("claude", 1)
    assert request.message.content == "למה האתר איטי?"
    assert request.message.sender == "kami"
    assert request.message.metadata["whatsapp_sender"] == OWNER
    assert request.message.metadata["wa_id"] == wa_id
    # Without a model the owner is told it was passed on, and why without thinking.
    note = kami.wait_text("Claude Code")
    assert "אין מודל" in note.message
    kami.bridge.reply(request.id, "A cron job **hogged** the CPU; see [the graph](https://g.example)")
    answer = kami.wait_text("cron job")
    assert answer.message == ("*Claude Code*\nA cron job *hogged* the CPU; see the graph "
                              "(https://g.example)")
    assert answer.quoted_message_id == wa_id  # the answer quotes the question
    kami.wait_queue_empty()  # every notification deleted once handled
    inbound = [v for v in kami.bridge.fold().messages.values() if v.sender == "kami"
               and v.to == "kami" and v.type == "request"]
    assert [s.status for s in inbound] == ["done"]
    wait_for(lambda: kami.bridge.inbox("kami", include_claimed=True) == [],
             what="kami's inbox to empty")


def test_redelivery_is_recognised_by_idmessage(kami: Kami, sim: GreenApiSimulator) -> None:
    body = incoming_body(sim.id_instance, sim.wid, OWNER, "deploy please", id_message="SAME1")
    sim.inject(body)
    sim.inject(body)  # Green API delivers at least once
    kami.wait_queue_empty()
    kami.wait_text("Claude Code")
    assert len(kami.requests_for("claude")) == 1
    assert len(kami.texts()) == 1
    assert [e["duplicate"] for e in kami.events.named("message.received")] == [False, True]


def test_the_same_id_in_another_chat_is_another_message(kami: Kami,
                                                        sim: GreenApiSimulator) -> None:
    sim.inject(incoming_body(sim.id_instance, sim.wid, OWNER, "one", id_message="X1"))
    sim.inject(incoming_body(sim.id_instance, sim.wid, OWNER_LID, "two", id_message="X1"))
    kami.wait_requests("claude", 2)


def test_strangers_get_nothing_done(kami: Kami, sim: GreenApiSimulator) -> None:
    sim.send_text(STRANGER, "status")
    sim.send_text(STRANGER, "/claude rm -rf /")
    sim.send_text(OTHER_GROUP, "status", sender=OWNER)  # a group that is not allowed
    sim.send_text(GROUP, "status", sender=STRANGER)     # an allowed group, not an owner
    kami.wait_queue_empty()
    refused = kami.events.named("message.refused")
    assert [(e["chat"], e["reason"]) for e in refused] == [
        (STRANGER, "not an owner"), (STRANGER, "not an owner"),
        (OTHER_GROUP, "group not allowed"), (GROUP, "not an owner")]
    assert kami.bridge.fold().messages == {}  # nothing on the bridge at all
    assert sim.sent == []


def test_owners_by_linked_id_and_in_allowed_groups(kami: Kami, sim: GreenApiSimulator) -> None:
    sim.send_text(OWNER_LID, "help")
    sim.send_text(GROUP, "help", sender=OWNER, chat_name="Ops")
    kami.wait_sent(1, chat=OWNER_LID)
    kami.wait_sent(1, chat=GROUP)  # the answer goes to the group it was asked in


def test_emoji_and_mixed_direction_text_arrive_intact(kami: Kami,
                                                      sim: GreenApiSimulator) -> None:
    text = "תבדוק את deploy.sh 🚀👨‍👩‍👧 ואז restart ל-nginx (port 443) ✅"
    sim.send_text(OWNER, text, kind="extended")
    [request] = kami.wait_requests("claude", 1)
    assert request.message.content == text
    inbound = kami.bridge.get(request.message.metadata["kami_inbound"])
    assert inbound.message.metadata["lang"] == "he"
    kami.bridge.reply(request.id, "Kaylee סיימה: nginx עלה מחדש בהצלחה 🎉")
    answer = kami.wait_text("nginx עלה")
    # A Hebrew line that starts with a Latin word gets an RLM, so it renders RTL.
    assert answer.message.split("\n")[1] == RLM + "Kaylee סיימה: nginx עלה מחדש בהצלחה 🎉"


def test_quoted_replies_and_captions(kami: Kami, sim: GreenApiSimulator) -> None:
    sim.send_text(OWNER, "and this one?", kind="quoted", quoted_text="the deploy log")
    sim.send_image(OWNER, "what is wrong in this screenshot")
    requests = kami.wait_requests("claude", 2)
    assert [r.message.content for r in requests] == ["and this one?",
                                                     "what is wrong in this screenshot"]
    inbound = [kami.bridge.get(r.message.metadata["kami_inbound"]) for r in requests]
    assert inbound[0].message.metadata["quoted"] == "the deploy log"
    assert inbound[1].message.metadata["wa_kind"] == "media"


def test_what_kami_cannot_read(kami: Kami, sim: GreenApiSimulator) -> None:
    sim.send_text(OWNER, None, kind="sticker")
    sim.send_text(OWNER, "{{SWE001}}")
    sim.send_text(OWNER, "   ")
    kami.wait_queue_empty()
    kami.wait_sent(2)
    assert "טקסט" in kami.texts()[0]        # text and captions only
    assert "לשלוח שוב" in kami.texts()[1]   # arrived empty: send it again
    assert kami.requests_for("claude") == []


def test_unknown_and_damaged_notifications_do_not_block_the_queue(
        kami: Kami, sim: GreenApiSimulator) -> None:
    sim.inject({"typeWebhook": "incomingCall", "from": OWNER, "status": "offer"})
    sim.inject({"typeWebhook": "incomingMessageReceived", "senderData": {"chatId": OWNER}})
    sim.inject("not even an object")
    sim.inject({"typeWebhook": "outgoingMessageStatus", "chatId": OWNER, "idMessage": "Z",
                "status": "read"})
    sim.inject({"typeWebhook": "somethingFromTheFuture", "x": [1, 2]})
    sim.send_text(OWNER, "after the junk")
    kami.wait_requests("claude", 1)
    kami.wait_queue_empty()
    assert len(kami.events.named("notification.malformed")) == 2
    assert {e["type"] for e in kami.events.named("notification.ignored")} == {
        "incomingCall", "somethingFromTheFuture"}


def test_huge_messages_in_and_out(kami: Kami, sim: GreenApiSimulator) -> None:
    big = ("שורה ארוכה עם טקסט. " * 20 + "\n") * 250  # ~100,000 characters
    sim.send_text(OWNER, big)
    [request] = kami.wait_requests("claude", 1)
    assert request.message.content == big
    answer = "\n\n".join(f"paragraph {i}: " + "x" * 900 for i in range(50))  # ~45,000
    kami.bridge.reply(request.id, answer)
    wait_for(lambda: kami.bridge.inbox("kami", include_claimed=True) == [],
             what="the long answer to be delivered")
    parts = [m.message for m in sim.sent if "paragraph" in m.message]
    assert len(parts) == 3
    assert all(utf16_len(p) <= 20_000 for p in parts)
    joined = "\n\n".join(parts).removeprefix("*Claude Code*\n")
    assert joined == answer
    assert parts[0].startswith("*Claude Code*\nparagraph 0")


def test_a_request_from_another_agent_reaches_the_owner(kami: Kami) -> None:
    kami.bridge.send("Should I merge PR 12?", to="kami", type="request")
    assert kami.wait_text("PR 12").message == "*Claude Code*\nShould I merge PR 12?"
    wait_for(lambda: kami.bridge.inbox("kami") == [], what="the request to be done")


def test_alerts_without_a_chat_go_to_the_first_owner(kami: Kami) -> None:
    kaylee = kami.bridge.__class__(kami.bridge.directory, agent="kaylee")
    kaylee.send("⚠️ kami is down: no answer within 5s", to="kami", type="notification",
                metadata={"alert": "down", "peer": "kami"})
    got = kami.wait_text("kami is down")
    assert got.message.startswith("*Kaylee*\n⚠️")
    assert [m.chat_id for m in kami.sim.sent] == [OWNER]
    kaylee.close()


def test_a_response_for_a_chat_that_is_not_allowed_is_failed_and_reported(kami: Kami) -> None:
    mid = kami.bridge.send("leak this", to="kami", type="response",
                           metadata={"whatsapp_sender": STRANGER}).id
    wait_for(lambda: kami.bridge.get(mid).status() == "failed", what="the failure")
    assert "neither an owner's chat nor an allowed group" in (kami.bridge.get(mid).state.reason
                                                             or "")
    # The failure is recorded first, the report to its author right after it.
    report = wait_for(lambda: [v for v in kami.bridge.inbox("claude")
                               if v.message.type == "notification"], what="the report")
    assert mid in report[0].message.content
    assert kami.sim.sent == []
    assert kami.health()["lastError"] is not None


def test_status_and_help_in_the_owners_language(kami: Kami, sim: GreenApiSimulator) -> None:
    sim.send_text(OWNER, "עזרה")
    sim.send_text(OWNER, "Help!")
    sim.send_text(OWNER, "סטטוס")
    kami.wait_sent(3)
    hebrew_help, english_help, status = kami.texts()
    assert "סטטוס" in hebrew_help and "/claude" in hebrew_help
    assert "status" in english_help and "shutdown all" in english_help
    assert status.startswith("📊 סטטוס קמי")
    assert "authorized" in status
    # Commands are answered at once: no acknowledgement, nothing on the way to Claude.
    assert kami.requests_for("claude") == []


def test_another_agents_message_gets_its_name_as_a_header_unless_it_opens_with_it(
        kami: Kami) -> None:
    for text in ("✅ disk-check: finished", "Kaylee: ⚠️ claude is down"):
        kami.bridge.send(text, to="kami", type="notification", sender="kaylee",
                         metadata={"whatsapp_sender": OWNER})
        kami.wait_sent(1 if text.startswith("✅") else 2)
    assert kami.texts() == ["*Kaylee*\n✅ disk-check: finished", "Kaylee: ⚠️ claude is down"]
