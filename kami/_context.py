"""What Kami's parts need of the agent that runs them, and nothing more.

:class:`~kami._agent.KamiAgent` builds the outbox, the inbound handler, the
journal and the receiver; each gets the agent back typed as one of the
protocols below, never as the agent itself, so none of them imports
:mod:`kami._agent` and each can be driven by a small stand-in. What a part
needs that never changes once the agent is built (the Green API clients, the
brain, the outbox, the receive lock) it is handed in its constructor instead.

- :class:`Reporter`: where the parts say what they see (the conditions behind
  /health, errors, counts, reports to ``report_to``); any thread may call it.
- :class:`Context`: a reporter that is also the running agent: its name and
  settings, its logger, the bridge (None while unreachable), stop and wake.
- :class:`Queries`: what the owner's built-in commands ask of the agent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from bridge.runtime import AgentLogger
from bridge.runtime.greenapi import GreenApiError

from ._config import KamiSettings
from ._texts import Lang

if TYPE_CHECKING:
    from bridge import Backend

__all__ = ["Context", "Queries", "Reporter"]


class Reporter(Protocol):
    """Health and conditions, from any thread (the agent turns them into /health and logs)."""

    @property
    def green_blocked(self) -> str | None:
        """Why Green API refused the credentials (set by :meth:`on_auth_error`), or None."""
        ...

    def set_condition(self, key: str, reason: str | None) -> None:
        """Raise (a reason) or clear (None) one reason for being degraded."""
        ...

    def record_error(self, message: str) -> None: ...

    def activity(self, processed: int = 1) -> None: ...

    def on_auth_error(self, exc: GreenApiError) -> None: ...

    def on_green_down(self, where: str, exc: GreenApiError) -> None: ...

    def on_green_ok(self, where: str) -> None: ...

    def on_held(self, reason: str | None) -> None:
        """Notifications wait in Green API's queue for ``reason`` (None: they flow)."""
        ...

    def on_instance_state(self, state: str | None) -> None: ...

    def on_quota(self, detail: str) -> None: ...

    def received(self, timestamp: int) -> None:
        """One owner's message was journaled."""
        ...

    def sent(self, count: int) -> None:
        """``count`` WhatsApp messages were accepted by Green API."""
        ...

    def report(self, text: str, *, ref: str | None, author: str | None) -> None:
        """Tell ``report_to`` (and ``author``) on the bridge."""
        ...


class Context(Reporter, Protocol):
    """The running agent, as its parts see it."""

    @property
    def name(self) -> str: ...

    @property
    def settings(self) -> KamiSettings: ...

    @property
    def log(self) -> AgentLogger: ...

    @property
    def bridge(self) -> Backend | None:
        """The open bridge; None while it is unreachable (the runtime reopens it)."""
        ...

    @property
    def should_stop(self) -> bool: ...

    def wake_up(self) -> None:
        """Make the loop look for work now."""
        ...


class Queries(Protocol):
    """What the owner's built-in commands ask of the agent (the last two run in the
    worker thread: they wait on the network)."""

    def status_text(self, lang: Lang) -> str: ...

    def health_text(self, lang: Lang) -> str: ...

    def shutdown_all(self) -> str: ...
