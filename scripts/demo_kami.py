"""The demo's Kami section: a WhatsApp message in, the bridge, Claude Code, the answer out.

Everything is real but the two outside services: Kami runs as its own process
(`python -m kami run`), talks to the Green API simulator over HTTP, and to a
local Messages API through the real anthropic SDK; the real Claude Code CLI
(when installed; else a scripted stand-in) answers what Kami forwards, through
its hooks and the bridge's MCP server. The timeline shows each step as it happens, with
milliseconds since the section started.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from demo_claude import start_claude_code
from demo_common import DEMO_ROOT, ROOT, console, say, wait

from bridge import Bridge
from bridge.testing.greenapi import GreenApiSimulator
from bridge.testing.messages_api import FakeMessagesAPI, Reply, text, tool_use

OWNER = "972501234567@c.us"
DIRECTORY = DEMO_ROOT / "kami"


def model(body: dict[str, Any]) -> Reply:
    """The local model: answers sums itself, sends anything about the site to Claude Code."""
    said = body["messages"][-1]["content"]
    said = said if isinstance(said, str) else said[0]["text"]
    if "2+2" in said:
        return tool_use("answer", {"text": "**4** 🙂"})
    if "אתר" in said or "site" in said:
        return tool_use("ask_claude", {"request": "Find out why the landing page is slow"})
    return text("אני כאן. במה לעזור?")


def claude_answers(content: str) -> str:
    if "אתר" in content:
        return ("מצאתי: cron של גיבוי תפס את ה-CPU בכל שעה עגולה. **הזזתי אותו ל-03:00**; "
                "זמן הטעינה ירד מ-4.1 ל-0.4 שניות.")
    return f"Done: {content} — 212 passed, 0 failed."


class Timeline:
    """Prints what happens, as it happens, with the time since the start."""

    def __init__(self, sim: GreenApiSimulator, bridge: Bridge) -> None:
        self.start = time.monotonic()
        self.sim = sim
        self.bridge = bridge
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._phone, daemon=True),
                        threading.Thread(target=self._log, daemon=True)]

    def line(self, who: str, what: str) -> None:
        ms = (time.monotonic() - self.start) * 1000
        body = what.replace("\u200f", "").replace("\n", "\n" + " " * 30)
        with self.lock:
            console.print(f"[dim]{ms:8.0f} ms[/]  {who:<18} {body}")

    def owner(self, message: str) -> None:
        self.line("📱 owner → Kami", f"[bold]{message}[/]")
        self.sim.send_text(OWNER, message, sender_name="Owner")

    def _phone(self) -> None:
        shown = 0
        while not self.stop.wait(0.005):
            for sent in self.sim.sent[shown:]:
                self.line("💬 Kami → owner", sent.message)
                shown += 1

    def _log(self) -> None:
        follower = self.bridge.follow(start="end", poll_interval=0.05)
        try:
            while not self.stop.is_set():
                for entry in follower.wait(timeout=0.1):
                    rec = entry.record
                    if rec.get("t") == "msg" and rec.get("to") in ("claude", "kaylee"):
                        self.line("🌉 bridge", f"{rec['from']} → {rec['to']} ({rec['type']}): "
                                               f"{rec['content'][:60]}")
                    elif rec.get("t") == "msg" and str(rec.get("from")).startswith("claude"):
                        self.line("🧑‍💻 Claude Code", f"{rec['from']} answers "
                                                     f"{rec.get('reply_to')}")
                    elif (rec.get("t") == "status" and rec.get("status") == "claimed"
                          and str(rec.get("from")).startswith("claude")):
                        self.line("🧑‍💻 Claude Code", f"{rec['from']} claims {rec.get('ref')}")
                    elif rec.get("t") == "event" and rec.get("event") in ("pause", "resume"):
                        self.line("🌉 bridge", f"{rec['event']} (by {rec.get('by')})")
        finally:
            follower.close()

    def __enter__(self) -> Timeline:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=2)


def wait_for_text(sim: GreenApiSimulator, needle: str, timeout: float = 15.0) -> float:
    """Wait until Kami sent a message containing ``needle``; when it was sent."""
    sent = wait(f"Kami sending {needle!r} (see {DIRECTORY / 'kami.log'})",
                lambda: next((m for m in list(sim.sent) if needle in m.message), None),
                timeout)
    return sent.at


def start_kami(sim: GreenApiSimulator, api: FakeMessagesAPI | None, *,
               directory: Path = DIRECTORY, bridge: Path | None = None,
               health_port: int = 0) -> subprocess.Popen[bytes]:
    """Kami as its own process, its config and log in ``directory``; without ``api`` it
    has no model (the offline router: commands, /claude, /kaylee)."""
    config = directory / "kami.toml"
    lines = [f'bridge = "{bridge or directory / "bridge"}"', 'idle_wait = "2s"', "[health]",
             f"port = {health_port}", "[kami]", f'api_url = "{sim.api_url}"',
             f"id_instance = {sim.id_instance}", f'owners = ["{OWNER}"]',
             "receive_timeout = 5", f'state_dir = "{directory}"']
    if api is not None:
        lines += ["[models]", f'base_url = "{api.url}"', 'timeout = "10s"',
                  "[[models.route]]", 'name = "demo"', 'model = "claude-demo"',
                  "daily_tokens = 50000"]
    config.write_text("\n".join(lines) + "\n")
    log_path = directory / "kami.log"
    log = log_path.open("wb")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KAMI_GREEN_API_TOKEN": sim.token}
    if api is not None:
        env["KAMI_ANTHROPIC_API_KEY"] = api.api_key
    proc = subprocess.Popen([sys.executable, "-m", "kami", "run", "--config", str(config)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
    log.close()
    try:
        wait(f"Kami's start (see {log_path})", lambda: proc.poll() is not None
             or b'"event":"kami.ready"' in log_path.read_bytes(), timeout=20)
    except SystemExit:
        proc.kill()
        raise
    if proc.poll() is not None:
        raise SystemExit(f"demo: Kami exited at start (see {log_path})")
    return proc


def kami_tour() -> None:
    if DIRECTORY.exists():
        shutil.rmtree(DIRECTORY)
    DIRECTORY.mkdir(parents=True)
    console.rule("Kami: WhatsApp in, the bridge, the answer out")
    bridge = Bridge(DIRECTORY / "bridge", agent="owner")
    with GreenApiSimulator() as sim, FakeMessagesAPI(responder=model) as api:
        claude = start_claude_code(DIRECTORY, DIRECTORY / "bridge", claude_answers)
        kami = start_kami(sim, api)
        console.print(f"Kami (pid {kami.pid}) ↔ Green API simulator {sim.api_url} ↔ "
                      f"bridge {DIRECTORY / 'bridge'}; its log: {DIRECTORY / 'kami.log'}")
        try:
            with Timeline(sim, bridge) as timeline:
                say("A question: acknowledged at once, the model passes it to Claude Code")
                sent_at = time.time()
                timeline.owner("היי קמי, למה האתר איטי?")
                ack_at = wait_for_text(sim, "קיבלתי")
                wait_for_text(sim, "cron")
                say("Something Kami answers itself (in the language it was asked in)")
                timeline.owner("What is 2+2?")
                wait_for_text(sim, "*4*")
                say("Pause from the phone: work waits on the bridge, control commands still work")
                timeline.owner("השהה")
                wait_for_text(sim, "הושהו")
                timeline.owner("/claude תריץ את בדיקות הלילה")
                time.sleep(0.5)
                held = [v for v in bridge.inbox("kami")
                        if v.message.metadata.get("kami") == "inbound"]
                timeline.line("🌉 bridge", f"{len(held)} message held until the resume: "
                                           f"{held[0].message.content if held else '-'}")
                timeline.owner("סטטוס")
                wait_for_text(sim, "📊")
                timeline.owner("המשך")
                wait_for_text(sim, "212 passed")
                time.sleep(0.1)
        finally:
            kami.send_signal(signal.SIGTERM)
            code = kami.wait(timeout=30)
            claude.stop()
            bridge.close()
    console.print(f"\n[green]Kami stopped with exit code {code}. Its acknowledgement reached "
                  f"the phone {(ack_at - sent_at) * 1000:.0f} ms after the message was sent; "
                  f"{len(sim.sent)} WhatsApp messages out, each once.[/]")
