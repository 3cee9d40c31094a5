"""The agent lifecycle every agent shares.

::

    config loaded and validated   (before the Agent exists: a config error is exit 2)
    → /health bound               (a port in use is a clear log line and exit 1)
    → bridge opened               (unreachable: start degraded and keep retrying)
    → READY=1                     (systemd's Type=notify: start is complete)
    → loop: WATCHDOG=1 from the loop itself, PAUSE checked before any work,
            one step of work, or wait for a change
    → SIGTERM: STOPPING=1, finish or hand back the current item, exit 0
      (a second SIGTERM/SIGINT exits at once)

Signal handlers only set a flag and wake the loop; logging, cleanup and the
notify calls happen in the loop. Subclasses implement :meth:`Agent.step` and,
when they hold work across steps, :meth:`Agent.hand_back`.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, ClassVar

from .._connect import connect
from .._errors import BridgeError, BridgeUnavailable
from .._url import parse_url
from .._version import __version__
from ..delivery import ChangeWaiter, WakePipe
from ..format import format_ts
from ..store import LOG_NAME, PAUSE_NAME
from ._config import AgentConfig
from ._health import HealthServer
from ._logging import get_logger
from ._notify import notify as sd_notify
from ._notify import watchdog_interval
from ._peers import Alert, AlertSink, BridgeSink, PeerMonitor
from ._redact import redact
from ._remote_wake import RemoteWaker

if TYPE_CHECKING:
    from .._api import Backend

__all__ = ["EXIT_FAILED", "EXIT_OK", "Agent"]

EXIT_OK = 0
EXIT_FAILED = 1

BACKLOG_REFRESH = 5.0
"""Seconds between recounts of the agent's inbox for /health (a fold catch-up)."""

MAX_RETRY_DELAY = 30.0
"""Cap of the backoff between attempts to reach an unreachable bridge."""

MAX_UNEXPECTED = 20
"""Consecutive unexpected errors from step() after which the agent exits (systemd
restarts it fresh) instead of spinning on the same failure."""


