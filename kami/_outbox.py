"""Delivering to WhatsApp: every response or notification addressed to Kami, exactly once.

The bridge is Kami's outbox. An item is *claimed* before its first part is
sent (a durable "an attempt began") and marked *done* (with the message ids
Green API gave) only after every part was accepted. So after a crash, a
claimed item is one whose parts may or may not have gone out: before sending
anything, Kami looks each part up in the instance's journal of sent messages
(``lastOutgoingMessages``) and sends only what is not there. A send that timed
out after the request went out is treated the same way, a few seconds later.
That is what keeps a message from being sent twice; the claim and the done
record are what keep one from being lost.

Failures, and what they do to the item:

- Green API unreachable, 429, 5xx: the item waits (capped backoff), Kami is degraded;
- 466: the item waits ``quota_backoff``; the owner and ``report_to`` are told;
- 401/403: nothing is sent until the credentials are fixed (nothing is lost);
- refused as it is (400), a chat that is neither an owner's nor an allowed group:
  the item is marked failed and reported — never dropped without a word;
- a later ``failed`` status: sent again (``resend_failed`` times); ``noAccount``
  and the rest: reported.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bridge import BridgeError, MessageView, NotFound, StateConflict, parse_ts
from bridge.runtime.greenapi import (
    GreenApiAuthError,
    GreenApiClient,
    GreenApiError,
    GreenApiQuotaExceeded,
    GreenApiRejected,
    GreenApiSendUncertain,
    GreenApiUnavailable,
    for_whatsapp,
    is_chat_id,
    split_message,
)

from ._context import Context
from ._journal import QUESTION

if TYPE_CHECKING:
    from bridge import Backend

__all__ = ["LEASE", "ROUND_SECONDS", "Outbox", "is_question"]

LEASE = 600.0
"""Seconds a delivery claim holds an item (only Kami takes its own items; the lease
matters to no one else)."""

ROUND_SECONDS = 2.0
"""Longest a delivery round runs before the loop gets control back (watchdog pings)."""

QUESTION_WINDOW = 86_400.0
"""Seconds a question without an expiry of its own waits for the owner's answer."""

SENT_AS = "sent as "
"""How a done record names the Green API ids an item went out as (recovery reads it)."""

RECORD_MARGIN = 300.0
"""Seconds before an item's creation that recovery still reads done records from (clocks
of the bridge's hosts and Green API's differ a little)."""

REMEMBERED = 10_000
"""Message ids kept in memory to map later statuses back to bridge messages."""

NAMES = {"claude": "Claude Code"}


class _Older(Exception):
    """Stops a backwards read of the bridge at the records that are too old to matter."""


def is_question(view: MessageView, me: str) -> bool:
    """A request another agent sent the owner that wants a yes or a no: Kaylee's
    confirmation (docs/kaylee.md, "Confirmations")."""
    m = view.message
    return m.type == "request" and m.sender != me and m.metadata.get("kaylee") == "confirm"


@dataclass
class _Progress:
    """What this process knows of one item's delivery."""

    sent: dict[int, str] = field(default_factory=dict)
    uncertain: bool = False
    next_try: float = 0.0
    failures: int = 0


