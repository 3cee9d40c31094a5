"""Working through the owner's messages: built-in commands, direct routes, the model.

Each inbound record (journaled by :mod:`kami._journal`) is handled once and
then marked done. Everything it causes is a bridge message with an
idempotency key derived from the record's id (``ack:``, ``reply:``,
``route:``...), so handling it again after a crash, before the done record was
written, adds nothing that is already there.

- A built-in command is answered at once (the answer is the acknowledgement);
  ``shutdown all`` first asks for confirmation, and ``health`` and the shutdown
  itself run in the worker thread (network waits must not stall the loop).
- ``/claude …`` and ``/kaylee …`` go straight to that agent.
- Anything else gets an acknowledgement first, then the model decides in the
  worker thread (one at a time, in order): answer, ask Claude Code, or delegate
  to Kaylee. Without a model, to Claude Code, saying why.

A message this process did not journal itself may have been half handled
before a crash: its effects already on the bridge (the thread of replies to
it) are looked at first, so the model is not asked again to decide something
already decided (it might decide otherwise, and both would be acted on).

While PAUSE is set only commands are handled (they are all control commands);
the rest stays pending on the bridge until the resume.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bridge import (
    BridgeError,
    Message,
    MessageView,
    NotFound,
    StateConflict,
    parse_ts,
)

from ._brain import Brain, Decision
from ._commands import Command, parse_answer, parse_command, parse_route
from ._context import Context, Queries
from ._journal import INBOUND, QUESTION, STATUS
from ._outbox import NAMES, ROUND_SECONDS, Outbox
from ._texts import Lang, say

if TYPE_CHECKING:
    from bridge import Backend

__all__ = ["Inbound", "Worker"]

CLOCK_SKEW = 5.0
"""Seconds by which WhatsApp's clock (the owner's message) may lag ours (the question)."""


class Worker:
    """One background thread running jobs in order (model calls, SSH, peer checks)."""

    def __init__(self, on_error: Callable[[BaseException], None]) -> None:
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._on_error = on_error
        self._thread: threading.Thread | None = None

    def submit(self, job: Callable[[], None]) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="kami-worker", daemon=True)
            self._thread.start()
        self._jobs.put(job)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except Exception as exc:  # noqa: BLE001 - reported; the worker must go on
                self._on_error(exc)

    def stop(self, timeout: float = 1.0) -> None:
        """Finish the job in hand if it is quick; a long model call is abandoned (its
        message stays pending and is handled again after the restart)."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join(timeout)


