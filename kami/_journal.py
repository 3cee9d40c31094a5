"""A Green API notification → what it causes, durably on the bridge.

Polling and webhook mode share this handler. It returns only once everything
the notification causes is on the bridge; only then may the caller delete the
notification (or answer the webhook 200). A crash at any point before that
means Green API delivers it again, and the second time the bridge's
idempotency key (``wa:<chatId>_<idMessage>``: message ids are unique only
within a chat) makes the send a no-op: the message is handled once.

What lands where:

- an owner's message → a ``request`` from kami to kami (the inbound record Kami's
  loop works through; it survives a pause, a crash and a restart);
- someone else's message → nothing but a log line (and, if configured, one polite
  reply a day);
- a ``failed``/``noAccount`` status of something Kami sent → a request from kami to
  kami that the loop turns into a resend or a report;
- instance states and quota notices → Kami's health (no bridge record needed);
- anything else, or a notification missing its fields → a log line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bridge import BridgeUnavailable
from bridge.runtime.greenapi import (
    Ignored,
    IncomingMessage,
    MalformedNotification,
    OutgoingStatus,
    QuotaNotice,
    StateChanged,
    parse_notification,
)

from ._context import Context
from ._texts import Lang, detect_language, say

if TYPE_CHECKING:
    from bridge import Backend

__all__ = ["MAX_CONTENT", "Journal"]

MAX_CONTENT = 200_000
"""Characters of one incoming text kept (WhatsApp's own limit is about 65,000); beyond
that the record would near the bridge's 1 MiB line limit."""

INBOUND = "inbound"
STATUS = "wa_status"
QUESTION = "question"
"""A question another agent asked the owner (a confirmation), delivered and awaiting the
owner's yes or no: open in Kami's own inbox until answered or expired."""


class Journal:
    """Records notifications on the bridge; see the module docstring."""

    def __init__(self, agent: Context, *, default_language: Lang,
                 on_journaled: Callable[[str], None]) -> None:
        """``on_journaled`` gets the id of each owner's message this journal was the first
        to record (nobody can have started handling it yet)."""
        self.agent = agent
        self.default_language: Lang = default_language
        self.on_journaled = on_journaled
        self.settings = agent.settings
        self.log = agent.log
        self.owners = frozenset(self.settings.owners)
        self.groups = frozenset(self.settings.allow_groups)

    def _bridge(self) -> Backend:
        bridge = self.agent.bridge
        if bridge is None:
            raise BridgeUnavailable("the bridge is not reachable: the notification is kept "
                                    "in Green API's queue")
        return bridge

    def refused(self, note: IncomingMessage) -> str | None:
        """Why the sender may not use Kami, or None when they may."""
        if note.is_group:
            if note.chat_id not in self.groups:
                return "group not allowed"
            return None if note.sender in self.owners else "not an owner"
        return None if (note.chat_id in self.owners or note.sender in self.owners) \
            else "not an owner"

    def handle(self, body: Any) -> str:
        """Record what ``body`` causes; return what happened (for the log).

        Raises:
            BridgeError, OSError: the bridge could not take it; do not delete it.
        """
        try:
            note = parse_notification(body)
        except MalformedNotification as exc:
            kind = body.get("typeWebhook") if isinstance(body, dict) else None
            self.log.warning("notification.malformed", type=kind, error=str(exc))
            return "malformed"
        if isinstance(note, IncomingMessage):
            return self._incoming(note)
        if isinstance(note, OutgoingStatus):
            return self._status(note)
        if isinstance(note, StateChanged):
            self.agent.on_instance_state(note.state)
            return "state"
        if isinstance(note, QuotaNotice):
            self.agent.on_quota(str(note.data.get("description") or "quotaExceeded"))
            return "quota"
        if isinstance(note, Ignored):
            self.log.debug("notification.ignored", type=note.type_webhook)
        return "ignored"

    def _incoming(self, note: IncomingMessage) -> str:
        why = self.refused(note)
        lang = detect_language("" if note.arrived_empty else note.text or "",
                               self.default_language)
        if why is not None:
            self.log.info("message.refused", chat=note.chat_id, sender=note.sender,
                          wa_id=note.id_message, reason=why)
            reply = self.settings.stranger_reply
            if reply and not note.is_group:
                day = time.strftime("%Y-%m-%d", time.gmtime())
                self._bridge().send(reply, to=self.agent.name, type="response",
                                    metadata={"whatsapp_sender": note.chat_id, "stranger": True},
                                    idempotency_key=f"stranger:{note.chat_id}:{day}")
            return "refused"
        if note.arrived_empty or note.text is None:
            key = "resend" if note.arrived_empty else "text_only"
            self._bridge().send(say(key, lang), to=self.agent.name, type="response",
                                metadata={"whatsapp_sender": note.chat_id},
                                idempotency_key=f"{key}:{note.key}")
            self.log.info("message.unreadable", chat=note.chat_id, wa_id=note.id_message,
                          type=note.type_message)
            return "unreadable"
        if not note.text.strip():
            self.log.debug("message.blank", chat=note.chat_id, wa_id=note.id_message)
            return "ignored"
        text = note.text
        if len(text) > MAX_CONTENT:
            text = text[:MAX_CONTENT] + f"\n[… {len(note.text) - MAX_CONTENT} characters cut]"
        metadata: dict[str, Any] = {
            "kami": INBOUND, "whatsapp_sender": note.chat_id, "wa_id": note.id_message,
            "wa_from": note.sender, "wa_kind": note.kind, "lang": lang,
        }
        if note.sender_name:
            metadata["sender_name"] = note.sender_name[:100]
        if note.quoted is not None and note.quoted.text:
            metadata["quoted"] = note.quoted.text[:500]
        if note.quoted is not None and note.quoted.stanza_id:
            metadata["quoted_id"] = note.quoted.stanza_id  # which question a reply answers
        if note.timestamp > 0:
            metadata["wa_ts"] = note.timestamp  # when the owner wrote it (WhatsApp's clock)
        result = self._bridge().send(text, to=self.agent.name, type="request", metadata=metadata,
                                     idempotency_key=f"wa:{note.key}")
        self.log.info("message.received", id=result.id, chat=note.chat_id,
                      wa_id=note.id_message, kind=note.kind, chars=len(note.text),
                      duplicate=result.duplicate)
        if not result.duplicate:
            self.on_journaled(result.id)
        self.agent.received(note.timestamp)
        self.agent.wake_up()
        return "duplicate" if result.duplicate else "journaled"

    def _status(self, note: OutgoingStatus) -> str:
        if not note.failed:
            self.log.debug("whatsapp.status", wa_id=note.id_message, status=note.status)
            return "status"
        result = self._bridge().send(
            note.description or note.status, to=self.agent.name, type="request",
            metadata={"kami": STATUS, "wa_status": note.status, "wa_id": note.id_message,
                      "chat": note.chat_id},
            idempotency_key=f"st:{note.chat_id}_{note.id_message}_{note.status}")
        self.log.warning("whatsapp.status_failed", id=result.id, wa_id=note.id_message,
                         chat=note.chat_id, status=note.status, description=note.description)
        self.agent.wake_up()
        return "status"
