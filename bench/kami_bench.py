"""Kami's own overhead (model time excluded), and draining a backlog after an outage.

Kami runs as its real process against the Green API simulator (which enforces
Green API's documented per-second limits, answering 429 beyond them) and a
local bridge; messages use the direct route ``/claude …`` so that no model is
involved. Times are taken at the simulator and by an inotify follower in this
process:

- notification received → request on the bridge: from the moment the simulator
  hands the notification to Kami's long-poll to the moment the forward to Claude
  Code appears in the bridge file (journal it, delete it from Green API, decide,
  append the forward);
- bridge response → sendMessage issued: from ``send()`` of a response returning to
  the simulator receiving the ``sendMessage`` request;
- a drain: N notifications queued while Kami was stopped (an outage), then Kami
  started: time until every message was forwarded once and every note sent once,
  the peak per-second request rates the simulator saw, and its 429 count.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bridge import Bridge
from bridge.testing.greenapi import GreenApiSimulator, incoming_body

OWNER = "972501234567@c.us"
AddRow = Callable[..., None]


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def _start(work: Path, sim: GreenApiSimulator) -> subprocess.Popen[bytes]:
    config = work / "kami.toml"
    config.write_text("\n".join([
        f'bridge = "{work / "bridge"}"', "[health]", "port = 0",
        "[kami]", f'api_url = "{sim.api_url}"', f"id_instance = {sim.id_instance}",
        f'owners = ["{OWNER}"]', "receive_timeout = 5", f'state_dir = "{work}"']) + "\n")
    log = (work / "kami.log").open("ab")
    start = log.tell()
    proc = subprocess.Popen([sys.executable, "-m", "kami", "run", "--config", str(config)],
                            cwd=Path(__file__).resolve().parent.parent, stderr=log,
                            stdout=subprocess.DEVNULL,
                            env={**os.environ, "KAMI_GREEN_API_TOKEN": sim.token,
                                 "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    log.close()
    deadline = time.monotonic() + 30
    while b'"event":"kami.ready"' not in (work / "kami.log").read_bytes()[start:]:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"kami did not start: see {work / 'kami.log'}")
        time.sleep(0.02)
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


class _Watcher:
    """Notes when each record of interest appears in the bridge file (inotify)."""

    def __init__(self, bridge: Bridge) -> None:
        self.follower = bridge.follow(start="end", poll_interval=0.05)
        self.forwards: dict[str, float] = {}  # wa_id -> when the forward appeared
        self.counts: collections.Counter[str] = collections.Counter()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            for entry in self.follower.wait(timeout=0.1):
                rec = entry.record
                if rec.get("t") == "msg" and rec.get("to") == "claude":
                    self.forwards.setdefault(rec["metadata"]["wa_id"], time.time())
                    self.counts[rec["metadata"]["wa_id"]] += 1

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.follower.close()


def _peak_rate(times: list[float]) -> int:
    """The most requests in any one-second window."""
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= 1.0:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def bench_kami(quick: bool, add: AddRow, work: Path) -> None:
    bridge = Bridge(work / "bridge", agent="claude")
    n = 100 if quick else 300
    with GreenApiSimulator(rate_limits=True) as sim:
        kami = _start(work, sim)
        watcher = _Watcher(bridge)
        try:
            # 1. notification received -> request on the bridge.
            receipts: dict[str, int] = {}
            for i in range(n):
                body = incoming_body(sim.id_instance, sim.wid, OWNER, f"/claude bench {i}")
                receipts[body["idMessage"]] = sim.inject(body)
                time.sleep(0.05)
            deadline = time.monotonic() + 60
            while len(watcher.forwards) < n and time.monotonic() < deadline:
                time.sleep(0.01)
            lat = [(watcher.forwards[w] - sim.served[r]) * 1000
                   for w, r in receipts.items() if w in watcher.forwards and r in sim.served]
            add("Kami: notification received → request on the bridge (no model)",
                f"p50 {_pct(lat, 50):.1f} ms, p99 {_pct(lat, 99):.1f} ms",
                f"{len(lat)} messages, one every 50 ms; durability always", "",
                "p50 ≤ 20 ms", _pct(lat, 50) <= 20, {"n": len(lat)})

            # 2. bridge response -> sendMessage issued.
            returned: dict[str, float] = {}
            for i in range(n):
                text = f"bench answer {i}"
                bridge.send(text, to="kami", type="response",
                            metadata={"whatsapp_sender": OWNER})
                returned[f"*Claude Code*\n{text}"] = time.time()
                time.sleep(0.05)
            sim.wait_sent(n + len(returned), timeout=60)
            at = {m.message: m.at for m in sim.sent}
            lat = [(at[t] - r) * 1000 for t, r in returned.items() if t in at]
            add("Kami: bridge response → sendMessage issued",
                f"p50 {_pct(lat, 50):.1f} ms, p99 {_pct(lat, 99):.1f} ms",
                f"{len(lat)} responses, one every 50 ms", "", "p50 ≤ 20 ms",
                _pct(lat, 50) <= 20, {"n": len(lat)})
        finally:
            watcher.close()
            _stop(kami)

        # 3. A backlog after an outage: queued while Kami was down, drained on start.
        count = 200 if quick else 1000
        sim.calls.clear()
        sent_before = len(sim.sent)
        queued = []
        for i in range(count):
            body = incoming_body(sim.id_instance, sim.wid, OWNER, f"/claude drain {i}")
            sim.inject(body)
            queued.append(body["idMessage"])
        watcher = _Watcher(bridge)
        started = time.monotonic()
        kami = _start(work, sim)

        def notes() -> int:
            return sum(1 for m in sim.sent[sent_before:] if "Passed to Claude Code" in m.message)

        try:
            deadline = time.monotonic() + 600
            while (len(watcher.forwards) < count or notes() < count or sim.pending()) \
                    and time.monotonic() < deadline:
                time.sleep(0.05)
            seconds = time.monotonic() - started
            time.sleep(1.0)  # anything sent twice would show up now
        finally:
            watcher.close()
            _stop(kami)
        lost = sum(1 for w in queued if w not in watcher.forwards)
        twice = sum(c - 1 for c in watcher.counts.values()) + max(0, notes() - count)
        calls: dict[str, list[float]] = collections.defaultdict(list)
        for c in sim.calls:
            calls[c.method].append(c.at)
        peaks = {m: _peak_rate(t) for m, t in calls.items()}
        within = (sim.rate_limited == 0 and peaks.get("sendmessage", 0) <= 50
                  and peaks.get("receivenotification", 0) <= 100
                  and peaks.get("deletenotification", 0) <= 100)
        add(f"Kami: drain {count:,} notifications queued during an outage",
            f"{seconds:.1f} s ({count / seconds:.0f} messages/s); {lost} lost, "
            f"{twice} done twice",
            f"peak requests in any second at the simulator: sendMessage "
            f"{peaks.get('sendmessage', 0)}, receiveNotification "
            f"{peaks.get('receivenotification', 0)}, deleteNotification "
            f"{peaks.get('deletenotification', 0)}; 429s {sim.rate_limited}",
            f"{len(calls.get('receivenotification', [])):,} receiveNotification calls: each "
            "message brings two statuses (sent, delivered) to receive and delete too",
            "no loss, no duplicate, within the limits (send 50/s, receive/delete 100/s)",
            lost == 0 and twice == 0 and within,
            {"seconds": seconds, "peaks": peaks, "count": count})
    bridge.close()
