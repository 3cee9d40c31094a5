"""`make demo`: a scripted tour of a local bridge on embedded defaults.

Runs the real `bridge` command against a fresh bridge in .demo/bridge, with a
scripted "Claude" agent (the library's Follower, woken by inotify) answering
requests, and shows send, tail, inbox, reply, pause/resume, show and doctor.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from rich.console import Console

from bridge import Bridge, Entry, parse_ts

ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = ROOT / ".demo" / "bridge"
BIN = Path(sys.executable).parent / "bridge"
console = Console(highlight=False)


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


def say(text: str) -> None:
    console.print(f"\n[bold]# {text}[/]")


class ScriptedClaude:
    """Answers every request addressed to it; respects PAUSE before taking work."""

    def __init__(self) -> None:
        self.bridge = Bridge(DEMO_DIR, agent="claude")
        self.follower = self.bridge.follow("claude", start="end")
        self.answered = threading.Event()
        self.latencies: list[float] = []
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while True:
            for entry in self.follower.wait():
                self._handle(entry)
                self.follower.commit(entry)
            if self.follower.stopped:
                return
            # While paused, requests wait in the log; look again after resume.
            if not self.bridge.is_paused():
                self._drain_inbox()

    def _handle(self, entry: Entry) -> None:
        rec = entry.record
        if rec.get("t") == "msg" and rec.get("to") == "claude" and rec["type"] == "request":
            self.latencies.append(time.time() - parse_ts(rec["ts"]))
        self._drain_inbox()

    def _drain_inbox(self) -> None:
        if self.bridge.is_paused():
            return
        for view in self.bridge.inbox("claude", include_claimed=False):
            if view.message.type == "request":
                answer = f"Checked: {view.message.content.rstrip('?')} — all green (p95 120 ms)."
                self.bridge.reply(view.id, answer)
                self.answered.set()

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.follower.stop()
        self.thread.join(timeout=5)
        self.follower.close()
        self.bridge.close()


def main() -> None:
    if DEMO_DIR.exists():
        shutil.rmtree(DEMO_DIR)
    console.rule("kami-bridge: a tour of a local bridge")
    console.print(f"bridge directory: {DEMO_DIR}")
    say("Kami (the WhatsApp agent) sends a request to Claude Code")
    first = run("send", "Is the landing page up?", "--from", "kami", "--to", "claude",
                "--priority", "high", "--meta", "whatsapp_sender=972501234567@c.us")

    claude = ScriptedClaude()
    claude.start()
    say("A scripted Claude follows the bridge (inotify, no polling) and answers")
    run("send", "How long did the last deploy take?", "--from", "kami", "--to", "claude")
    if not claude.answered.wait(10):
        raise SystemExit("the scripted Claude did not answer")
    deadline = time.monotonic() + 10
    while len(Bridge(DEMO_DIR, agent="kami").inbox("kami")) < 2:
        if time.monotonic() > deadline:
            raise SystemExit("answers did not arrive")
        time.sleep(0.02)
    run("tail", "-n", "6")

    say("Kami's inbox: the answers, addressed back to the WhatsApp chat")
    run("inbox", "--for", "kami")
    answers = Bridge(DEMO_DIR, agent="kami").inbox("kami")
    for view in answers:
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
    deadline = time.monotonic() + 10
    with Bridge(DEMO_DIR, agent="kami") as kami:
        while kami.get(waiting).status() != "done":
            if time.monotonic() > deadline:
                raise SystemExit("the waiting request was not answered after resume")
            time.sleep(0.02)
    run("show", waiting)

    from demo_kaylee import tour

    tour(DEMO_DIR, run, say)

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


if __name__ == "__main__":
    main()
