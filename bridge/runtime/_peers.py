"""Peer checks: poll other agents' /health, tell down from slow from paused, alert once.

A peer is ``ok``, ``slow`` (answered ok, but late), ``paused`` (healthy and
told to rest), ``degraded`` (answered, and says it is not well) or ``down`` (no
answer in time, refused, or an answer that is not a health document). Every
request has a total deadline, so a peer that hangs or trickles bytes costs at
most that long.

Alerting is edge-triggered: after ``failures`` consecutive bad checks
(``down`` or ``degraded``) one ``down`` alert goes out, and one ``recovered``
alert when the peer is back — never one per check. With a state file the edges
survive restarts of whoever is checking (a timer, a restarted agent).
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson

from ..format import format_ts
from ..store import Perms, atomic_write
from ._redact import redact

if TYPE_CHECKING:
    import httpx

    from .._api import Backend
    from ._config import PeerConfig

__all__ = ["Alert", "BridgeSink", "CommandSink", "PeerMonitor", "PeerResult", "check_peer"]

State = Literal["ok", "slow", "paused", "degraded", "down"]
BAD_STATES = frozenset({"down", "degraded"})
MAX_BODY = 64 * 1024


@dataclass(frozen=True)
class PeerResult:
    """The outcome of one check of one peer."""

    peer: str
    url: str
    state: State
    detail: str
    latency: float | None = None
    http_status: int | None = None
    agent: str | None = None
    version: str | None = None
    checked: str = field(default_factory=lambda: format_ts(time.time()))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Alert:
    """A change worth telling the owner: a peer went down, or came back."""

    kind: Literal["down", "recovered"]
    result: PeerResult
    failures: int

    @property
    def text(self) -> str:
        r = self.result
        if self.kind == "down":
            return f"⚠️ {r.peer} is {r.state}: {r.detail} ({self.failures} checks in a row)"
        return f"✅ {r.peer} is back: {r.state}, {r.detail}"


def check_peer(client: httpx.Client, name: str, url: str, *, token: str | None = None,
               timeout: float = 5.0, slow: float = 2.0) -> PeerResult:
    """GET ``url`` once, within ``timeout`` seconds in total, and classify the answer."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    start = time.monotonic()
    deadline = start + timeout
    try:
        with client.stream("GET", url, headers=headers, timeout=timeout) as response:
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_BODY:
                    return PeerResult(name, url, "down", "answered more than 64 KiB",
                                      time.monotonic() - start, response.status_code)
                if time.monotonic() > deadline:
                    return PeerResult(name, url, "down",
                                      f"answer not complete within {timeout:g}s",
                                      time.monotonic() - start, response.status_code)
            status_code = response.status_code
    except httpx.TimeoutException:
        return PeerResult(name, url, "down", f"no answer within {timeout:g}s",
                          time.monotonic() - start)
    except httpx.HTTPError as exc:
        why = redact(str(exc)) or type(exc).__name__
        return PeerResult(name, url, "down", f"unreachable: {why}", time.monotonic() - start)
    latency = time.monotonic() - start
    if status_code == 401:
        return PeerResult(name, url, "down", "refused our token (HTTP 401)", latency, status_code)
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return PeerResult(name, url, "down", f"answered something that is not JSON "
                                             f"(HTTP {status_code})", latency, status_code)
    if not isinstance(doc, dict) or not isinstance(doc.get("status"), str):
        return PeerResult(name, url, "down", f"answered JSON without a status (HTTP {status_code})",
                          latency, status_code)
    agent = doc.get("agent") if isinstance(doc.get("agent"), str) else None
    version = doc.get("version") if isinstance(doc.get("version"), str) else None
    status = doc["status"]
    if status == "paused":
        paused = doc.get("paused") if isinstance(doc.get("paused"), dict) else {}
        why = f": {paused.get('reason')}" if paused and paused.get("reason") else ""
        return PeerResult(name, url, "paused", f"paused{why}", latency, status_code, agent,
                          version)
    if status == "ok" and status_code == 200:
        if latency > slow:
            return PeerResult(name, url, "slow", f"ok but took {latency:.1f}s (> {slow:g}s)",
                              latency, status_code, agent, version)
        return PeerResult(name, url, "ok", f"ok in {latency * 1000:.0f} ms", latency,
                          status_code, agent, version)
    if status in ("degraded", "stopping") or status_code >= 500:
        detail = doc.get("degraded") or (doc.get("bridge") or {}).get("error") or status
        return PeerResult(name, url, "degraded", redact(str(detail))[:200], latency,
                          status_code, agent, version)
    return PeerResult(name, url, "down", f"unexpected answer: HTTP {status_code}, "
                                         f"status {status!r}", latency, status_code)


