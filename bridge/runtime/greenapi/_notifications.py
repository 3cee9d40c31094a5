"""Typed Green API notifications: what ``receiveNotification`` and webhooks deliver.

:func:`parse_notification` turns a notification body into one of

- :class:`IncomingMessage` — ``incomingMessageReceived``: text, extended text,
  quoted replies (both the current ``quotedMessage`` field and the legacy
  ``typeMessage: quotedMessage``), media with a caption; other message types
  (stickers, locations, polls...) arrive with ``text`` None;
- :class:`OutgoingStatus` — ``outgoingMessageStatus`` (sent, delivered, read, and
  the failures ``failed``/``noAccount``/``notInGroup``/``yellowCard``);
- :class:`StateChanged` — ``stateInstanceChanged``;
- :class:`QuotaNotice` — ``quotaExceeded``;
- :class:`Ignored` — every other kind (calls, device info, messages sent from the
  phone...), to be deleted with a debug line.

A notification of a known kind that lacks a field it needs raises
:class:`MalformedNotification`: the caller logs it and deletes it (the queue is
strictly FIFO; one bad item must not block the rest).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ...format import json_kind
from ._errors import MalformedNotification

__all__ = [
    "FAILED_STATUSES",
    "Ignored",
    "IncomingMessage",
    "Media",
    "Notification",
    "OutgoingStatus",
    "QuotaNotice",
    "Quoted",
    "StateChanged",
    "parse_notification",
]

FAILED_STATUSES = frozenset({"failed", "noAccount", "notInGroup", "yellowCard"})
"""Outgoing statuses that mean the message will not arrive."""

UNDELIVERED_MARKER = "{{SWE001}}"
"""Text Green API puts in a chat's first message when it reached the linked device
empty; the documented workaround is to ask the sender to send it again."""

_MEDIA = frozenset({"imageMessage", "videoMessage", "audioMessage", "documentMessage"})

Kind = Literal["text", "extended", "quoted", "media", "other"]


@dataclass(frozen=True, slots=True)
class Quoted:
    """The message a reply quotes."""

    stanza_id: str | None
    participant: str | None
    type_message: str | None
    text: str | None


@dataclass(frozen=True, slots=True)
class Media:
    """A file attached to a message (Kami reads only its caption)."""

    type_message: str
    download_url: str | None
    mime_type: str | None
    file_name: str | None
    caption: str | None


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """A message someone sent to the instance."""

    id_message: str
    chat_id: str
    sender: str
    sender_name: str
    chat_name: str
    timestamp: int
    type_message: str
    kind: Kind
    text: str | None
    quoted: Quoted | None = None
    media: Media | None = None
    instance_id: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def key(self) -> str:
        """A key unique in the instance: message ids are unique only within a chat."""
        return f"{self.chat_id}_{self.id_message}"

    @property
    def is_group(self) -> bool:
        return self.chat_id.endswith("@g.us")

    @property
    def arrived_empty(self) -> bool:
        """WhatsApp delivered the text as the ``{{SWE001}}`` marker: ask for it again."""
        return self.text is not None and self.text.strip() == UNDELIVERED_MARKER


@dataclass(frozen=True, slots=True)
class OutgoingStatus:
    """What became of a message the instance sent."""

    id_message: str
    chat_id: str
    status: str
    description: str | None
    timestamp: int
    send_by_api: bool

    @property
    def failed(self) -> bool:
        return self.status in FAILED_STATUSES


@dataclass(frozen=True, slots=True)
class StateChanged:
    """The instance's authorisation state changed (``authorized``, ``notAuthorized``...)."""

    state: str
    timestamp: int


@dataclass(frozen=True, slots=True)
class QuotaNotice:
    """A Developer-plan quota was reached (the ``quotaExceeded`` webhook)."""

    data: dict[str, Any]
    timestamp: int


@dataclass(frozen=True, slots=True)
class Ignored:
    """A notification of a kind nobody here acts on."""

    type_webhook: str
    reason: str


Notification = IncomingMessage | OutgoingStatus | StateChanged | QuotaNotice | Ignored


