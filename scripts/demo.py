"""`make demo`: the toolkit on embedded defaults, one section after another.

1. bridge: the real `bridge` command against a fresh bridge in .demo/bridge, with a
   scripted "Claude" agent (the library's Follower, woken by inotify) answering
   requests: send, tail, inbox, reply, pause/resume, show and doctor.
2. kami: the real Kami process between a simulated WhatsApp (the Green API
   simulator, with a phone) and a bridge, the real anthropic SDK talking to a
   local Messages API, and the scripted Claude answering what Kami forwards.
3. kaylee: the real `kaylee run` process on the demo bridge: a request passed on
   from WhatsApp, its progress and result, shell syntax kept as data, a peer
   going down and coming back, and an alert straight to the phone when Kami is down.

Each section is a function in SECTIONS; a new agent adds its own (no network, no
keys, well under a minute in all). `python scripts/demo.py kami` runs one.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from demo_common import DEMO_ROOT, ScriptedClaude, console, say, wait
from demo_kami import kami_tour

from bridge import Bridge

DEMO_DIR = DEMO_ROOT / "bridge"
BIN = Path(sys.executable).parent / "bridge"


def run(*args: str) -> str:
    """Run `bridge ARGS` like a person would, and show it."""
    console.print(f"[bold cyan]$ bridge {shlex.join(args)}[/]")
    env = {**os.environ, "BRIDGE_DIR": str(DEMO_DIR), "COLUMNS": str(console.width)}
    if console.is_terminal:
        env["FORCE_COLOR"] = "1"
    proc = subprocess.run([str(BIN), *args], capture_output=True, text=True, check=False,
                          env=env)
    for stream in (proc.stdout, proc.stderr):
        if stream.strip():
            sys.stdout.write(stream.rstrip() + "\n")
    sys.stdout.flush()
    if proc.returncode not in (0, 1):
        raise SystemExit(f"bridge {args[0]} failed with exit code {proc.returncode}")
    return proc.stdout.strip()


def bridge_tour() -> None:
    if DEMO_DIR.exists():
        shutil.rmtree(DEMO_DIR)
    console.rule("kami-bridge: a tour of a local bridge")
    console.print(f"bridge directory: {DEMO_DIR}")
    say("Kami (the WhatsApp agent) sends a request to Claude Code")
    first = run("send", "Is the landing page up?", "--from", "kami", "--to", "claude",
                "--priority", "high", "--meta", "whatsapp_sender=972501234567@c.us")

    claude = ScriptedClaude(DEMO_DIR)
    claude.start()
    say("A scripted Claude follows the bridge (inotify, no polling) and answers")
    run("send", "How long did the last deploy take?", "--from", "kami", "--to", "claude")
    if not claude.answered.wait(10):
        raise SystemExit("the scripted Claude did not answer")
    kami = Bridge(DEMO_DIR, agent="kami")
    wait("the answers", lambda: len(kami.inbox("kami")) >= 2, timeout=10)
    run("tail", "-n", "6")

    say("Kami's inbox: the answers, addressed back to the WhatsApp chat")
    run("inbox", "--for", "kami")
    for view in kami.inbox("kami"):
        run("done", view.id, "--from", "kami")

    say("The owner pauses every agent: requests wait, nothing is lost")
    run("pause", "--reason", "deploying v2", "--by", "owner")
    waiting = run("send", "Run the smoke tests", "--from", "kami", "--to", "claude")
    time.sleep(0.5)  # give Claude every chance to (wrongly) take it
    run("status")
    run("inbox", "--for", "claude")
    say("Resume: Claude picks the waiting request up at once")
    run("resume", "--by", "owner")
    run("send", "ping", "--from", "kami", "--to", "claude", "--type", "notification")
    wait("the answer after resume", lambda: kami.get(waiting).status() == "done",
         timeout=10)
    kami.close()
    run("show", waiting)

    say("Everything is plain JSONL: doctor checks it, jq reads it")
    run("doctor")
    run("stats")
    claude.stop()
    if claude.latencies:
        best = min(claude.latencies) * 1000
        console.print(f"\n[green]send → Claude's handler: {best:.1f} ms at best in this run "
                      "(the seed polled every 30 s).[/]")
    console.print(f"[green]The first request was {first}; the whole log is "
                  f"{DEMO_DIR / 'messages.jsonl'}.[/]")


def kaylee_section() -> None:
    from demo_kaylee import tour

    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    tour(DEMO_DIR, run, say)


SECTIONS: dict[str, Callable[[], None]] = {"bridge": bridge_tour, "kami": kami_tour,
                                           "kaylee": kaylee_section}
"""The demo's sections, in order. An agent adds its own: a function that sets up what it
needs under .demo/, shows it, and stops everything it started."""


def main(argv: list[str] | None = None) -> None:
    names = (sys.argv[1:] if argv is None else argv) or list(SECTIONS)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        raise SystemExit(f"unknown section {', '.join(unknown)}; sections: "
                         f"{', '.join(SECTIONS)}")
    started = time.monotonic()
    for name in names:
        SECTIONS[name]()
    console.print(f"\n[bold]Demo finished in {time.monotonic() - started:.1f} s.[/]")
    # Debian's iproute2 has a /sbin/bridge of its own: say which one is ours.
    console.print(f"The commands are in {Path(sys.executable).parent}: "
                  f"export PATH={Path(sys.executable).parent}:$PATH", soft_wrap=True)


if __name__ == "__main__":
    main()
