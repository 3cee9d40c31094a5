"""A task's outcome, how it is written on the bridge, and the outbox that keeps it.

Every finished task appends its outcome addressed to whoever asked:

====================  =========================================================
kind                  on the bridge
====================  =========================================================
``done``              a ``response`` with the result and ``done``, in one write
``failed``            a ``response`` with the reason, then ``failed``
``refused``           the same (a request that was never run)
``interrupted``       the same: Kaylee stopped while a non-idempotent recipe ran
``dead``              a ``response``, then ``dead``: retries are used up
``retry``             a hand-back (``pending``, ``not_before``) with the reason
``handback``          a hand-back: Kaylee is stopping, an idempotent task runs again
``note``              only a notification to the owner (an alert, a disabled job)
====================  =========================================================

Failures are also told to the owner (unless the request came from the owner's
own agent, whose answer already reaches the owner). Each part is written with
an idempotency key or is harmless to repeat, and the parts already written are
remembered, so an outcome can be posted again after any failure without being
written twice. While the bridge is away, outcomes wait in memory and in
``<state>/outbox/<task>.json`` (0600) and are appended when it returns, also
after a restart.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from bridge import BridgeError, InvalidInput, NotFound, StateConflict
from bridge.store import Perms, atomic_write

if TYPE_CHECKING:
    from bridge import Backend
    from bridge.runtime import AgentLogger

    from ._owner import Owner

__all__ = ["Outbox", "Outcome", "post"]

FINAL = {"done": "done", "failed": "failed", "refused": "failed", "interrupted": "failed",
         "dead": "dead"}
ICON = {"done": "✅", "failed": "❌", "refused": "⛔", "interrupted": "⚠️", "dead": "☠️"}
INHERITED = ("whatsapp_sender", "chat_id", "context")
"""Metadata a response copies from the request (so Kami knows the chat), as reply() does."""


@dataclass
class Outcome:
    """What to write about one task (or, for ``note``, to tell the owner)."""

    kind: str
    task: str
    requester: str
    what: str
    text: str
    attempt: int = 0
    attempts: int = 1
    output: str | None = None
    output_file: str | None = None
    owner_text: str | None = None
    delay: float | None = None
    data: dict[str, Any] = field(default_factory=dict)
    inherit: dict[str, Any] = field(default_factory=dict)
    recipe: str | None = None
    job: str | None = None
    tell_owner: bool = False
    key: str | None = None
    """The idempotency key of a progress line or a note (each is written once)."""
    done_parts: list[str] = field(default_factory=list)
    response_id: str | None = None
    after_post: Callable[[], None] | None = None

    @property
    def reason(self) -> str:
        """The status record's reason: the text's first line, shortened."""
        first = self.text.strip().splitlines()[0] if self.text.strip() else self.kind
        return first[:500]

    def content(self) -> str:
        """The response's text."""
        if self.kind == "done":
            head = f"{ICON['done']} {self.what}: {self.text}"
        elif self.kind == "refused":
            head = f"{ICON['refused']} refused {self.what!r}: {self.text}"
        elif self.kind == "dead":
            head = (f"{ICON['dead']} {self.what}: gave up after {self.attempt} attempt(s): "
                    f"{self.text}")
        elif self.kind == "interrupted":
            head = f"{ICON['interrupted']} {self.what} was interrupted: {self.text}"
        else:
            head = f"{ICON['failed']} {self.what} failed: {self.text}"
        if self.output:
            head += f"\n\n{self.output}"
        if self.output_file and self.kind != "done":
            head += f"\n\n(whole output: {self.output_file} on Kaylee's host)"
        return head

    def owner_message(self) -> str:
        who = "" if self.job is None else f" (job {self.job})"
        return f"Kaylee{who}: {self.content().split(chr(10) + chr(10))[0]}"

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"kaylee": "outcome", "outcome": self.kind,
                                "attempt": self.attempt}
        if self.recipe:
            meta["recipe"] = self.recipe
        if self.job:
            meta["job"] = self.job
        if self.output_file:
            meta["output_file"] = self.output_file
        meta.update(self.data)
        return meta

    def parts(self, me: str, owner_agent: str) -> list[str]:
        """The writes this outcome needs, in order."""
        if self.kind == "note":
            return ["owner"]
        if self.kind == "progress":
            return [] if self.requester == me else ["progress"]
        if self.kind in ("retry", "handback"):
            out = ["release"]
            if self.kind == "retry" and self.requester != me:
                out.append("progress")
            return out
        out = ["reply"] if self.kind == "done" else ["response", "status"]
        if self.requester == me:
            out.append("ack")  # the run's record is complete; nobody else reads it
        if self.tell_owner and self.kind != "done" and self.requester != owner_agent:
            out.append("owner")
        if self.owner_text:
            out.append("owner_text")
        return out

    def to_json(self) -> bytes:
        data = asdict(self)
        data.pop("after_post", None)
        return orjson.dumps(data)

    @classmethod
    def from_json(cls, raw: bytes) -> Outcome:
        data = orjson.loads(raw)
        data.pop("after_post", None)
        return cls(**data)


