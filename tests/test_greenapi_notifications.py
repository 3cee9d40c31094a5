"""Typed notifications: every kind the simulator builds, and what a damaged one raises."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bridge.runtime.greenapi import (
    Ignored,
    IncomingMessage,
    MalformedNotification,
    OutgoingStatus,
    QuotaNotice,
    StateChanged,
    parse_notification,
)
from bridge.testing.greenapi import incoming_body

OWNER = "972501234567@c.us"
WID = "972500000000@c.us"


def body(text: str | None, **kw: Any) -> dict[str, Any]:
    return incoming_body(1101000001, WID, kw.pop("chat_id", OWNER), text, **kw)


def incoming(text: str | None, **kw: Any) -> IncomingMessage:
    note = parse_notification(body(text, **kw))
    assert isinstance(note, IncomingMessage)
    return note


@pytest.mark.parametrize(("kind", "expected"), [
    ("text", "text"), ("extended", "extended"), ("quoted", "quoted"),
    ("quoted-legacy", "quoted"), ("image", "media"),
])
def test_text_is_found_wherever_the_type_keeps_it(kind: str, expected: str) -> None:
    note = incoming("מה המצב? 🙂 status", kind=kind, id_message="ABC", sender_name="דנה",
                    timestamp=1731240000)
    assert note.kind == expected
    assert note.text == "מה המצב? 🙂 status"
    assert (note.id_message, note.chat_id, note.sender) == ("ABC", OWNER, OWNER)
    assert note.key == f"{OWNER}_ABC"
    assert note.sender_name == "דנה"
    assert note.timestamp == 1731240000
    assert note.instance_id == 1101000001


def test_a_reply_carries_what_it_quotes() -> None:
    note = incoming("yes, that one", kind="quoted", quoted_id="Q1", quoted_text="which deploy?")
    assert note.quoted is not None
    assert (note.quoted.stanza_id, note.quoted.text) == ("Q1", "which deploy?")
    legacy = incoming("yes", kind="quoted-legacy", quoted_id="Q2")
    assert legacy.quoted is not None
    assert legacy.quoted.stanza_id == "Q2"


def test_media_without_caption_and_stickers_have_no_text() -> None:
    image = incoming("", kind="image")
    assert image.media is not None
    assert image.media.mime_type == "image/jpeg"
    assert image.text is None
    sticker = incoming(None, kind="sticker")
    assert (sticker.kind, sticker.text) == ("other", None)


def test_groups_and_linked_ids() -> None:
    group = incoming("hi all", chat_id="120363043968066561@g.us", sender="120650379300963@lid",
                     chat_name="Ops")
    assert group.is_group
    assert group.sender == "120650379300963@lid"
    assert group.chat_name == "Ops"
    assert not incoming("hi").is_group


def test_missing_optional_fields_have_defaults() -> None:
    raw = body("hi")
    del raw["timestamp"], raw["instanceData"]
    raw["senderData"] = {"chatId": OWNER}
    note = parse_notification(raw)
    assert isinstance(note, IncomingMessage)
    assert (note.sender, note.sender_name, note.chat_name, note.timestamp) == (OWNER, "", "", 0)


@pytest.mark.parametrize(("damage", "error"), [
    (lambda b: b.pop("idMessage"), "idMessage"),
    (lambda b: b.pop("senderData"), "senderData"),
    (lambda b: b["senderData"].pop("chatId"), "chatId"),
    (lambda b: b.pop("messageData"), "messageData"),
    (lambda b: b["messageData"].pop("typeMessage"), "typeMessage"),
    (lambda b: b["messageData"].pop("textMessageData"), "textMessageData"),
    (lambda b: b["messageData"]["textMessageData"].update(textMessage=42), "textMessage"),
    (lambda b: b.update(idMessage=""), "idMessage"),
])
def test_missing_fields_raise_malformed(damage: Any, error: str) -> None:
    raw = copy.deepcopy(body("hi"))
    damage(raw)
    with pytest.raises(MalformedNotification, match=error):
        parse_notification(raw)


@pytest.mark.parametrize("raw", [None, [], "text", 42, {}, {"typeWebhook": ""}])
def test_not_a_notification(raw: Any) -> None:
    with pytest.raises(MalformedNotification):
        parse_notification(raw)


def test_outgoing_status() -> None:
    note = parse_notification({"typeWebhook": "outgoingMessageStatus", "chatId": OWNER,
                               "timestamp": 1, "idMessage": "BAE5", "status": "noAccount",
                               "description": "SWE004: 1000", "sendByApi": True})
    assert isinstance(note, OutgoingStatus)
    assert note.failed
    assert note.description == "SWE004: 1000"
    ok = parse_notification({"typeWebhook": "outgoingMessageStatus", "chatId": OWNER,
                             "idMessage": "BAE5", "status": "read"})
    assert isinstance(ok, OutgoingStatus)
    assert not ok.failed
    with pytest.raises(MalformedNotification, match="status"):
        parse_notification({"typeWebhook": "outgoingMessageStatus", "chatId": OWNER,
                            "idMessage": "BAE5"})


def test_state_and_quota() -> None:
    state = parse_notification({"typeWebhook": "stateInstanceChanged",
                                "stateInstance": "notAuthorized", "timestamp": 5})
    assert state == StateChanged("notAuthorized", 5)
    quota = parse_notification({"typeWebhook": "quotaExceeded", "quotaData": {"used": 3}})
    assert isinstance(quota, QuotaNotice)
    assert quota.data == {"used": 3}


@pytest.mark.parametrize("kind", ["incomingCall", "deviceInfo", "outgoingMessageReceived",
                                  "outgoingAPIMessageReceived", "somethingNew"])
def test_other_kinds_are_ignored(kind: str) -> None:
    note = parse_notification({"typeWebhook": kind, "whatever": 1})
    assert isinstance(note, Ignored)
    assert note.type_webhook == kind


def test_the_empty_first_message_marker() -> None:
    assert incoming("{{SWE001}}").arrived_empty
    assert not incoming("hello {{SWE001}} there").arrived_empty
