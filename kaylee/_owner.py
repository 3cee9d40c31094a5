"""Telling the owner: through Kami on the bridge, or directly when Kami is down.

The usual way is a ``notification`` to the owner's agent (``owner.agent``,
Kami) carrying ``whatsapp_sender`` = the owner's chat: Kami forwards it to
WhatsApp like any message for that chat. When Kami is known to be down (its
``/health`` per the last peer check, or a check made now when that one is
older than a minute) the text goes through the *direct* channel instead — the
Green API sink, so an alert about Kami itself still reaches the phone. When
that is not configured, the notification still goes on the bridge: Kami reads
it when it is back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bridge import BridgeError, BridgeUnavailable
from bridge.runtime import BAD_STATES, PeerResult, check_peer

if TYPE_CHECKING:
    from bridge import Backend
    from bridge.runtime import AgentLogger, PeerConfig, PeerMonitor

    from ._config import OwnerConfig

__all__ = ["DirectChannel", "Owner"]

DirectChannel = Callable[[str, dict[str, Any]], object]
"""Sends a text straight to the owner's phone (``text``, ``metadata``)."""

FRESH = 60.0
"""A peer check younger than this (seconds) is trusted for "is Kami up?"."""


class Owner:
    """Sends the owner a text by the best way available now."""

    def __init__(
        self,
        config: OwnerConfig,
        *,
        chat: str | None = None,
        bridge: Callable[[], Backend | None],
        log: AgentLogger,
        direct: DirectChannel | None = None,
        peer: PeerConfig | None = None,
        monitor: Callable[[], PeerMonitor | None] = lambda: None,
        peer_timeout: float = 5.0,
    ) -> None:
        self.config = config
        self.chat = chat if chat is not None else config.chat
        self.bridge = bridge
        self.log = log
        self.direct = direct
        self.peer = peer
        self.monitor = monitor
        self.peer_timeout = peer_timeout
        self._checked: tuple[float, str] | None = None

    def agent_state(self) -> str | None:
        """The owner's agent's health (``ok``, ``down``...), None when it is not a peer."""
        if self.peer is None:
            return None
        now = time.monotonic()
        monitor = self.monitor()
        last = monitor.last.get(self.peer.name) if monitor is not None else None
        if last is not None and _age(last) < FRESH:
            return last.state
        if self._checked is not None and now - self._checked[0] < FRESH:
            return self._checked[1]
        import httpx

        with httpx.Client() as client:
            result = check_peer(client, self.peer.name, self.peer.url,
                                token=self.peer.token.reveal() if self.peer.token else None,
                                timeout=self.peer_timeout, slow=self.peer_timeout)
        self._checked = (now, result.state)
        return result.state

    def tell(self, text: str, kind: str, *, key: str | None = None,
             task: str | None = None) -> str:
        """Send ``text``; returns the way it went: ``bridge`` or ``direct``.

        Raises the bridge's error when neither way worked (the caller keeps the
        notification and tries again later).
        """
        meta: dict[str, Any] = {"kaylee": kind}
        if task is not None:
            meta["task"] = task
        if self.chat:
            meta["whatsapp_sender"] = self.chat
        state = self.agent_state()
        tried_direct = False
        if state in BAD_STATES and self.direct is not None:
            tried_direct = True
            if self._direct(text, meta, kind, state):
                return "direct"
        try:
            bridge = self.bridge()
            if bridge is None:
                raise BridgeUnavailable("the bridge is unreachable")
            bridge.send(text, to=self.config.agent, type="notification", metadata=meta,
                        idempotency_key=key)
        except (BridgeError, OSError) as exc:
            # The bridge is down: Kami cannot read it either, so the phone directly.
            if not tried_direct and self.direct is not None and self._direct(
                    text, meta, kind, f"bridge: {exc}"):
                return "direct"
            raise
        self.log.info("owner.told", kind=kind, via="bridge", agent_state=state)
        return "bridge"

    def _direct(self, text: str, meta: dict[str, Any], kind: str, why: str | None) -> bool:
        if self.direct is None:
            return False
        try:
            self.direct(text, meta)
        except Exception as exc:  # noqa: BLE001 - any failure of the channel: try the bridge
            self.log.error("owner.direct_failed", kind=kind, error=str(exc))
            return False
        self.log.info("owner.told", kind=kind, via="direct", because=why)
        return True

def _age(result: PeerResult) -> float:
    from bridge.format import parse_ts

    try:
        return time.time() - parse_ts(result.checked)
    except ValueError:
        return float("inf")
