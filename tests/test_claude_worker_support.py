"""The Claude worker's test harness (no tests here): a bridge, the fake Messages API, the
real Claude Code CLI and ``claude-worker run`` as a real process."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bridge import Bridge, MessageView
from bridge.testing.messages_api import FakeMessagesAPI, Reply, text
from tests.agent_proc import AgentProcess
from tests.claude_support import API_KEY, CLAUDE_BIN, require_claude
from tests.helpers import wait_for

OWNER = "972501234567@c.us"
IDENTITY = "claude.worker"


class Gate:
    """A responder that holds the model's first ``hold`` turns until :meth:`open` (so a test
    can act while a run is in progress), then answers with ``then``."""

    def __init__(self, then: Callable[[dict[str, Any]], Reply], hold: int = 1) -> None:
        self.then = then
        self.hold = hold
        self.entered = threading.Event()
        self._open = threading.Event()
        self._lock = threading.Lock()
        self.calls = 0

    def __call__(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            self.calls += 1
            held = self.calls <= self.hold
        if held:
            self.entered.set()
            self._open.wait(120)  # bounded: open() or the harness's close() releases it
        return self.then(body)

    def open(self) -> None:
        self._open.set()


def answer(body: dict[str, Any]) -> Reply:
    return text("The answer is 42.")


class Harness:
    """One bridge, one fake model, the worker's config; workers started on demand."""

    def __init__(self, tmp_path: Path, responder: Callable[[dict[str, Any]], Reply] = answer,
                 settings: str = "", env: dict[str, str] | None = None) -> None:
        require_claude()
        self.tmp = tmp_path
        self.responder = responder
        self.api = FakeMessagesAPI(api_key=API_KEY, responder=responder).start()
        self.bridge = Bridge(tmp_path / "bridge", agent="kami")
        self.state = tmp_path / "state"
        self.project = tmp_path / "project"
        self.project.mkdir(exist_ok=True)
        (self.project / "notes.txt").write_text("the project's notes\n")
        self.config = tmp_path / "claude-worker.toml"
        self.env = {"CLAUDE_WORKER_ANTHROPIC_API_KEY": API_KEY, **(env or {})}
        self.write_config(settings)
        self.procs: list[AgentProcess] = []

    def write_config(self, settings: str = "", *, delay: str = "0s") -> None:
        path = f"{CLAUDE_BIN.parent}:{Path(sys.executable).parent}:/usr/bin:/bin"
        self.config.write_text(
            f'bridge = "{self.tmp / "bridge"}"\n'
            "[health]\nport = 0\n"
            "[claude_worker]\n"
            f'claude = "{CLAUDE_BIN}"\n'
            f'path = "{path}"\n'
            f'delay = "{delay}"\n'
            f'state_dir = "{self.state}"\n'
            f'base_url = "{self.api.url}"\n'
            'default_project = "main"\n'
            f"{settings}\n"
            "[claude_worker.projects]\n"
            f'main = "{self.project}"\n')

    def start(self, ready: bool = True) -> AgentProcess:
        proc = AgentProcess("claude_worker", ["run", "--config", str(self.config)], self.env)
        self.procs.append(proc)
        if ready:
            proc.wait_event("worker.ready", timeout=30)
        return proc

    def ask(self, content: str, *, chat: str | None = OWNER, sender: str = "kami",
            **meta: Any) -> str:
        metadata = dict(meta)
        if chat is not None:
            metadata["whatsapp_sender"] = chat
        return self.bridge.send(content, to="claude", type="request", metadata=metadata,
                                sender=sender).id

    def view(self, rid: str) -> MessageView:
        return self.bridge.get(rid)

    def thread(self, rid: str) -> list[MessageView]:
        """The messages that answer ``rid`` (its replies, in file order)."""
        return [v for v in self.bridge.history(rid).thread if v.message.reply_to == rid]

    def answers(self, rid: str) -> list[MessageView]:
        return [v for v in self.thread(rid) if v.message.type == "response"]

    def wait_status(self, rid: str, status: str, timeout: float = 60) -> MessageView:
        def reached() -> MessageView | None:
            view = self.view(rid)
            return view if view.state.status == status else None

        try:
            found = wait_for(reached, timeout=timeout, interval=0.02,
                             what=f"{rid} to be {status}")
        except AssertionError:
            logs = [p.raw[-15:] for p in self.procs]
            raise AssertionError(f"{rid} is {self.view(rid).state.status}, not {status}; "
                                 f"worker stderr: {logs}") from None
        assert found is not None
        return found

    def prompts(self) -> list[str]:
        """The last user text of every request the fake model received."""
        from bridge.testing.messages_api import request_text

        return [request_text(r["body"]) for r in self.api.requests if r["body"]]

    def close(self) -> None:
        for gate in [self.responder] if isinstance(self.responder, Gate) else []:
            gate.open()
        for proc in self.procs:
            if proc.proc.poll() is None:
                proc.signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=30)
            proc.close()  # SIGKILL by its PID if it is still there
        self.api.stop()
        self.bridge.close()


def group_alive(pgid: int) -> bool:
    """Whether any process of the process group ``pgid`` is still there (zombies excluded)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] != b"Z":
            return True
    return False