class Agent:
    """One agent process. Subclass, set :attr:`name`, implement :meth:`step`."""

    name: ClassVar[str] = "agent"

    peers_in_thread: ClassVar[bool] = True
    """Poll the configured peers in a thread of the runtime's own. An agent that checks
    them itself (Kaylee's scheduled ``health-sweep``) sets False: the monitor is built
    (with the agent's sinks and state file) but nothing polls it on its own."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        notify: Callable[[str], bool] = sd_notify,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.log = get_logger(config.name)
        self.notify = notify
        self.clock = clock
        self.bridge: Backend | None = None
        # Set by the loop (for other threads) once a stop was requested.
        self.stopping = threading.Event()
        self._stop_requested = False
        self._wake = WakePipe()
        self._started = clock()
        self._lock = threading.Lock()
        self._processed = 0
        self._last_activity: str | None = None
        self._last_error: dict[str, str] | None = None
        self._degraded: str | None = None
        self._bridge_error: str | None = None
        self._paused: dict[str, str | None] | None = None
        self._backlog: int | None = None
        self._backlog_at = -1e9
        self._signals = 0
        self._waiter: ChangeWaiter | RemoteWaker | None = None
        self.health: HealthServer | None = None
        self.monitor: PeerMonitor | None = None
        self._monitor_thread: threading.Thread | None = None

    # -- what subclasses implement ----------------------------------------------------------

    def setup(self) -> None:
        """Called once the bridge is open (and again after it is reopened)."""

    def step(self) -> bool:
        """Do one unit of work if there is any; return True if something was done."""
        raise NotImplementedError

    def step_paused(self) -> bool:
        """Called instead of :meth:`step` while the bridge is paused: do only what a pause
        allows (Kami acts on the owner's ``resume``); True if something was done."""
        return False

    def housekeeping(self) -> None:
        """Called every iteration before the PAUSE check, paused or not, and while the
        bridge is unreachable (``self.bridge`` is None then): work that must go on while
        the agent takes nothing new (renewing leases of work in progress, appending the
        outcomes of work that finished, or keeping them). Keep it short."""

    def hand_back(self) -> None:
        """Stopping with work in progress: finish it or give it back (e.g. release a claim)."""

    def teardown(self) -> None:
        """Called once at the end, after the loop."""

    def health_fields(self) -> dict[str, Any]:
        """Extra fields for /health (no secrets, no message content)."""
        return {}

    def alert_sinks(self) -> list[AlertSink]:
        """Where peer alerts go: a bridge notification by default; agents add theirs."""
        return [self._alert_to_bridge]

    def _alert_to_bridge(self, alert: Alert) -> None:
        if self.bridge is not None:
            BridgeSink(self.bridge, to=self.config.peers.alert_to)(alert)

    def count_backlog(self) -> int | None:
        """Messages waiting for this agent, for /health; None when unknown."""
        if self.bridge is None:
            return None
        return len(self.bridge.inbox(self.config.name, include_claimed=False))

    # -- helpers for subclasses ---------------------------------------------------------------

    def activity(self, processed: int = 1) -> None:
        """Record that work was done (``lastActivity``, ``messagesProcessed``)."""
        with self._lock:
            self._processed += processed
            self._last_activity = format_ts(time.time())

    def record_error(self, message: str) -> None:
        """Remember the last error for /health (redacted, shortened)."""
        with self._lock:
            self._last_error = {"ts": format_ts(time.time()), "message": redact(message)[:300]}

    def degraded(self, reason: str | None) -> None:
        """Mark the agent degraded for a reason (e.g. its upstream API is down); None clears."""
        with self._lock:
            self._degraded = redact(reason)[:300] if reason else None

    @property
    def paused(self) -> bool:
        return self._paused is not None

    @property
    def should_stop(self) -> bool:
        """True once SIGTERM (or :meth:`request_stop`) arrived: long steps check it
        between their parts and hand their work back."""
        return self._stop_requested

    def request_stop(self) -> None:
        """Ask the loop to stop (from any thread)."""
        self._stop_requested = True
        self._wake.set()

    def wake_up(self) -> None:
        """Make the loop look for work now (from any thread, e.g. a webhook handler)."""
        self._wake.set()

    # -- /health ---------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The /health body: cheap, thread-safe, no secrets, no content."""
        with self._lock:
            if self._stop_requested:
                status = "stopping"
            elif self._bridge_error is not None or self._degraded is not None:
                status = "degraded"
            elif self._paused is not None:
                status = "paused"
            else:
                status = "ok"
            body: dict[str, Any] = {
                "status": status,
                "agent": self.config.name,
                "version": __version__,
                "uptime": round(self.clock() - self._started, 3),
                "lastActivity": self._last_activity,
                "messagesProcessed": self._processed,
                "bridge": {
                    "reachable": self._bridge_error is None and self.bridge is not None,
                    "backlog": self._backlog,
                    "error": self._bridge_error,
                },
                "paused": self._paused,
                "degraded": self._degraded,
                "lastError": self._last_error,
            }
        if self.monitor is not None:
            # list(): one C-level copy, as the peers thread may add a peer meanwhile.
            body["peers"] = {name: r.state for name, r in list(self.monitor.last.items())}
        body.update(self.health_fields())
        return body

    # -- the loop --------------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only a flag and a byte into the wake pipe: logging, locks (even
        # Event.set) and cleanup are unsafe inside a signal handler.
        self._signals += 1
        if self._signals > 1:
            os._exit(128 + signum)
        self._stop_requested = True
        self._wake.set()

    def _install_signals(self) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)

    def open_bridge(self) -> Backend:
        """Open the configured bridge: a local directory, or ``ssh://host/path``."""
        url = parse_url(self.config.bridge) if self.config.bridge else None
        options: dict[str, Any] = {"durability": self.config.durability, "create": False}
        if url is not None and url.remote:
            ssh = self.config.ssh
            options.update(ssh_config=ssh.config, known_hosts=ssh.known_hosts,
                           identity_file=ssh.identity(), connect_timeout=ssh.connect_timeout,
                           reconnect_timeout=ssh.reconnect_timeout)
            if ssh.remote_command:
                options["remote_command"] = ssh.remote_command
        return connect(url, agent=self.config.name, **options)

    def _try_open_bridge(self) -> bool:
        try:
            self.bridge = self.open_bridge()
        except (BridgeError, OSError) as exc:
            with self._lock:
                first = self._bridge_error is None
                self._bridge_error = redact(str(exc))[:300]
            if first:
                self.log.error("bridge.unreachable", error=str(exc))
            return False
        with self._lock:
            was = self._bridge_error
            self._bridge_error = None
        if was is not None:
            self.log.info("bridge.reachable", target=str(self.bridge.directory))
        if self.bridge.capabilities.local_files:
            self._waiter = ChangeWaiter(self.bridge.directory, (LOG_NAME, PAUSE_NAME),
                                        poll_interval=min(1.0, self.config.idle_wait))
        else:
            self._waiter = RemoteWaker(self.bridge)
        self.setup()
        return True

    def _refresh(self) -> None:
        """Pause state every iteration (one stat); the backlog every few seconds."""
        if self.bridge is None:
            return
        info = self.bridge.paused()
        paused = info.to_dict() if info is not None else None
        if (paused is None) != (self._paused is None):
            self.log.info("paused" if paused else "resumed", **(paused or {}))
            self.notify(f"STATUS={'paused' if paused else 'running'}")
        with self._lock:
            self._paused = paused
        now = self.clock()
        if now - self._backlog_at >= BACKLOG_REFRESH:
            self._backlog_at = now
            backlog = self.count_backlog()
            with self._lock:
                self._backlog = backlog

    def _sleep(self, timeout: float) -> None:
        """Sleep, but wake at once for a signal or :meth:`wake_up`."""
        self._wake.wait(timeout)
        self._wake.clear()

    def _wait(self, timeout: float) -> None:
        """Wait for a change of the bridge (or PAUSE), a wake-up, or ``timeout``."""
        if self._waiter is None:
            self._sleep(timeout)
            return
        # The caller looked for work before calling: a change since then must
        # wake us, so only the wake-ups older than that look are dropped (the
        # waiter was cleared before the step that found nothing).
        fds = [self._wake.fileno(), self._waiter.fileno()]
        # Without inotify: look again every poll interval. With a remote bridge: also,
        # because PAUSE is not pushed and a resume must be noticed.
        rechecks = self._waiter.mode in ("poll", "push")
        poll = self._waiter.poll_interval if rechecks else timeout
        end = self.clock() + timeout
        while True:
            left = end - self.clock()
            if left <= 0:
                break
            ready, _, _ = select.select(fds, [], [], min(left, poll))
            if ready or rechecks:
                break
        self._wake.clear()

    def build_monitor(self) -> PeerMonitor | None:
        """The peer monitor for ``[peers]`` (None without peers), with this agent's sinks
        and its state file (``peers.state_file``, else ``$STATE_DIRECTORY/peers.json``)."""
        pc = self.config.peers
        if not pc.peer:
            return None
        state_file = pc.state_file
        if state_file is None and os.environ.get("STATE_DIRECTORY"):
            state_file = Path(os.environ["STATE_DIRECTORY"].split(":")[0]) / "peers.json"
        return PeerMonitor(
            pc.peer, failures=pc.failures, timeout=pc.timeout, slow=pc.slow,
            sinks=self.alert_sinks(), state_file=state_file,
            on_sink_error=lambda sink, exc: self.log.error(
                "alert.sink_failed", sink=type(sink).__name__, error=str(exc)))

    def _start_monitor(self) -> None:
        self.monitor = self.build_monitor()
        if self.monitor is None or not self.peers_in_thread:
            return
        self._monitor_thread = threading.Thread(target=self._monitor_loop, name="peers",
                                                daemon=True)
        self._monitor_thread.start()

    def _monitor_loop(self) -> None:
        # A thread of its own: a hanging peer (bounded by peers.timeout) must not
        # delay the main loop or its watchdog pings.
        monitor = self.monitor
        if monitor is None:
            return
        previous: dict[str, str] = {}
        while not self.stopping.is_set():
            for result in monitor.check_all():
                if previous.get(result.peer) != result.state:
                    level = self.log.info if result.state in ("ok", "paused") else \
                        self.log.warning
                    level("peer.state", peer=result.peer, state=result.state,
                          detail=result.detail)
                    previous[result.peer] = result.state
            self.stopping.wait(self.config.peers.interval)

    def run(self, *, once: bool = False, max_iterations: int | None = None) -> int:
        """Run until stopped; return the exit code.

        ``once``: no /health, no READY; do the work that is there, then return
        (for tests and cron). ``max_iterations`` bounds the loop (tests).
        """
        self._install_signals()
        if not once:
            # The health thread needs the GIL to answer; with the default 5 ms switch
            # interval a busy loop makes /health wait up to that long. 1 ms costs the
            # loop little and keeps /health within a few milliseconds under load.
            sys.setswitchinterval(0.001)
            hc = self.config.health
            try:
                self.health = HealthServer(
                    self.snapshot, bind=hc.bind, port=hc.port,
                    token=hc.token.reveal() if hc.token else None,
                    on_reject=lambda addr, why: self.log.warning(
                        "health.rejected", client=addr, reason=why))
            except BridgeUnavailable as exc:
                self.log.error("health.bind_failed", error=str(exc), port=hc.port)
                return EXIT_FAILED
            self.health.start()
            self.log.info("health.listening", url=self.health.address)
        self._try_open_bridge()
        if not once:
            self._start_monitor()
        retry_delay = 1.0
        next_retry = self.clock() + retry_delay
        watchdog = watchdog_interval()
        next_ping = self.clock()
        if not once:
            self.notify("READY=1")
            port = self.health.port if self.health else "-"
            self.notify(f"STATUS=running, /health on port {port}")
            self.log.info("started", version=__version__, bridge=self.config.bridge or "default",
                          watchdog=watchdog)
        unexpected = 0
        iterations = 0
        exit_code = EXIT_OK
        while not self._stop_requested:
            iterations += 1
            if max_iterations is not None and iterations > max_iterations:
                break
            now = self.clock()
            if watchdog is not None and now >= next_ping:
                # From the loop itself: a stuck loop stops the pings and systemd kills us.
                self.notify("WATCHDOG=1")
                next_ping = now + watchdog
            if self.bridge is None:
                if now >= next_retry:
                    if self._try_open_bridge():
                        retry_delay = 1.0
                    else:
                        retry_delay = min(retry_delay * 2, MAX_RETRY_DELAY)
                        next_retry = self.clock() + retry_delay
                if once and self.bridge is None:
                    exit_code = EXIT_FAILED
                    break
                if self.bridge is None:
                    # Work in progress goes on without the bridge (Kaylee keeps outcomes
                    # on disk until it is back).
                    try:
                        self.housekeeping()
                    except Exception as exc:  # noqa: BLE001 - logged; the loop must go on
                        self.log.error("housekeeping.failed", error=str(exc))
                    self._sleep(min(retry_delay, watchdog or retry_delay, 1.0))
                    continue
            try:
                if self._waiter is not None:
                    self._waiter.clear()  # changes from now on wake the next wait
                self._refresh()
                self.housekeeping()
                if self.paused:
                    did = self.step_paused()
                    unexpected = 0
                    if not did:
                        if once:
                            break
                        self._wait(min(self.config.idle_wait, watchdog or 1e9))
                    continue
                did = self.step()
                unexpected = 0
            except (BridgeError, OSError) as exc:
                # The bridge went away (or broke) mid-step: degrade, reopen later.
                self.log.error("bridge.error", error=str(exc))
                self.record_error(str(exc))
                with self._lock:
                    self._bridge_error = redact(str(exc))[:300]
                self.bridge = None
                next_retry = self.clock() + retry_delay
                continue
            except Exception as exc:
                unexpected += 1
                self.log.exception("step.failed", consecutive=unexpected)
                self.record_error(f"{type(exc).__name__}: {exc}")
                if unexpected >= MAX_UNEXPECTED:
                    self.log.error("giving.up", consecutive=unexpected)
                    exit_code = EXIT_FAILED
                    break
                self._sleep(min(0.1 * 2 ** min(unexpected, 8), 10.0))
                continue
            if not did:
                if once:
                    break
                self._wait(min(self.config.idle_wait, watchdog or 1e9, BACKLOG_REFRESH))
        return self._shutdown(exit_code, once)

    def _shutdown(self, exit_code: int, once: bool) -> int:
        if self._stop_requested:
            self.notify("STOPPING=1")
            self.log.info("stopping")
        self.stopping.set()  # the loop is over: background threads end too
        if self._monitor_thread is not None:
            self._monitor_thread.join(timeout=self.config.peers.timeout + 1)
        try:
            self.hand_back()
        except Exception as exc:
            self.log.exception("hand_back.failed", error=str(exc))
            exit_code = EXIT_FAILED
        try:
            self.teardown()
        finally:
            if self._waiter is not None:
                self._waiter.close()
            if self.health is not None:
                self.health.stop()
            if self.bridge is not None:
                self.bridge.close()
            self._wake.close()
        if not once:
            self.log.info("stopped", exit_code=exit_code)
        sys.stderr.flush()
        return exit_code
