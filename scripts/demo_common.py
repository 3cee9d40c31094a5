"""What the demo's sections share: the console, headings, and a scripted Claude Code."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from rich.console import Console

from bridge import Bridge, Entry, parse_ts

ROOT = Path(__file__).resolve().parent.parent
DEMO_ROOT = Path(os.environ.get("KAMI_BRIDGE_DEMO_DIR") or ROOT / ".demo")
"""Where the demo keeps its bridges, configs and logs (tests point it elsewhere)."""
console = Console(highlight=False)
T = TypeVar("T")


def wait(what: str, predicate: Callable[[], T | None], timeout: float = 30) -> T:
    """Poll ``predicate`` until it is truthy; stop the demo with one line after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: {what} did not happen within {timeout:g}s")
        time.sleep(0.01)


def say(text: str) -> None:
    console.print(f"\n[bold]# {text}[/]")


def checked(content: str) -> str:
    return f"Checked: {content.rstrip('?')} — all green (p95 120 ms)."


class ScriptedClaude:
    """Answers every request addressed to it; respects PAUSE before taking work."""

    def __init__(self, directory: Path, answer: Callable[[str], str] = checked) -> None:
        self.bridge = Bridge(directory, agent="claude")
        self.answer = answer
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
                self.bridge.reply(view.id, self.answer(view.message.content))
                self.answered.set()

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.follower.stop()
        self.thread.join(timeout=5)
        self.follower.close()
        self.bridge.close()