def post(outcome: Outcome, bridge: Backend, owner: Owner, me: str, log: AgentLogger) -> None:
    """Write every part of ``outcome`` not written yet.

    A part the message's state makes moot (it was cancelled meanwhile, or is
    gone) counts as written. Raises the bridge's error when it is away; the
    parts done so far are in ``outcome.done_parts``.
    """
    for part in outcome.parts(me, owner.config.agent):
        if part in outcome.done_parts:
            continue
        try:
            _write(part, outcome, bridge, owner, me)
        except (StateConflict, NotFound) as exc:
            log.warning("outcome.moot", task=outcome.task, part=part, reason=str(exc))
        except InvalidInput as exc:
            # A bug or an oversized record: it will never succeed; say so and go on.
            log.error("outcome.rejected", task=outcome.task, part=part, error=str(exc))
        outcome.done_parts.append(part)


def _write(part: str, o: Outcome, bridge: Backend, owner: Owner, me: str) -> None:
    key = f"kaylee:{part}:{o.task}:{o.attempt}"
    if part == "reply":
        o.response_id = bridge.reply(o.task, o.content(), metadata={**o.metadata()}).id
    elif part == "response":
        o.response_id = bridge.send(o.content(), to=o.requester, type="response",
                                    reply_to=o.task, metadata={**o.inherit, **o.metadata()},
                                    idempotency_key=key).id
    elif part == "status":
        bridge.set_status(o.task, FINAL[o.kind], reason=o.reason)
    elif part == "ack":
        if o.response_id is not None:
            bridge.done(o.response_id, reason="recorded by kaylee")
    elif part == "release":
        bridge.release(o.task, delay=o.delay, reason=o.reason)
    elif part == "progress":
        icon = "🔁" if o.kind == "retry" else "⏳"
        bridge.send(f"{icon} {o.what}: {o.text}", to=o.requester, type="notification",
                    reply_to=o.task, metadata={**o.inherit, "kaylee": "progress"},
                    idempotency_key=o.key or key)
    elif part == "owner":
        if o.kind == "note":  # ``what`` is the note's kind: alert, job-disabled
            owner.tell(o.text, o.what, key=o.key or key)
        else:
            owner.tell(o.owner_message(), "failure", key=key, task=o.task)
    elif part == "owner_text":
        owner.tell(o.owner_text or "", o.recipe or "report", key=key, task=o.task)


class Outbox:
    """Outcomes that could not be appended yet, one file each, in the order they came."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, outcome: Outcome) -> Path:
        name = (outcome.key or outcome.task).replace("/", "_")
        return self.directory / f"{name}.{outcome.kind}.json"

    def keep(self, outcome: Outcome) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(self._path(outcome), outcome.to_json(), Perms())

    def drop(self, outcome: Outcome) -> None:
        try:
            self._path(outcome).unlink()
        except FileNotFoundError:
            pass

    def load(self, log: AgentLogger) -> list[Outcome]:
        try:
            names = sorted(os.listdir(self.directory),
                           key=lambda n: (self.directory / n).stat().st_mtime_ns)
        except FileNotFoundError:
            return []
        out = []
        for name in names:
            if not name.endswith(".json"):
                continue
            path = self.directory / name
            try:
                out.append(Outcome.from_json(path.read_bytes()))
            except (OSError, orjson.JSONDecodeError, TypeError) as exc:
                log.error("outbox.unreadable", file=str(path), error=str(exc))
        return out


def is_bridge_down(exc: BaseException) -> bool:
    """An error that means "try again when the bridge is back" (not a refusal)."""
    return isinstance(exc, OSError | BridgeError) and not isinstance(
        exc, StateConflict | NotFound | InvalidInput)
