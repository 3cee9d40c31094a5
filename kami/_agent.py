"""Kami: the WhatsApp agent, on the runtime every agent shares.

Threads, and what each may touch:

- the runtime's loop (``step``/``step_paused``): delivery (:mod:`kami._outbox`)
  and the owner's messages (:mod:`kami._inbound`), one bridge inbox read per round;
- the receiver (:mod:`kami._receiver`): notifications → the bridge, then acknowledged;
- the worker (:class:`kami._inbound.Worker`): model calls, SSH, peer checks;
- the runtime's /health and peer-check threads.

They share the bridge object (thread-safe) and report their state through the
small methods in "conditions" below, which feed /health and the logs. Each part
sees the agent only as the protocols of :mod:`kami._context` describe it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from bridge import BridgeError, BridgeUnavailable, __version__
from bridge.format import format_ts
from bridge.runtime import (
    Agent,
    Alert,
    AlertSink,
    BridgeSink,
    Ledger,
    ModelRouter,
    RemoteHost,
    check_peer,
    ctl,
)
from bridge.runtime import notify as sd_notify
from bridge.runtime.greenapi import GreenApiError, GreenApiSink

from ._brain import Brain
from ._config import KamiConfig
from ._inbound import Inbound
from ._journal import Journal
from ._outbox import Outbox
from ._receiver import Poller, WebhookServer
from ._texts import LABELS, Lang, say

__all__ = ["KamiAgent"]

SEND_TIMEOUT = 10.0
"""Seconds one send may take in the loop: with one retry a hung Green API costs the loop
about 20 s, inside systemd's 30 s watchdog."""

QUOTA_TELL_EVERY = 3600.0


def _import_model_sdk() -> None:
    import anthropic  # noqa: F401


