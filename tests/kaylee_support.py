"""Helpers for Kaylee's tests: a config on real files, an in-process Kaylee, her answers."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bridge import Bridge, MessageView
from bridge.runtime import load_config
from kaylee import KayleeConfig
from kaylee._agent import Kaylee

PY = sys.executable
OWNER_CHAT = "972500000000@c.us"

ECHO = f"""
[[recipe]]
name = "echo"
description = "prints its argument as a JSON list"
argv = ["{PY}", "-c", "import json,sys; print(json.dumps(sys.argv[1:]))", "{{text}}"]
idempotent = true
timeout = "20s"
[[recipe.param]]
name = "text"
required = true
"""


def config_text(tmp_path: Path, extra: str = "", *, bridge: str | None = None) -> str:
    """The test config; lines of ``extra`` before its first table are top-level settings."""
    lines = extra.strip("\n").splitlines()
    first = next((i for i, line in enumerate(lines) if line.startswith("[")), len(lines))
    top, tables = "\n".join(lines[:first]), "\n".join(lines[first:])
    defaults = {"idle_wait": '"1s"', "lease": '"5s"', "stop_grace": '"3s"'}
    given = {line.split("=")[0].strip() for line in top.splitlines() if "=" in line}
    settings = "\n".join(f"{k} = {v}" for k, v in defaults.items() if k not in given)
    return f"""
{top}
{settings}
bridge = "{bridge or tmp_path / 'bridge'}"
state_dir = "{tmp_path / 'state'}"
[health]
port = 0
[log]
level = "debug"
[owner]
agent = "kami"
chat = "{OWNER_CHAT}"
{ECHO}
{tables}
"""


def write_config(tmp_path: Path, extra: str = "", **kw: Any) -> Path:
    path = tmp_path / "kaylee.toml"
    path.write_text(config_text(tmp_path, extra, **kw))
    return path


def make(tmp_path: Path, extra: str = "", *, env: dict[str, str] | None = None,
         **kw: Any) -> Kaylee:
    """A Kaylee on the files under ``tmp_path`` (a new one is a restart); ``env`` is the
    environment the config sees (secrets), nothing of this process's."""
    config = load_config(KayleeConfig, "kaylee", write_config(tmp_path, extra), env=env or {})
    return Kaylee(config, notify=lambda _state: False, **kw)


@contextmanager
def _keep_signals() -> Iterator[None]:
    # Agent.run installs SIGTERM/SIGINT handlers in the main thread: put pytest's back.
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def run_once(tmp_path: Path, extra: str = "", **kw: Any) -> Kaylee:
    """``kaylee run --once`` in this process: do the waiting work, then stop."""
    kaylee = make(tmp_path, extra, **kw)
    with _keep_signals():
        code = kaylee.run(once=True)
    assert code == 0
    return kaylee


class Driver:
    """The runtime's loop, one iteration per :meth:`turn`, for tests of the threaded path."""

    def __init__(self, kaylee: Kaylee) -> None:
        self.kaylee = kaylee
        assert kaylee._try_open_bridge()

    def turn(self) -> None:
        k = self.kaylee
        k._refresh()
        k.housekeeping()
        if not k.paused:
            k.step()

    def until(self, predicate: Callable[[], Any], timeout: float = 20, what: str = "it") -> Any:
        deadline = time.monotonic() + timeout
        while True:
            self.turn()
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.02)

    def stop(self) -> None:
        k = self.kaylee
        k.stopping.set()
        k.hand_back()
        k.close_clients()
        if k.bridge is not None:
            k.bridge.close()
        k._wake.close()


def answers(bridge: Bridge, request_id: str, kind: str = "outcome") -> list[MessageView]:
    """Kaylee's messages in reply to a request, of one kind (outcome, progress, confirm)."""
    fold = bridge.fold()
    return [bridge.get(s.id) for s in fold.thread(request_id)
            if s.sender == "kaylee" and s.reply_to == request_id
            and bridge.get(s.id).message.metadata.get("kaylee") == kind]


def outcome(bridge: Bridge, request_id: str) -> MessageView:
    found = answers(bridge, request_id)
    assert len(found) == 1, [v.message.content for v in found]
    return found[0]


def owner_notes(bridge: Bridge) -> list[MessageView]:
    """Notifications Kaylee sent the owner's agent (Kami) for the owner."""
    fold = bridge.fold()
    views = [bridge.get(s.id) for s in fold if s.sender == "kaylee" and s.to == "kami"
             and s.type == "notification"]
    return [v for v in views if v.message.metadata.get("kaylee") != "progress"]
