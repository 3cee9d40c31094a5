"""The Kaylee part of `make demo`: real `kaylee run` and `kami run` processes on the demo
bridge, with the Green API simulator as the owner's phone.

The owner writes ``/kaylee disk-check path=/var`` on WhatsApp; Kami passes it on,
and Kaylee's acknowledgement, progress and result come back to the phone through
Kami. Shell syntax in a parameter is refused. A recipe that needs the owner's
confirmation asks on the phone and runs on "yes". Then a peer goes down and comes
back: one alert, one recovery message; and when Kami itself is down, Kaylee's
alert goes straight to the phone through Green API.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from demo_common import wait
from demo_kami import start_kami
from rich.console import Console

from bridge import Bridge
from bridge.testing.greenapi import GreenApiSimulator
from bridge.testing.health import FakeHealth

ROOT = Path(__file__).resolve().parent.parent
OWNER = "972501234567@c.us"
console = Console(highlight=False)


def finished(b: Bridge, mid: str) -> Callable[[], bool]:
    return lambda: b.get(mid).state.terminal


def sweep(b: Bridge) -> None:
    """One health-sweep, as her */5 job sends it (a request to herself), to its end."""
    mid = b.send("health-sweep", to="kaylee", sender="kaylee").id
    wait("a sweep", finished(b, mid))


class Phone:
    """The owner's WhatsApp, as the simulator sees it: what they write, what they get."""

    def __init__(self, sim: GreenApiSimulator) -> None:
        self.sim = sim
        self.shown = 0

    def write(self, text: str) -> None:
        console.print(f"  [bold]📱 owner:[/] {text}")
        self.sim.send_text(OWNER, text, sender_name="Owner")

    def wait(self, *needles: str, timeout: float = 30) -> None:
        """Until each of ``needles`` reached the phone (in any message); then show them."""
        def arrived() -> bool:
            texts = [m.message for m in self.sim.sent[self.shown:]]
            return all(any(n in t for t in texts) for n in needles)

        wait(f"{needles!r} on the phone", arrived, timeout)
        self.show()

    def show(self) -> None:
        for m in self.sim.sent[self.shown:]:
            text = m.message.replace("\n", "\n" + " " * 15)
            console.print(f"  [magenta]💬 → owner:[/] {text}")
        self.shown = len(self.sim.sent)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tour(demo_dir: Path, run: Callable[..., str], say: Callable[[str], None]) -> None:
    """Run the Kaylee tour on the bridge in ``demo_dir`` (``run`` shows a bridge command)."""
    work = demo_dir.parent / "kaylee"
    if work.exists():
        shutil.rmtree(work)  # her peer states and schedule from an earlier run
    (work / "kami").mkdir(parents=True)
    claude = FakeHealth("claude")
    sim = GreenApiSimulator().start()
    phone = Phone(sim)
    kami_port = free_port()
    config = work / "kaylee.toml"
    config.write_text(f"""
bridge = "{demo_dir}"
state_dir = "{work / 'state'}"
lease = "30s"
[health]
port = 0
[log]
level = "info"
[owner]
agent = "kami"
chat = "{OWNER}"
[whatsapp]
api_url = "{sim.api_url}"
id_instance = {sim.id_instance}
owners = ["{OWNER}"]
[peers]
failures = 2
timeout = "2s"
[[peers.peer]]
name = "claude"
url = "{claude.url}"
[[peers.peer]]
name = "kami"
url = "http://127.0.0.1:{kami_port}/health"
[[recipe]]
name = "disk-check"
description = "how full a filesystem is"
steps = [["df", "-h", "{{path}}"], ["ls", "-ld", "{{path}}"]]
timeout = "30s"
idempotent = true
[[recipe.param]]
name = "path"
pattern = "/[A-Za-z0-9._/-]*"
default = "/"
[[recipe]]
name = "restart-site"
description = "restart the web site (asks the owner first)"
argv = ["echo", "site restarted"]
confirm = true
""")
    b = Bridge(demo_dir, agent="owner")
    for view in b.inbox("kami"):  # the bridge tour's answers: shown there, not on the phone
        b.done(view.id, reason="shown in the bridge tour", sender="kami")
    kami: subprocess.Popen[bytes] | None = None
    proc: subprocess.Popen[bytes] | None = None
    try:
        # Kami first: Kaylee's peer checks find it up from her start.
        kami = start_kami(sim, None, directory=work / "kami", bridge=demo_dir,
                          health_port=kami_port)
        with open(work / "kaylee.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "kaylee", "run", "--config", str(config)], cwd=ROOT,
                stderr=log, stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONPATH": str(ROOT), "KAYLEE_GREEN_API_TOKEN": sim.token})
        wait("Kaylee's start", lambda: b"kaylee.ready" in (work / "kaylee.log").read_bytes())
        console.rule("Kaylee: the worker, reached from WhatsApp through Kami")
        console.print(f"Kaylee (pid {proc.pid}) and Kami (pid {kami.pid}, no model: "
                      f"/kaylee goes straight to her) on {demo_dir}")
        say("The owner asks Kaylee for a recipe: Kami's acknowledgement, then her own "
            "⏳ start and ✅ result")
        phone.write("/kaylee disk-check path=/var")
        phone.wait("✅ disk-check")

        say("Shell syntax in a parameter is refused, never run")
        phone.write("/kaylee disk-check path=/tmp;rm")
        phone.wait("⛔")

        say("A recipe marked confirm = true asks the owner first, and runs on yes")
        phone.write("/kaylee restart-site")
        phone.wait("may she run", "waiting for the owner's confirmation")
        phone.write("yes")
        phone.wait("Told Kaylee: yes", "✅ restart-site")

        say("Her cron job pings the agents (health-sweep, every 5 minutes; here one after "
            "another); Claude's /health breaks, then comes back")
        claude.ok = False
        for _ in range(3):  # two bad checks in a row make an alert; the third is quiet
            sweep(b)
        claude.ok = True
        sweep(b)
        phone.wait("claude is back")

        say("Kami itself goes down: Kaylee's alert goes straight to the phone (Green API)")
        kami.send_signal(signal.SIGTERM)
        kami.wait(timeout=30)
        for _ in range(2):
            sweep(b)
        phone.wait("kami is down")
        run("tail", "--from", "kaylee", "-n", "4")
    finally:
        for p in (proc, kami):
            if p is None or p.poll() is not None:
                continue
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
        b.close()
        sim.stop()
        claude.close()
