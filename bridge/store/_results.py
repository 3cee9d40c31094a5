"""What the operations return, the same from every backend: results, views, summaries."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from .._errors import InvalidInput
from ..format import Message
from ._fold import MessageState
from ._pause import PauseInfo

__all__ = ["DEFAULT_LEASE", "DEFAULT_OLDER_THAN", "BridgeStatus", "History", "MessageView",
           "SendResult", "StatusShortcuts"]

log = logging.getLogger("bridge")

DEFAULT_LEASE = 300.0
"""Seconds a claim holds a message before another worker may take it."""

DEFAULT_OLDER_THAN = 30 * 86400.0
"""Rotation's default age: finished messages untouched for 30 days are archived."""


class SendResult(NamedTuple):
    """The id of an appended message (or of the original, for a repeated idempotency key)."""

    id: str
    offset: int
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class MessageView:
    """A message's record together with its folded state."""

    message: Message
    state: MessageState

    @property
    def id(self) -> str:
        return self.message.id

    def status(self, now: float | None = None) -> str:
        """The effective status now (``expired`` for an open message past expiry)."""
        return self.state.effective_status(time.time() if now is None else now)


@dataclass(frozen=True)
class History:
    """Everything about one message: itself, its status records, its thread."""

    view: MessageView
    changes: list[dict[str, Any]]
    thread: list[MessageView]
    archive: Path | None = None
    """The archive the message was found in (None: the live file)."""


@dataclass(frozen=True)
class BridgeStatus:
    """A summary for ``bridge status``."""

    directory: Path
    paused: PauseInfo | None
    counts: dict[str, int]
    size: int
    records: int
    bad_lines: int
    last_activity: str | None
    epoch: str | None
    durability: str
    filesystem: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class StatusShortcuts:
    """``done``/``fail``/``cancel`` in terms of ``set_status``, and the audit note of a
    control change in terms of ``event``, for every kind of bridge."""

    def set_status(self, ref: str, status: str, *, reason: str | None = None,
                   sender: str | None = None, force: bool = False) -> str:
        raise NotImplementedError

    def event(self, name: str, **fields: Any) -> None:
        raise NotImplementedError

    def _audit(self, name: str, **fields: Any) -> None:
        # The control change (PAUSE) has already taken effect; a failure to note it in
        # the log must not undo it.
        try:
            self.event(name, **{k: v for k, v in fields.items() if v is not None})
        except (OSError, InvalidInput) as exc:
            log.warning("could not record %s event in the log: %s", name, exc)

    def done(self, ref: str, **kw: Any) -> str:
        """Mark ``ref`` done."""
        return self.set_status(ref, "done", **kw)

    def fail(self, ref: str, reason: str | None = None, **kw: Any) -> str:
        """Mark ``ref`` failed, with a reason."""
        return self.set_status(ref, "failed", reason=reason, **kw)

    def cancel(self, ref: str, reason: str | None = None, **kw: Any) -> str:
        """Cancel ``ref`` (allowed even while another agent holds it)."""
        return self.set_status(ref, "cancelled", reason=reason, **kw)