class Outbox:
    """Sends the agent's deliverable bridge messages; see the module docstring."""

    def __init__(self, agent: Context, *, client: GreenApiClient,
                 notify_chats: Sequence[str]) -> None:
        self.agent = agent
        self.settings = agent.settings
        self.log = agent.log
        self.client = client
        self.notify_chats = tuple(notify_chats)
        """Where an item without a chat of its own goes."""
        self.progress: dict[str, _Progress] = {}
        self.sent_as: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._recorded: tuple[float, set[str]] | None = None
        """(since, ids) of this round's read of done records (recovery)."""
        self.paused_until = 0.0
        self.allowed = frozenset(self.settings.owners) | frozenset(self.settings.allow_groups)

    # -- what to send ------------------------------------------------------------------------

    def deliverable(self, view: MessageView) -> bool:
        """Responses and notifications for Kami, and requests other agents send it (for the
        owner); Kami's own requests are its inbound records, not deliveries."""
        m = view.message
        return m.type != "request" or m.sender != self.agent.name

    def next_due(self) -> float | None:
        """When the earliest waiting item may be tried again (monotonic), or None."""
        times = [p.next_try for p in self.progress.values() if p.next_try > 0]
        if self.paused_until:
            times.append(self.paused_until)
        return min(times) if times else None

    def targets(self, view: MessageView) -> tuple[list[str], str | None]:
        """The chats an item goes to, or why it may not be sent."""
        m = view.message
        chat = m.metadata.get("whatsapp_sender")
        if chat is None or chat == "":
            return list(self.notify_chats), None
        if not isinstance(chat, str) or not is_chat_id(chat):
            return [], f"{chat!r} is not a WhatsApp chat id"
        if chat in self.allowed:
            return [chat], None
        if (m.sender == self.agent.name and m.metadata.get("stranger") is True
                and m.content == self.settings.stranger_reply):
            return [chat], None  # Kami's fixed reply to someone not allowed
        return [], f"{chat} is neither an owner's chat nor an allowed group"

    def render(self, view: MessageView) -> list[str]:
        m = view.message
        author = m.metadata.get("on_behalf") or m.sender
        text = for_whatsapp(m.content)
        name = NAMES.get(author, str(author).capitalize())
        if author != self.agent.name and text.strip() and \
                not text.startswith((f"{name}:", f"{name} (")):
            # Formatted already: the header's *bold* is WhatsApp's, not Markdown's. A text
            # that opens with its author's name ("Kaylee: ⚠️ …") needs no header.
            text = f"*{name}*\n{text}"
        return split_message(text)

    def _quote(self, bridge: Backend, view: MessageView, chat: str) -> str | None:
        """Another agent's answer quotes the owner's message it answers."""
        m = view.message
        if m.sender == self.agent.name or not m.reply_to:
            return None
        try:
            asked = bridge.get(m.reply_to).message.metadata
        except (NotFound, BridgeError):
            return None
        wa_id = asked.get("wa_id")
        if isinstance(wa_id, str) and asked.get("whatsapp_sender") == chat:
            return wa_id
        return None

    # -- the round ---------------------------------------------------------------------------

    def deliver(self, bridge: Backend, views: list[MessageView], *,
                control_only: bool = False) -> bool:
        """One delivery round over ``views``; True if anything was done."""
        now = time.monotonic()
        if not control_only:
            # Items that left the inbox (cancelled, failed by someone) leave no timers.
            present = {v.id for v in views}
            for gone in [k for k in self.progress if k not in present]:
                del self.progress[gone]
        if self.agent.green_blocked or now < self.paused_until:
            return False
        end = now + ROUND_SECONDS
        did = False
        self._recorded = None
        for view in views:
            if control_only and view.message.metadata.get("control") is not True:
                continue
            state = view.state
            if state.status == "claimed" and state.claimed_by != self.agent.name:
                continue
            progress = self.progress.get(view.id)
            if progress is not None and progress.next_try > time.monotonic():
                continue
            did = True
            if not self._deliver_one(bridge, view, progress):
                break  # Green API is in trouble: the rest waits too
            if time.monotonic() > end or self.agent.should_stop:
                break
        return did

    def _deliver_one(self, bridge: Backend, view: MessageView,
                     progress: _Progress | None) -> bool:
        """Deliver one item; False when Green API itself is failing (stop the round)."""
        chats, problem = self.targets(view)
        if problem is not None:
            self.give_up(bridge, view, problem)
            return True
        parts = self.render(view)
        if not parts:
            bridge.done(view.id, reason="nothing to send (empty)", sender=self.agent.name)
            return True
        if progress is None:
            # Claimed before this process ever saw it: an earlier attempt (a crash, a
            # restart) may have sent some parts.
            progress = _Progress(uncertain=view.state.status == "claimed")
            self.progress[view.id] = progress
        try:
            bridge.claim(view.id, lease=LEASE, sender=self.agent.name)
        except StateConflict as exc:  # cancelled or taken meanwhile: not ours to send
            self.log.warning("message.not_sent", id=view.id, reason=str(exc))
            self.progress.pop(view.id, None)
            return True
        if is_question(view, self.agent.name):
            # Before the first part goes out: an answer can never arrive before the record.
            self._keep_question(bridge, view, chats)
        plan = [(chat, i, part) for chat in chats for i, part in enumerate(parts)]
        if progress.uncertain and not self._recover(bridge, view, plan, progress):
            return False
        for index, (chat, i, part) in enumerate(plan):
            if index in progress.sent:
                continue
            try:
                quote = self._quote(bridge, view, chat) if i == 0 else None
                mid = self.client.send_message(chat, part, quoted_message_id=quote,
                                               link_preview=False)
            except GreenApiSendUncertain as exc:
                progress.uncertain = True
                progress.next_try = time.monotonic() + self.settings.verify_after
                self.log.warning("message.send_uncertain", id=view.id, chat=chat, part=index,
                                 error=str(exc))
                return False
            except GreenApiQuotaExceeded as exc:
                progress.next_try = time.monotonic() + self.settings.quota_backoff
                self.agent.on_quota(str(exc))
                return False
            except GreenApiAuthError as exc:
                self.agent.on_auth_error(exc)
                return False
            except GreenApiRejected as exc:
                self.give_up(bridge, view, f"Green API refused it: {exc}")
                return True
            except GreenApiUnavailable as exc:
                self._wait(progress, exc)
                return False
            progress.sent[index] = mid
            self._remember(mid, view.id)
            self.agent.on_green_ok("send")
        ids = [progress.sent[k] for k in sorted(progress.sent)]
        try:
            bridge.done(view.id, reason=SENT_AS + ",".join(ids), sender=self.agent.name)
        except StateConflict as exc:
            self.log.warning("message.done_conflict", id=view.id, reason=str(exc))
        self.progress.pop(view.id, None)
        self.agent.sent(len(ids))
        self.log.info("message.sent", id=view.id, chats=chats, parts=len(parts), wa_ids=ids,
                      sender=view.message.sender)
        return True

    def _keep_question(self, bridge: Backend, view: MessageView,
                       chats: list[str]) -> str | None:
        """Remember a question for the owner in Kami's own inbox (a request to itself that
        expires with the question), so that the owner's yes or no finds it, after a restart
        too. Written once the question is claimed, before it is sent; the idempotency key
        makes every later call return the same record. Its id, or None (nothing to ask)."""
        m = view.message
        expires = view.state.expires
        left = QUESTION_WINDOW if expires is None else expires - time.time()
        if left <= 0 or not chats:
            return None
        recipe, params = m.metadata.get("recipe"), m.metadata.get("params")
        about = m.content[:60]
        if isinstance(recipe, str):
            about = " ".join([recipe, *(f"{k}={v}" for k, v in params.items())]) \
                if isinstance(params, dict) else recipe
        kept = bridge.send(m.content[:300], to=self.agent.name, type="request",
                           metadata={"kami": QUESTION, "question": view.id, "asker": m.sender,
                                     "task": m.metadata.get("task"), "about": about,
                                     "whatsapp_sender": chats[0], "chats": chats},
                           expires_in=left, idempotency_key=f"question:{view.id}")
        if not kept.duplicate:
            self.log.info("question.kept", id=view.id, asker=m.sender, record=kept.id)
        return kept.id

    def _wait(self, progress: _Progress, exc: GreenApiError) -> None:
        progress.failures += 1
        delay = min(self.settings.retry_delay * 2 ** min(progress.failures, 16),
                    self.settings.backoff_cap)
        progress.next_try = self.paused_until = time.monotonic() + delay
        self.agent.on_green_down("send", exc)

    def _remember(self, wa_id: str, bridge_id: str) -> None:
        self.sent_as[wa_id] = bridge_id
        while len(self.sent_as) > REMEMBERED:
            self.sent_as.popitem(last=False)

    def _recover(self, bridge: Backend, view: MessageView,
                 plan: list[tuple[str, int, str]], progress: _Progress) -> bool:
        """Find which parts of an item whose earlier attempt was cut short went out."""
        created = parse_ts(view.message.ts)
        minutes = min(1440, math.ceil((time.time() - created) / 60) + 1)
        try:
            journal = self.client.last_outgoing_messages(minutes)
        except GreenApiAuthError as exc:
            self.agent.on_auth_error(exc)
            return False
        except GreenApiError as exc:
            self._wait(progress, exc)
            return False
        # Oldest first; an id already matched to another item is not matched again: those
        # this process sent, and those other items' done records name (the same text, such
        # as "Passed to Claude Code", often goes to the same chat many times).
        # Only ids in the journal can match: records older than its window do not matter.
        since = max(created, time.time() - minutes * 60) - RECORD_MARGIN
        taken = set(self.sent_as) | self._recorded_as_sent(bridge, since)
        found = 0
        for index, (chat, _, part) in enumerate(plan):
            if index in progress.sent:
                continue
            for record in reversed(journal):
                if (record.chat_id == chat and record.text == part
                        and record.timestamp >= created - 2 and record.id_message not in taken):
                    progress.sent[index] = record.id_message
                    taken.add(record.id_message)
                    self._remember(record.id_message, view.id)
                    found += 1
                    break
        progress.uncertain = False
        self.log.info("message.recovered", id=view.id, already_sent=found,
                      to_send=len(plan) - len(progress.sent))
        return True

    def _recorded_as_sent(self, bridge: Backend, since: float) -> set[str]:
        """Green API ids that Kami's done records since ``since`` say items were sent as
        (read backwards from the end of the bridge, stopping at ``since``; one read per
        delivery round serves every item recovered in it)."""
        if self._recorded is not None and self._recorded[0] <= since:
            return self._recorded[1]
        found: set[str] = set()

        def collect(rec: dict[str, Any]) -> bool:
            try:
                if parse_ts(str(rec.get("ts"))) < since:
                    raise _Older
            except ValueError:
                return False
            reason = rec.get("reason")
            if rec.get("t") == "status" and rec.get("from") == self.agent.name and \
                    rec.get("status") == "done" and isinstance(reason, str) and \
                    reason.startswith(SENT_AS):
                found.update(reason.removeprefix(SENT_AS).split(","))
            return False

        try:
            bridge.tail(1, collect)
        except _Older:
            pass
        self._recorded = (since, found)
        return found

    # -- failures ------------------------------------------------------------------------------

    def give_up(self, bridge: Backend, view: MessageView, why: str) -> None:
        """Mark an item failed, say so in the log, /health, and to who should know."""
        try:
            bridge.fail(view.id, reason=why[:300], sender=self.agent.name, force=True)
        except StateConflict as exc:
            self.log.warning("message.fail_conflict", id=view.id, reason=str(exc))
        self.progress.pop(view.id, None)
        self.log.error("message.undeliverable", id=view.id, sender=view.message.sender,
                       reason=why)
        self.agent.record_error(f"{view.id} not delivered: {why}")
        if is_question(view, self.agent.name):
            self._forget_question(bridge, view)
        self.agent.report(f"Kami could not deliver {view.id} (from {view.message.sender}) to "
                          f"WhatsApp: {why}", ref=view.id, author=view.message.sender)

    def _forget_question(self, bridge: Backend, view: MessageView) -> None:
        """A question that could not be delivered is not waiting for an answer."""
        chats, problem = self.targets(view)
        if problem is not None:
            return  # refused before its claim: no record was made
        kept = self._keep_question(bridge, view, chats)
        if kept is None:
            return
        try:
            bridge.cancel(kept, reason="the question was not delivered", sender=self.agent.name)
        except (StateConflict, NotFound):
            pass

    def find_sent(self, bridge: Backend, wa_id: str) -> str | None:
        """The bridge message that was sent as ``wa_id``."""
        if wa_id in self.sent_as:
            return self.sent_as[wa_id]
        # Not remembered (a restart since): the done record's reason names the ids.
        for state in bridge.fold().messages.values():
            if state.status == "done" and state.reason and wa_id in state.reason \
                    and state.reason.startswith(SENT_AS):
                return state.id
        return None

    def handle_status(self, bridge: Backend, view: MessageView) -> None:
        """A ``failed``/``noAccount``/... status came back for something Kami sent."""
        meta = view.message.metadata
        wa_id, status = str(meta.get("wa_id")), str(meta.get("wa_status"))
        chat, detail = str(meta.get("chat")), view.message.content
        ref = self.find_sent(bridge, wa_id)
        if ref is None:
            self.log.warning("whatsapp.status_unknown_message", wa_id=wa_id, status=status,
                             chat=chat)
            self.agent.report(f"A WhatsApp message to {chat} ({wa_id}) was not delivered: "
                              f"{status} ({detail}).", ref=view.id, author=None)
        else:
            original = bridge.get(ref).message
            attempt = int(original.metadata.get("resend", 0) or 0)
            if status == "failed" and attempt < self.settings.resend_failed:
                metadata = {**original.metadata, "resend": attempt + 1, "resend_of": ref,
                            "on_behalf": original.metadata.get("on_behalf") or original.sender}
                copy = bridge.send(original.content, to=self.agent.name, type=original.type,
                                   reply_to=original.reply_to, metadata=metadata,
                                   idempotency_key=f"resend:{wa_id}")
                self.log.warning("message.resend", id=ref, copy=copy.id, wa_id=wa_id,
                                 status=status, attempt=attempt + 1)
            else:
                self.log.error("message.undelivered", id=ref, wa_id=wa_id, chat=chat,
                               status=status, description=detail)
                self.agent.record_error(f"{ref} not delivered to {chat}: {status}")
                self.agent.report(f"WhatsApp did not deliver {ref} to {chat}: {status} "
                                  f"({detail}).", ref=ref, author=original.sender)
        try:
            bridge.done(view.id, sender=self.agent.name)
        except StateConflict:
            return