class Inbound:
    """Handles inbound records; see the module docstring."""

    def __init__(self, agent: Context, *, queries: Queries, brain: Brain,
                 outbox: Outbox) -> None:
        self.agent = agent
        self.queries = queries
        self.brain = brain
        self.outbox = outbox
        self.settings = agent.settings
        self.log = agent.log
        self.in_flight: set[str] = set()
        self.handled: set[str] = set()
        """Finished by this process; a round's view read before the done record was
        written must not start it again."""
        self.fresh: set[str] = set()
        """Journaled by this process's receiver: nobody can have started them."""
        self.confirm: dict[str, tuple[float, str]] = {}
        self.questions: list[MessageView] = []
        """Open questions for the owner (kind QUESTION), newest last, as of this round."""
        self.worker = Worker(lambda exc: self.log.error("worker.failed", error=str(exc)))

    # -- the round ------------------------------------------------------------------------------

    def process(self, bridge: Backend, views: list[MessageView], *,
                control_only: bool = False) -> bool:
        did = False
        now = time.time()
        end = time.monotonic() + ROUND_SECONDS
        self.handled.intersection_update(v.id for v in views)
        self.questions = [v for v in views if v.message.metadata.get("kami") == QUESTION
                          and v.message.sender == self.agent.name and v.state.available(now)
                          and v.id not in self.handled]
        for view in views:
            meta = view.message.metadata
            kind = meta.get("kami")
            if view.id in self.in_flight or view.id in self.handled or \
                    view.message.sender != self.agent.name:
                continue
            if view.state.status == "pending" and not view.state.available(now):
                continue  # deferred (not_before) or expired
            if kind == STATUS:
                if not control_only:
                    self.outbox.handle_status(bridge, view)
                    self.handled.add(view.id)
                    did = True
                continue
            if kind != INBOUND:
                continue
            command = parse_command(view.message.content)
            if control_only and command is None:
                continue  # waits for the resume
            did = True
            if command is not None:
                self.command(bridge, view, command)
            else:
                self.message(bridge, view)
            if self.agent.should_stop or time.monotonic() > end:
                break  # the loop comes back at once (did is True): watchdog pings between
        return did

    # -- effects ---------------------------------------------------------------------------------

    @staticmethod
    def lang(view: MessageView) -> Lang:
        return "en" if view.message.metadata.get("lang") == "en" else "he"

    def reply(self, bridge: Backend, view: MessageView, text: str, key: str, *,
              control: bool = False) -> None:
        """Something Kami says to the chat the message came from, once per ``key``."""
        metadata: dict[str, Any] = {"whatsapp_sender": view.message.metadata["whatsapp_sender"]}
        if control:
            # Delivered while paused, and before what waited for a resume.
            metadata["control"] = True
        bridge.send(text, to=self.agent.name, type="response", reply_to=view.id,
                    priority="high" if control else None, metadata=metadata,
                    idempotency_key=f"{key}:{view.id}")

    def finish(self, bridge: Backend, view: MessageView, reason: str | None = None) -> None:
        self.handled.add(view.id)  # before in_flight is left (see process)
        self.fresh.discard(view.id)
        try:
            bridge.done(view.id, reason=reason, sender=self.agent.name)
        except StateConflict:
            return  # already finished (handled again after a crash)
        self.agent.activity()

    def effects(self, bridge: Backend, view: MessageView) -> dict[str, Message]:
        """What handling ``view`` already put on the bridge, by idempotency-key prefix."""
        # The thread holds every answer (transitively); the key's suffix picks ours.
        messages = [v.message for v in bridge.thread(view.id) if v.id != view.id]
        suffix = f":{view.id}"
        return {m.idempotency_key.removesuffix(suffix): m for m in messages
                if m.sender == self.agent.name and m.idempotency_key
                and m.idempotency_key.endswith(suffix)}

    def _told(self, view: MessageView, to: str | None, task: str | None,
              note: str | None = None) -> str:
        """What the owner is told about a message passed on to ``to``."""
        lang = self.lang(view)
        if to == self.settings.kaylee:
            told = say("delegated", lang, task=task or view.message.content[:80])
        else:
            told = say("forwarded", lang)
        return f"{told}\n{note}" if note else told

    def route(self, bridge: Backend, view: MessageView, decision: Decision) -> None:
        lang = self.lang(view)
        meta = view.message.metadata
        note = say(decision.note, lang, detail=decision.note_detail) if decision.note else None
        if decision.action == "answer":
            self.reply(bridge, view, decision.text, "route")
        else:
            to = self.settings.claude if decision.action == "claude" else self.settings.kaylee
            metadata: dict[str, Any] = {"whatsapp_sender": meta["whatsapp_sender"],
                                        "wa_id": meta.get("wa_id"), "kami_inbound": view.id}
            if decision.summary and decision.summary != decision.text:
                metadata["summary"] = decision.summary[:2000]
            if decision.task:
                metadata["task"] = decision.task
            # One append for both, the owner's note first: an agent that answers at once
            # cannot overtake it, and a crash cannot leave one without the other.
            _, sent = bridge.send_many([
                {"content": self._told(view, to, decision.task, note), "to": self.agent.name,
                 "type": "response", "reply_to": view.id,
                 "metadata": {"whatsapp_sender": meta["whatsapp_sender"]},
                 "idempotency_key": f"routed:{view.id}"},
                {"content": decision.text, "to": to, "type": "request", "reply_to": view.id,
                 "metadata": metadata, "idempotency_key": f"route:{view.id}"}])
            self.log.info("message.forwarded", id=view.id, to=to, request=sent.id,
                          duplicate=sent.duplicate)
        self.log.info("message.routed", id=view.id, action=decision.action,
                      model_route=decision.route, offline=decision.note)

    # -- messages -------------------------------------------------------------------------------

    def message(self, bridge: Backend, view: MessageView) -> None:
        if view.id not in self.fresh:
            done = self.effects(bridge, view)
            if "route" in done:
                # Decided before a crash: finish what that decision began.
                route = done["route"]
                if route.type == "request" and "routed" not in done:
                    self.reply(bridge, view, self._told(view, route.to,
                                                        route.metadata.get("task")), "routed")
                self.log.info("message.resumed", id=view.id, route=route.id)
                self.finish(bridge, view)
                return
        text = view.message.content
        verdict = parse_answer(text)
        if verdict is not None and self.answer_question(bridge, view, verdict):
            return
        direct = parse_route(text)
        if direct is not None:
            if not direct.text:
                self.reply(bridge, view, say("help", self.lang(view)), "reply")
            else:
                self.route(bridge, view, Decision("claude" if direct.to == "claude" else "kaylee",
                                                  direct.text, task=direct.task))
            self.finish(bridge, view)
            return
        if not self.brain.online:
            self.route(bridge, view, Decision("claude", text, note="offline_no_model"))
            self.finish(bridge, view)
            return
        self.reply(bridge, view, say("ack", self.lang(view)), "ack")
        self.in_flight.add(view.id)
        self.worker.submit(lambda: self._think(view))

    def _think(self, view: MessageView) -> None:
        """In the worker: ask the model, then act on its decision."""
        meta = view.message.metadata
        try:
            decision = self.brain.decide(view.message.content, self.lang(view),
                                         sender_name=str(meta.get("sender_name", "")),
                                         quoted=meta.get("quoted"))
            bridge = self.agent.bridge
            if bridge is None:
                return  # stays pending: handled again once the bridge is back
            self.route(bridge, view, decision)
            self.finish(bridge, view)
        except (BridgeError, OSError) as exc:
            self.log.warning("message.deferred", id=view.id, error=str(exc))
        except Exception as exc:
            self.log.exception("message.failed", id=view.id)
            bridge = self.agent.bridge
            if bridge is not None:
                self.reply(bridge, view, say("failed", self.lang(view),
                                             detail=f"{type(exc).__name__}: {exc}"[:200]),
                           "failed")
                self.finish(bridge, view, reason=f"failed: {type(exc).__name__}")
        finally:
            self.in_flight.discard(view.id)
            self.agent.wake_up()

    def _in_worker(self, view: MessageView, job: Callable[[Backend], None]) -> None:
        """Run ``job`` in the worker thread, then finish the message."""
        self.in_flight.add(view.id)

        def run() -> None:
            try:
                bridge = self.agent.bridge
                if bridge is None:
                    return
                job(bridge)
                self.finish(bridge, view)
            except (BridgeError, OSError) as exc:
                self.log.warning("command.deferred", id=view.id, error=str(exc))
            finally:
                self.in_flight.discard(view.id)
                self.agent.wake_up()

        self.worker.submit(run)

    # -- questions for the owner ----------------------------------------------------------------

    def answer_question(self, bridge: Backend, view: MessageView, yes: bool, *,
                        control: bool = False) -> bool:
        """The owner's yes or no answers an open question for their chat: the one their
        WhatsApp reply quotes, else the newest asked before they wrote. A response to the
        asker (``confirmed``: true or false) and the owner's receipt go in one append; then
        the question is closed. False if no question fits (the message is then handled as
        usual). The append is keyed to the owner's message, so a crash midway finishes the
        answer instead of repeating it or passing "yes" to the model."""
        earlier = self.effects(bridge, view).get("answered")
        if earlier is not None:  # answered before a crash: close the question, then finish
            self._close_question(bridge, str(earlier.metadata.get("question", "")), yes)
            self.finish(bridge, view)
            return True
        question = self._question_for(bridge, view)
        if question is None:
            return False
        chat = view.message.metadata.get("whatsapp_sender")
        meta = question.message.metadata
        asker, asked = str(meta.get("asker", "")), str(meta.get("question", ""))
        about = str(meta.get("about") or question.message.content[:80])
        receipt = say("answered_yes" if yes else "answered_no", self.lang(view),
                      asker=NAMES.get(asker, asker.capitalize()), what=about)
        told: dict[str, Any] = {"whatsapp_sender": chat, "question": question.id}
        if control:
            told["control"] = True  # a command's answer goes out while paused, like the rest
        list(bridge.send_many([  # a generator: list() makes it append
            {"content": "yes" if yes else "no", "to": asker, "type": "response",
             "reply_to": asked, "metadata": {"confirmed": yes, "whatsapp_sender": chat},
             "idempotency_key": f"confirmation:{view.id}"},
            {"content": receipt, "to": self.agent.name, "type": "response",
             "reply_to": view.id, "priority": "high" if control else None,
             "metadata": told, "idempotency_key": f"answered:{view.id}"}]))
        self._close_question(bridge, question.id, yes)
        self.log.info("question.answered", id=asked, asker=asker, confirmed=yes,
                      message=view.id)
        self.finish(bridge, view)
        return True

    def _question_for(self, bridge: Backend, view: MessageView) -> MessageView | None:
        """The open question the owner's message answers, if any (see answer_question).
        Questions whose task ended meanwhile (cancelled, failed) are closed on the way."""
        meta = view.message.metadata
        chat = meta.get("whatsapp_sender")
        waiting = [q for q in self.questions
                   if chat in (q.message.metadata.get("chats") or [chat])]
        quoted = meta.get("quoted_id")
        if isinstance(quoted, str) and quoted:
            target = self.outbox.find_sent(bridge, quoted)
            waiting = [q for q in waiting if q.message.metadata.get("question") == target]
        else:
            wa_ts = meta.get("wa_ts")
            said = float(wa_ts) if isinstance(wa_ts, int) and wa_ts > 0 \
                else parse_ts(view.message.ts)
            # Written before the question reached the phone: about something else.
            waiting = [q for q in waiting if parse_ts(q.message.ts) <= said + CLOCK_SKEW]
        for question in reversed(waiting):
            task = question.message.metadata.get("task")
            if isinstance(task, str) and task:
                try:
                    state = bridge.get(task).state
                    ended = state.status if state.terminal else None
                except NotFound:
                    ended = "archived"
                if ended is not None:
                    self._close_question(bridge, question.id, None, why=f"its task is {ended}")
                    continue
            return question
        return None

    def _close_question(self, bridge: Backend, question_id: str, yes: bool | None, *,
                        why: str | None = None) -> None:
        self.questions = [q for q in self.questions if q.id != question_id]
        self.handled.add(question_id)
        try:
            bridge.done(question_id, reason=why or f"answered {'yes' if yes else 'no'}",
                        sender=self.agent.name)
        except (StateConflict, NotFound):
            pass  # expired or closed meanwhile: the asker decides what a late answer means

    # -- commands -------------------------------------------------------------------------------

    def command(self, bridge: Backend, view: MessageView, command: Command) -> None:
        lang = self.lang(view)
        chat = str(view.message.metadata["whatsapp_sender"])
        self.log.info("command", id=view.id, command=command.name, chat=chat)

        def answer(text: str, key: str = "reply") -> None:
            self.reply(bridge, view, text, key, control=True)

        if command.name == "help":
            answer(say("help", lang))
        elif command.name == "status":
            answer(self.queries.status_text(lang))
        elif command.name == "health":
            self._in_worker(view, lambda b: self.reply(b, view, self.queries.health_text(lang),
                                                       "reply", control=True))
            return
        elif command.name == "pause":
            info = bridge.paused()
            if info is not None:
                answer(say("already_paused", lang, who=info.by or "?"))
            else:
                bridge.pause(command.argument or "paused from WhatsApp", by="owner")
                answer(say("paused", lang))
        elif command.name == "resume":
            answer(say("resumed" if bridge.resume(by="owner") else "not_paused", lang))
        elif command.name == "shutdown":
            targets = [f"{a}@{t.host}" for t in self.settings.shutdown for a in t.agents]
            if not targets:
                answer(say("shutdown_none", lang))
            else:
                self.confirm[chat] = (time.monotonic() + self.settings.confirm_window, view.id)
                answer(say("shutdown_ask", lang, targets=", ".join(targets),
                           minutes=max(1, round(self.settings.confirm_window / 60))))
        elif command.name in ("confirm", "cancel"):
            pending = self.confirm.pop(chat, None)
            if pending is None or pending[0] < time.monotonic():
                if self.answer_question(bridge, view, command.name == "confirm",
                                        control=True):
                    return
                answer(say("nothing_to_confirm", lang))
            elif command.name == "cancel":
                answer(say("cancelled", lang))
            else:
                answer(say("shutdown_running", lang), "ack")
                self._in_worker(view, lambda b: self.reply(
                    b, view, say("shutdown_done", lang, lines=self.queries.shutdown_all()),
                    "result", control=True))
                return
        self.finish(bridge, view)