class KamiAgent(Agent):
    """The WhatsApp agent. ``transport`` reaches Green API in tests (default: the network)."""

    name = "kami"

    def __init__(self, config: KamiConfig, *, notify: Callable[[str], bool] = sd_notify,
                 clock: Callable[[], float] = time.monotonic,
                 transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(config, notify=notify, clock=clock)
        self.kami_config = config
        self.settings = config.kami
        self.default_language: Lang = "en" if config.kami.language == "en" else "he"
        self.notify_chats = config.kami.notify or config.kami.owners[:1]
        # Two clients: the loop's sends are kept short (the watchdog), the receiver's
        # long-polls and retries are not.
        self.client = config.kami.client(timeout=min(config.kami.timeout, SEND_TIMEOUT),
                                         retries=1, transport=transport)
        self.receive_client = config.kami.client(transport=transport)
        self.router: ModelRouter | None = None
        if config.models.route:
            ledger = config.models.ledger or config.kami.state_path("model-ledger.json")
            self.router = ModelRouter(config.models, ledger=Ledger.load(ledger))
        self.brain = Brain(self.router, max_input=config.kami.max_model_input)
        self.receive_lock = threading.Lock()
        # Each part gets the agent as the protocols of kami._context say it is.
        self.outbox = Outbox(self, client=self.client, notify_chats=self.notify_chats)
        self.inbound = Inbound(self, queries=self, brain=self.brain, outbox=self.outbox)
        self.journal = Journal(self, default_language=self.default_language,
                               on_journaled=self.inbound.fresh.add)
        self.receiver: Poller | WebhookServer | None = None
        self.green_blocked: str | None = None
        self._conditions: dict[str, str] = {}
        self._cond_lock = threading.Lock()
        self._wa: dict[str, Any] = {"state": None, "received": 0, "sent": 0,
                                    "lastReceived": None, "lastSent": None, "held": None}
        self._quota_told = 0.0
        self._timer: threading.Timer | None = None
        self._timer_at = 0.0

    # -- lifecycle -----------------------------------------------------------------------------

    def setup(self) -> None:
        if self.receiver is not None:
            return  # the bridge was reopened: the receiver is already running
        if self.settings.receive == "webhook":
            try:
                self.receiver = WebhookServer(self, journal=self.journal,
                                              lock=self.receive_lock)
            except BridgeUnavailable as exc:
                # Deliveries still work; /health says why nothing comes in.
                self.log.error("webhook.bind_failed", error=str(exc))
                self.record_error(str(exc))
                self.set_condition("receive", str(exc))
                return
        else:
            self.receiver = Poller(self, journal=self.journal, client=self.receive_client,
                                   lock=self.receive_lock)
        self.receiver.start()
        if self.brain.online:
            # The SDK's first import takes seconds: pay it now, not on the first message.
            self.inbound.worker.submit(_import_model_sdk)
        self.log.info("kami.ready", receive=self.settings.receive,
                      model="on" if self.brain.online else "off",
                      routes=[r.name for r in self.kami_config.models.route],
                      owners=len(self.settings.owners))

    def step(self) -> bool:
        return self._round(control_only=False)

    def step_paused(self) -> bool:
        return self._round(control_only=True)

    def _round(self, *, control_only: bool) -> bool:
        bridge = self.bridge
        if bridge is None:  # the runtime calls a step only with a bridge open
            return False
        views = bridge.inbox(self.name, include_claimed=True)
        deliveries = [v for v in views if self.outbox.deliverable(v)]
        inbound = [v for v in views if not self.outbox.deliverable(v)]
        did = self.outbox.deliver(bridge, deliveries, control_only=control_only)
        did = self.inbound.process(bridge, inbound, control_only=control_only) or did
        self._wake_at(self.outbox.next_due())
        return did

    def _wake_at(self, due: float | None) -> None:
        """Wake the loop when a waiting delivery may be tried again."""
        if due is None:
            return
        if self._timer is not None and self._timer.is_alive() and self._timer_at <= due:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = due
        self._timer = threading.Timer(max(0.0, due - time.monotonic()) + 0.01, self.wake_up)
        self._timer.daemon = True
        self._timer.start()

    def teardown(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.receiver is not None:
            self.receiver.stop()
        self.inbound.worker.stop()
        self.client.close()
        self.receive_client.close()
        if self.router is not None:
            self.router.close()

    # -- conditions (any thread) ---------------------------------------------------------------

    def set_condition(self, key: str, reason: str | None) -> None:
        """Raise or clear one reason for being degraded (logged on change)."""
        with self._cond_lock:
            before = self._conditions.get(key)
            if reason is None:
                self._conditions.pop(key, None)
            else:
                self._conditions[key] = reason
            summary = "; ".join(self._conditions.values()) or None
        if before != reason:
            if reason is None:
                self.log.info("kami.recovered", condition=key)
            else:
                self.log.warning("kami.degraded", condition=key, reason=reason)
        self.degraded(summary)

    def on_auth_error(self, exc: GreenApiError) -> None:
        """401/403: a configuration problem. Stop talking to Green API; keep everything."""
        if self.green_blocked is None:
            self.green_blocked = str(exc)
            self.log.error("greenapi.auth_failed", error=str(exc),
                           hint="fix the credential or kami.id_instance, then restart kami")
            self.record_error(str(exc))
        self.set_condition("greenapi", str(exc))

    def on_green_down(self, where: str, exc: GreenApiError) -> None:
        if self.green_blocked is None:
            self.set_condition("greenapi", f"Green API {where} failing: {exc}")

    def on_green_ok(self, where: str) -> None:
        if self.green_blocked is None and self._conditions.get("greenapi"):
            self.set_condition("greenapi", None)
        if where == "send" and self._conditions.get("quota"):
            self.set_condition("quota", None)

    def on_held(self, reason: str | None) -> None:
        """Notifications are kept in Green API's queue because the bridge cannot take them."""
        with self._cond_lock:
            was, self._wa["held"] = self._wa["held"], reason
        if reason is not None and was is None:
            self.log.warning("notifications.held", reason=reason)
        elif reason is None and was is not None:
            self.log.info("notifications.flowing")

    def on_instance_state(self, state: str | None) -> None:
        with self._cond_lock:
            before, self._wa["state"] = self._wa["state"], state
        if state == before:
            return
        self.log.info("whatsapp.state", state=state, before=before)
        if state in (None, "authorized"):
            self.set_condition("whatsapp", None)
        else:
            hint = " (scan the QR code in the Green API console)" if state == "notAuthorized" \
                else ""
            self.set_condition("whatsapp", f"the WhatsApp instance is {state}{hint}")

    def on_quota(self, detail: str) -> None:
        """466 or a quotaExceeded notice: degraded, and the owner is told (at most hourly)."""
        self.set_condition("quota", f"Green API quota: {detail}")
        self.record_error(f"Green API quota: {detail}")
        now = time.monotonic()
        if self._quota_told and now - self._quota_told < QUOTA_TELL_EVERY:
            return
        self._quota_told = now
        self.report(f"Kami: the Green API quota is spent ({detail}); WhatsApp messages wait.",
                    ref=None, author=None)
        try:  # the chat quota still lets the owner's chat through; a method quota does not
            GreenApiSink(self.client, self.notify_chats).send_text(
                say("quota", self.default_language, detail=detail))
        except GreenApiError as exc:
            self.log.warning("quota.owner_not_told", error=str(exc))

    def received(self, timestamp: int) -> None:
        with self._cond_lock:
            self._wa["received"] += 1
            self._wa["lastReceived"] = format_ts(time.time())

    def sent(self, count: int) -> None:
        with self._cond_lock:
            self._wa["sent"] += count
            self._wa["lastSent"] = format_ts(time.time())
        self.activity()

    def report(self, text: str, *, ref: str | None, author: str | None) -> None:
        """Tell ``report_to`` (and the author of an undelivered message) on the bridge."""
        bridge = self.bridge
        if bridge is None:
            return
        recipients = {self.settings.report_to}
        if author and author != self.name:
            recipients.add(author)
        for to in sorted(recipients - {self.name}):
            try:
                bridge.send(text, to=to, type="notification",
                            metadata={"kami": "report", **({"ref": ref} if ref else {})})
            except BridgeError as exc:
                self.log.error("report.failed", to=to, error=str(exc))

    # -- what the owner asks -------------------------------------------------------------------

    def status_text(self, lang: Lang) -> str:
        label = LABELS[lang]
        lines = [label["title"]]
        bridge = self.bridge
        if bridge is None:
            lines.append(f"{label['bridge']}: {label['unreachable']}")
        else:
            info = bridge.paused()
            if info is None:
                lines.append(f"{label['bridge']}: {label['running']}")
            else:
                why = f": {info.reason}" if info.reason else ""
                lines.append(f"{label['bridge']}: ⏸️ {label['paused']} ({info.by or '?'}{why})")
            counts = []
            for agent in (self.settings.claude, self.settings.kaylee):
                n = sum(1 for v in bridge.inbox(agent) if v.message.type == "request")
                counts.append(f"{agent} {n}")
            # Kami's own: the owner's messages not handled yet (held by a pause).
            held = sum(1 for v in bridge.inbox(self.name)
                       if v.message.metadata.get("kami") == "inbound")
            counts.append(f"{self.name} {held}")
            lines.append(f"{label['waiting']}: " + ", ".join(counts))
        wa = dict(self._wa)
        lines.append(f"{label['whatsapp']}: {wa['state'] or '?'}, {label['sent']} "
                     f"{wa['sent']}, {label['received']} {wa['received']}")
        left = self.brain.remaining()
        model = ", ".join(f"{name} {n:,} {label['left']}" for name, n in left.items()) \
            if self.brain.online else label["off"]
        lines.append(f"{label['model']}: {model}")
        if self.monitor is not None and self.monitor.last:
            lines.append(f"{label['peers']}: " + ", ".join(
                f"{name} {r.state}" for name, r in sorted(self.monitor.last.items())))
        problems = "; ".join(self._conditions.values())
        if problems:
            lines.append(f"⚠️ {label['problems']}: {problems}")
        return "\n".join(lines)

    def health_text(self, lang: Lang) -> str:
        """Each configured peer's /health, checked now (the worker runs this)."""
        label = LABELS[lang]
        peers = self.kami_config.peers
        lines = [label["health"], f"kami: {self.snapshot()['status']}"]
        with httpx.Client() as client:
            for peer in peers.peer:
                result = check_peer(client, peer.name, peer.url,
                                    token=peer.token.reveal() if peer.token else None,
                                    timeout=peers.timeout, slow=peers.slow)
                lines.append(f"{peer.name}: {result.state} ({result.detail})")
        return "\n".join(lines)

    def shutdown_all(self) -> str:
        """Pause the bridge, then stop every configured agent's unit over SSH (the worker
        runs this). One line per agent."""
        bridge = self.bridge
        if bridge is not None and bridge.paused() is None:
            bridge.pause("shutdown all (WhatsApp)", by="owner")
        ssh = self.kami_config.ssh
        lines: list[str] = []
        for target in self.settings.shutdown:
            remote = RemoteHost(target.host, ssh_config=ssh.config, known_hosts=ssh.known_hosts,
                                identity_file=ssh.identity(), connect_timeout=ssh.connect_timeout)
            try:
                for agent in target.agents:
                    try:
                        result = ctl(remote, "stop", agent, systemctl=target.systemctl,
                                     sudo=target.sudo)
                    except (BridgeError, OSError) as exc:
                        lines.append(f"❌ {agent}@{target.host}: {exc}")
                        continue
                    mark = "✅" if not result.running else "❌"
                    lines.append(f"{mark} {agent}@{target.host}: {result.active}")
            finally:
                remote.close()
        self.log.warning("shutdown.done", results=lines)
        return "\n".join(lines)

    # -- runtime hooks -------------------------------------------------------------------------

    def health_fields(self) -> dict[str, Any]:
        with self._cond_lock:
            wa = {**self._wa, "receive": self.settings.receive,
                  "waiting": sum(1 for p in self.outbox.progress.values() if p.next_try)}
        return {"whatsapp": wa,
                "model": {"online": self.brain.online, "remaining": self.brain.remaining()}}

    def alert_sinks(self) -> list[AlertSink]:
        """Peer alerts go to Kami's own outbox on the bridge (delivered like everything
        else, exactly once); straight to WhatsApp when the bridge cannot take them."""
        direct = GreenApiSink(self.client, self.notify_chats)
        alert_to = self.kami_config.peers.alert_to

        def sink(alert: Alert) -> None:
            bridge = self.bridge
            try:
                if bridge is not None:
                    BridgeSink(bridge, to=self.name)(alert)
            except (BridgeError, OSError) as exc:
                self.log.warning("alert.direct", reason=str(exc))
                bridge = None
            if bridge is None:
                direct(alert)
            if alert_to not in (None, self.name) and bridge is not None:
                BridgeSink(bridge, to=alert_to)(alert)

        return [sink]

    def snapshot(self) -> dict[str, Any]:
        body = super().snapshot()
        body["version"] = __version__
        return body