def _need_str(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedNotification(f"{where}: missing or empty '{key}'")
    return value


def _opt_str(obj: Any, key: str) -> str | None:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, str) else None


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _quoted(data: Any) -> Quoted | None:
    if not isinstance(data, dict):
        return None
    text = (_opt_str(data, "textMessage") or _opt_str(data.get("extendedTextMessage"), "text")
            or _opt_str(data.get("textMessageData"), "textMessage")
            or _opt_str(data.get("extendedTextMessageData"), "text") or _opt_str(data, "caption"))
    return Quoted(_opt_str(data, "stanzaId"), _opt_str(data, "participant"),
                  _opt_str(data, "typeMessage"), text)


def _incoming(body: dict[str, Any]) -> IncomingMessage:
    where = "incomingMessageReceived"
    id_message = _need_str(body, "idMessage", where)
    sender_data = body.get("senderData")
    if not isinstance(sender_data, dict):
        raise MalformedNotification(f"{where}: missing 'senderData'")
    chat_id = _need_str(sender_data, "chatId", f"{where}.senderData")
    message_data = body.get("messageData")
    if not isinstance(message_data, dict):
        raise MalformedNotification(f"{where}: missing 'messageData'")
    type_message = _need_str(message_data, "typeMessage", f"{where}.messageData")
    kind: Kind = "other"
    text: str | None = None
    media: Media | None = None
    if type_message == "textMessage":
        data = message_data.get("textMessageData")
        if not isinstance(data, dict) or not isinstance(data.get("textMessage"), str):
            raise MalformedNotification(f"{where}: textMessage without "
                                        "textMessageData.textMessage")
        kind, text = "text", data["textMessage"]
    elif type_message in ("extendedTextMessage", "quotedMessage"):
        data = message_data.get("extendedTextMessageData")
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            raise MalformedNotification(f"{where}: {type_message} without "
                                        "extendedTextMessageData.text")
        kind = "quoted" if type_message == "quotedMessage" else "extended"
        text = data["text"]
    elif type_message in _MEDIA:
        data = message_data.get("fileMessageData")
        if not isinstance(data, dict):
            raise MalformedNotification(f"{where}: {type_message} without fileMessageData")
        caption = _opt_str(data, "caption")
        media = Media(type_message, _opt_str(data, "downloadUrl"), _opt_str(data, "mimeType"),
                      _opt_str(data, "fileName"), caption)
        kind, text = "media", caption or None
    quoted = _quoted(message_data.get("quotedMessage"))
    if quoted is not None and kind == "extended":
        kind = "quoted"
    instance = body.get("instanceData")
    return IncomingMessage(
        id_message=id_message, chat_id=chat_id,
        sender=_opt_str(sender_data, "sender") or chat_id,
        sender_name=_opt_str(sender_data, "senderName") or "",
        chat_name=_opt_str(sender_data, "chatName") or "",
        timestamp=_int(body.get("timestamp")), type_message=type_message, kind=kind,
        text=text, quoted=quoted, media=media,
        instance_id=_int(instance.get("idInstance")) if isinstance(instance, dict) else None,
        raw=body)


def parse_notification(body: Any) -> Notification:
    """Type a notification body (the ``body`` of a receipt, or a webhook's POST body).

    Raises:
        MalformedNotification: not an object, no ``typeWebhook``, or a known kind
            without a field it needs.
    """
    if not isinstance(body, dict):
        raise MalformedNotification(f"a notification must be a JSON object, not "
                                    f"{json_kind(body)}")
    kind = body.get("typeWebhook")
    if not isinstance(kind, str) or not kind:
        raise MalformedNotification("notification without 'typeWebhook'")
    if kind == "incomingMessageReceived":
        return _incoming(body)
    if kind == "outgoingMessageStatus":
        where = "outgoingMessageStatus"
        return OutgoingStatus(
            id_message=_need_str(body, "idMessage", where),
            chat_id=_need_str(body, "chatId", where),
            status=_need_str(body, "status", where),
            description=_opt_str(body, "description"),
            timestamp=_int(body.get("timestamp")),
            send_by_api=bool(body.get("sendByApi")))
    if kind == "stateInstanceChanged":
        return StateChanged(_need_str(body, "stateInstance", kind), _int(body.get("timestamp")))
    if kind == "quotaExceeded":
        data = body.get("quotaData")
        return QuotaNotice(data if isinstance(data, dict) else {}, _int(body.get("timestamp")))
    return Ignored(kind, "not a kind this client acts on")