# -- sinks --------------------------------------------------------------------------------------

AlertSink = Callable[[Alert], object]


class BridgeSink:
    """Alerts as bridge notifications (to ``to``, or every agent)."""

    def __init__(self, bridge: Backend, *, to: str | None = None) -> None:
        self.bridge = bridge
        self.to = to

    def __call__(self, alert: Alert) -> None:
        self.bridge.send(alert.text, to=self.to, type="notification",
                         metadata={"alert": alert.kind, "peer": alert.result.peer,
                                   "state": alert.result.state})


class CommandSink:
    """Runs ``argv`` with the alert as JSON on stdin (never a shell line, never the text in
    argv), bounded by ``timeout``."""

    def __init__(self, argv: Sequence[str], *, timeout: float = 30.0) -> None:
        if not argv:
            raise ValueError("CommandSink needs a command")
        self.argv = list(argv)
        self.timeout = timeout

    def __call__(self, alert: Alert) -> None:
        payload = orjson.dumps({"kind": alert.kind, "text": alert.text,
                                "failures": alert.failures, **alert.result.to_dict()})
        subprocess.run(self.argv, input=payload, timeout=self.timeout, check=True,
                       capture_output=True)


# -- the monitor --------------------------------------------------------------------------------


@dataclass
class _Track:
    failures: int = 0
    alerted: bool = False
    last: str | None = None


class PeerMonitor:
    """Checks peers and fires edge-triggered alerts through sinks.

    Args:
        peers: the peers (name, url, token).
        failures: consecutive bad checks before the ``down`` alert.
        sinks: called with each :class:`Alert`; a failing sink is reported through
            ``on_sink_error`` and does not stop the others.
        state_file: where alert edges are kept across restarts (optional).
    """

    def __init__(
        self,
        peers: Iterable[PeerConfig],
        *,
        failures: int = 2,
        timeout: float = 5.0,
        slow: float = 2.0,
        sinks: Sequence[AlertSink] = (),
        state_file: Path | None = None,
        on_sink_error: Callable[[AlertSink, Exception], None] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.peers = list(peers)
        self.failures = failures
        self.timeout = timeout
        self.slow = slow
        self.sinks = list(sinks)
        self.state_file = state_file
        self.on_sink_error = on_sink_error or (lambda sink, exc: None)
        self._transport = transport
        self.tracks: dict[str, _Track] = {p.name: _Track() for p in self.peers}
        self.last: dict[str, PeerResult] = {}
        self._lock = threading.Lock()
        self._load_state()

    def _load_state(self) -> None:
        if self.state_file is None:
            return
        try:
            data = orjson.loads(self.state_file.read_bytes())
        except (FileNotFoundError, orjson.JSONDecodeError):
            return
        for name, track in (data.get("peers") or {}).items():
            if name in self.tracks and isinstance(track, dict):
                self.tracks[name] = _Track(int(track.get("failures", 0)),
                                           bool(track.get("alerted", False)), track.get("last"))

    def _save_state(self) -> None:
        if self.state_file is None:
            return
        data = {"peers": {n: asdict(t) for n, t in self.tracks.items()}}
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.state_file, orjson.dumps(data) + b"\n", Perms())

    def check_all(self) -> list[PeerResult]:
        """One round over every peer; fire alerts for the edges; return the results."""
        import httpx

        with self._lock, httpx.Client(transport=self._transport) as client:
            results = [check_peer(client, p.name, p.url,
                                  token=p.token.reveal() if p.token else None,
                                  timeout=self.timeout, slow=self.slow) for p in self.peers]
            alerts = [a for a in (self._track(r) for r in results) if a is not None]
            self._save_state()
        for alert in alerts:
            self._fire(alert)
        return results

    def _track(self, result: PeerResult) -> Alert | None:
        self.last[result.peer] = result
        track = self.tracks.setdefault(result.peer, _Track())
        track.last = result.state
        if result.state in BAD_STATES:
            track.failures += 1
            if track.failures >= self.failures and not track.alerted:
                track.alerted = True
                return Alert("down", result, track.failures)
            return None
        was_alerted = track.alerted
        track.failures, track.alerted = 0, False
        return Alert("recovered", result, 0) if was_alerted else None

    def _fire(self, alert: Alert) -> None:
        for sink in self.sinks:
            try:
                sink(alert)
            except Exception as exc:  # noqa: BLE001 - one broken sink must not silence the others
                self.on_sink_error(sink, exc)
