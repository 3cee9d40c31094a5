"""The Kaylee part of `make demo`: a real `kaylee run` process on the demo bridge.

A request reaches her the way Kami passes a WhatsApp message on (``/kaylee …``:
a request to kaylee carrying the chat in ``whatsapp_sender``); her
acknowledgement, progress and result are the messages Kami delivers back to
that chat. A request with shell syntax in a parameter is run as one argument
or refused. Then a peer goes down and comes back: one alert, one recovery
message; and when Kami itself is down, the alert goes straight to the phone
through the Green API simulator. (Until Kami joins the demo, the tour shows the
messages on the bridge that Kami delivers.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from bridge import Bridge, MessageView
from bridge.testing.greenapi import GreenApiSimulator
from bridge.testing.health import FakeHealth

ROOT = Path(__file__).resolve().parent.parent
OWNER = "972501234567@c.us"
console = Console(highlight=False)


def wait(what: str, predicate: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: {what} did not happen within {timeout:g}s")
        time.sleep(0.05)


def finished(b: Bridge, mid: str) -> Callable[[], bool]:
    return lambda: b.get(mid).state.terminal


def sweep(b: Bridge) -> None:
    """One health-sweep, as her */5 job sends it (a request to herself), to its end."""
    mid = b.send("health-sweep", to="kaylee", sender="kaylee").id
    wait("a sweep", finished(b, mid))


def for_kami(b: Bridge, since: int) -> list[MessageView]:
    """What Kaylee sent Kami to deliver (answers, progress, news for the owner)."""
    fold = b.fold()
    return [b.get(s.id) for s in fold if s.sender == "kaylee" and s.to == "kami"
            and s.offset >= since]


def show_phone(views: list[MessageView]) -> None:
    for v in views:
        chat = v.message.metadata.get("whatsapp_sender", "?")
        console.print(f"  [magenta]→ {chat}[/]  {v.message.content}")


def tour(demo_dir: Path, run: Callable[..., str], say: Callable[[str], None]) -> None:
    """Run the Kaylee tour on the bridge in ``demo_dir`` (``run`` shows a bridge command)."""
    work = demo_dir.parent / "kaylee"
    work.mkdir(exist_ok=True)
    claude, kami = FakeHealth("claude"), FakeHealth("kami")
    sim = GreenApiSimulator().start()
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
url = "{kami.url}"
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
""")
    log = open(work / "kaylee.log", "wb")  # noqa: SIM115 - handed to the process
    proc = subprocess.Popen([sys.executable, "-m", "kaylee", "run", "--config", str(config)],
                            cwd=ROOT, stderr=log, stdin=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(ROOT),
                                 "KAYLEE_GREEN_API_TOKEN": sim.token})
    log.close()
    b = Bridge(demo_dir, agent="kami")
    try:
        wait("Kaylee's start", lambda: b"kaylee.ready" in (work / "kaylee.log").read_bytes())
        say("Kaylee: WhatsApp asks her to run a recipe (Kami passes \"/kaylee disk-check "
            "path=/var\" on)")
        mark = b.fold().offset
        rid = run("send", "disk-check path=/var", "--from", "kami", "--to", "kaylee",
                  "--meta", f"whatsapp_sender={OWNER}")
        wait("her answer", finished(b, rid))
        say("Her acknowledgement, progress and result, addressed to the chat (Kami delivers "
            "them)")
        show_phone(for_kami(b, mark))
        run("show", rid)

        say("Shell syntax in a parameter is refused, never run")
        mark = b.fold().offset
        bad = run("send", "disk-check path=/tmp;rm", "--from", "kami", "--to", "kaylee",
                  "--meta", f"whatsapp_sender={OWNER}")
        wait("the refusal", finished(b, bad))
        show_phone(for_kami(b, mark))

        say("Her cron job pings the agents (health-sweep, every 5 minutes; here one after "
            "another); Claude's /health breaks")
        claude.ok = False
        mark = b.fold().offset
        for _ in range(3):  # two bad checks in a row make an alert; the third is quiet
            sweep(b)
        claude.ok = True
        sweep(b)
        alerts = [v for v in for_kami(b, mark) if v.message.metadata.get("kaylee") == "alert"]
        console.print(f"  four sweeps, {len(alerts)} messages for the owner:")
        show_phone(alerts)

        say("Kami itself goes down: the alert goes straight to the phone (Green API)")
        kami.ok = False
        for _ in range(2):
            sweep(b)
        sent = wait("the direct alert", lambda: sim.texts(OWNER))
        for text in sent:
            console.print(f"  [magenta]📱 {OWNER}[/]  {text}")
        run("tail", "--from", "kaylee", "-n", "4")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        b.close()
        sim.stop()
        claude.close()
        kami.close()
