"""Claude Code's hooks: the wall time of `bridge hook …` as Claude Code runs it, on every prompt.

Each hook is a new process (the console script, as `bridge claude install`
writes it) fed the event's JSON on stdin, on a local bridge holding a day's
worth of records with a few requests open for ``claude``. Runs are interleaved
with the anchor, ``python -c pass`` of the same interpreter, and the median of
each is kept (the machine is shared and noisy).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from bridge import Bridge

AddRow = Callable[..., None]
GOAL_MS = 150.0
SESSION = "bench0000-0000-4000-8000-000000000000"


def _wall(argv: list[str], data: bytes, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, input=data, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=env, check=True)
    return time.perf_counter() - start


def bench_hooks(quick: bool, add_row: AddRow, work: Path) -> None:
    records = 2_000 if quick else 10_000
    rounds = 9 if quick else 25
    bridge_dir = work / "bridge"
    with Bridge(bridge_dir, agent="kami", durability="none") as b:
        for chunk in range(0, records, 1000):
            list(b.send_many({"content": f"day's traffic {i}", "to": "kaylee"}
                             for i in range(chunk, min(chunk + 1000, records))))
        for i in range(5):
            b.send(f"open request {i} for claude", to="claude",
                   metadata={"whatsapp_sender": "972501234567@c.us"})
    bridge = str(Path(sys.executable).parent / "bridge")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "LANG": "C.UTF-8",
           "BRIDGE_CLAUDE_STATE": str(work / "state")}
    anchor = [sys.executable, "-c", "pass"]
    events = {
        "session-start": {"session_id": SESSION, "hook_event_name": "SessionStart",
                          "source": "startup"},
        "prompt": {"session_id": SESSION, "hook_event_name": "UserPromptSubmit",
                   "prompt": "what is new?"},
        "stop": {"session_id": SESSION, "hook_event_name": "Stop", "stop_hook_active": False},
    }
    for event, payload in events.items():
        _row(f"claude hook {event} wall ({records:,} records, 5 open)",
             [bridge, "hook", event, "--url", str(bridge_dir)], orjson.dumps(payload), env,
             anchor, rounds, add_row)
    _over_ssh(bridge, bridge_dir, records, env, anchor, rounds, orjson.dumps(
        events["prompt"]), work, add_row)


def _over_ssh(bridge: str, bridge_dir: Path, records: int, env: dict[str, str],
              anchor: list[str], rounds: int, data: bytes, work: Path, add_row: AddRow) -> None:
    """The prompt hook on an ssh:// bridge (the real sshd on loopback, tests/sshd.py)."""
    from tests.sshd import start_sshd

    server = start_sshd(work / "sshd")
    try:
        ssh_env = {**env, **server.home(work / "ssh-home")}
        _row(f"claude hook prompt wall over ssh:// (loopback sshd, {records:,} records)",
             [bridge, "hook", "prompt", "--url", server.url(bridge_dir)], data, ssh_env,
             anchor, rounds, add_row, goal=None)
    finally:
        server.stop()


def _row(name: str, argv: list[str], data: bytes, env: dict[str, str], anchor: list[str],
         rounds: int, add_row: AddRow, goal: float | None = GOAL_MS) -> None:
    _wall(argv, data, env)  # warm the page cache and .pyc files
    anchors, hooks = [], []
    for _ in range(rounds):
        anchors.append(_wall(anchor, b"", env))
        hooks.append(_wall(argv, data, env))
    hook_ms = statistics.median(hooks) * 1000
    anchor_ms = statistics.median(anchors) * 1000
    add_row(name,
            f"{hook_ms:.0f} ms (p90 {sorted(hooks)[int(len(hooks) * 0.9)] * 1000:.0f})",
            f"python -c pass {anchor_ms:.0f} ms", f"{hook_ms / anchor_ms:.1f}x",
            f"<= {goal:.0f} ms" if goal else "—", None if goal is None else hook_ms <= goal,
            {"hook_ms": hook_ms, "anchor_ms": anchor_ms, "rounds": rounds})
