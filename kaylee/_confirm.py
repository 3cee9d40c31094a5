"""The confirmation protocol: a recipe with ``confirm = true`` runs only when the owner says so.

On the bridge (docs/kaylee.md, "Confirmations"):

1. Kaylee claims the request R and finds no confirmation in its thread. She sends
   the owner's agent (Kami) a ``request`` C with ``reply_to`` = R, ``expires`` =
   ``confirm_timeout``, the idempotency key ``confirm:R`` and metadata
   ``{"kaylee": "confirm", "task": R, "recipe", "params", "requester",
   "whatsapp_sender": <owner's chat>}``, then hands R back with ``not_before`` =
   the deadline and the reason "awaiting the owner's confirmation".
2. Kami asks the owner on WhatsApp and answers C with a ``response`` (``bridge.reply``)
   whose metadata says ``"confirmed": true`` or ``false``. Without that key the
   text decides: ``yes``/``y``/``ok``/``confirm``/``approve`` approve, anything else
   declines — when unsure, Kaylee does less.
3. The answer lands in Kaylee's inbox; she takes R at once (the ``not_before``
   does not bind its holder) and runs it, or fails it as declined. Only an answer
   from the owner's agent counts; others are ignored and logged.
4. No answer by the deadline: R fails ("no confirmation within 1h") and C is
   marked expired.

Everything is derived from R's thread, so a restart loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bridge import Backend, MessageView

__all__ = ["Confirmation", "find_confirmation", "thread_of"]

APPROVE = frozenset({"yes", "y", "ok", "okay", "confirm", "confirmed", "approve", "approved",
                     "כן"})


def thread_of(bridge: Backend, message_id: str) -> list[MessageView]:
    """The messages of ``message_id``'s thread, oldest first (any backend's :meth:`thread`)."""
    return bridge.thread(message_id)


@dataclass(frozen=True)
class Confirmation:
    """What R's thread says about its confirmation."""

    ask: MessageView | None
    answer: MessageView | None
    ignored: tuple[MessageView, ...] = ()

    @property
    def approved(self) -> bool:
        return self.answer is not None and verdict(self.answer)

    def expired(self, now: float) -> bool:
        return self.ask is not None and self.ask.state.expires is not None and \
            self.ask.state.expires <= now


def verdict(answer: MessageView) -> bool:
    """True only for an explicit yes."""
    confirmed: Any = (answer.message.metadata or {}).get("confirmed")
    if isinstance(confirmed, bool):
        return confirmed
    return answer.message.content.strip().strip(".!").lower() in APPROVE


def find_confirmation(thread: list[MessageView], task_id: str, me: str,
                      owner_agent: str) -> Confirmation:
    """Kaylee's question about ``task_id`` and the owner's answer, if any."""
    ask = next((v for v in thread if v.message.sender == me and v.message.reply_to == task_id
                and (v.message.metadata or {}).get("kaylee") == "confirm"), None)
    if ask is None:
        return Confirmation(None, None)
    answers = [v for v in thread if v.message.reply_to == ask.id
               and v.message.type == "response"]
    valid = [v for v in answers if v.message.sender == owner_agent]
    ignored = tuple(v for v in answers if v.message.sender != owner_agent)
    return Confirmation(ask, valid[0] if valid else None, ignored)
