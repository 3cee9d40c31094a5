"""The headless Claude worker's own overhead per request, the model's and the CLI's time
excluded.

The real Claude Code CLI runs against the fake Messages API (an instant model) with the
bridge MCP server, exactly as the worker starts it. Rounds alternate:

- anchor: that same argv (``claude -p --output-format stream-json --verbose … --mcp-config``
  with ``bridge.claude mcp``), the same environment and working directory, run directly
  — the CLI's own wall time;
- subject: a request appended to the bridge for ``claude`` (delay 0, a new chat each time,
  so neither side resumes a session) until the worker's reply is on the bridge.

Overhead = median(subject) - median(anchor): noticing the request, claiming it, the
"working on it" line, the prompt file, reading the stream, the ledger, the reply.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bridge import Bridge
from bridge.testing.messages_api import FakeMessagesAPI, text

AddRow = Callable[..., None]
CLAUDE_BIN = ROOT / ".tools" / "claude-code" / "node_modules" / ".bin" / "claude"
API_KEY = "sk-ant-bench-0000"


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.002)


def bench_claude_worker(quick: bool, add: AddRow, work: Path) -> None:
    """One row: the worker's overhead per request beside the CLI's own wall time."""
    if not (CLAUDE_BIN.exists() and os.access(CLAUDE_BIN, os.X_OK)):
        add("Claude worker: overhead per request (beyond the CLI's own time)", "skipped",
            f"the Claude Code CLI is not installed ({CLAUDE_BIN})", "", "≤ 1 s", None, {})
        return
    from bridge.runtime import load_config
    from claude_worker import ClaudeWorkerConfig
    from claude_worker._process import build_argv, child_environment, mcp_config

    rounds = 3 if quick else 8
    project = work / "project"
    project.mkdir(parents=True, exist_ok=True)
    state = work / "state"
    with FakeMessagesAPI(api_key=API_KEY, responder=lambda body: text("ok")) as api:
        path = f"{CLAUDE_BIN.parent}:{Path(sys.executable).parent}:/usr/bin:/bin"
        config = work / "claude-worker.toml"
        config.write_text(
            f'bridge = "{work / "bridge"}"\n[health]\nport = 0\n[claude_worker]\n'
            f'claude = "{CLAUDE_BIN}"\npath = "{path}"\ndelay = "0s"\n'
            f'state_dir = "{state}"\nbase_url = "{api.url}"\ndefault_project = "main"\n'
            f'[claude_worker.projects]\nmain = "{project}"\n')
        env = {**os.environ, "PYTHONPATH": str(ROOT), "CLAUDE_WORKER_ANTHROPIC_API_KEY": API_KEY}
        bridge = Bridge(work / "bridge", agent="kami")
        cfg = load_config(ClaudeWorkerConfig, "claude-worker", config,
                          env={"CLAUDE_WORKER_ANTHROPIC_API_KEY": API_KEY})
        settings = cfg.claude_worker
        anchor_home = work / "anchor-home"
        anchor_home.mkdir(exist_ok=True)
        argv = build_argv(settings, mcp=mcp_config(settings, str(work / "bridge")), resume=None,
                          budget_left=settings.daily_budget_usd)
        child_env = child_environment(settings, anchor_home)
        prompt = work / "prompt.txt"
        prompt.write_text("A request for claude arrived on the kami-bridge.\n"
                          "~~~~text\nping\n~~~~\n")
        log = (work / "worker.log").open("wb")
        worker = subprocess.Popen([sys.executable, "-m", "claude_worker", "run", "--config",
                                   str(config)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                  stderr=log)
        try:
            _wait(lambda: b"worker.ready" in (work / "worker.log").read_bytes(), 60,
                  "the worker to start")

            def anchor() -> float:
                started = time.monotonic()
                with prompt.open("rb") as stdin:
                    done = subprocess.run(argv, stdin=stdin, env=child_env, cwd=project,
                                          capture_output=True, timeout=120, check=False)
                seconds = time.monotonic() - started
                if b'"type":"result"' not in done.stdout:
                    raise RuntimeError(f"the CLI gave no result: {done.stderr[-300:]!r}")
                return seconds

            def subject(i: int) -> float:
                started = time.monotonic()
                rid = bridge.send(f"ping {i}", to="claude", type="request",
                                  metadata={"whatsapp_sender": f"97250000{i:04d}@c.us"}).id
                _wait(lambda: bridge.get(rid).state.status in ("done", "failed"), 120,
                      f"the answer to {rid}")
                if bridge.get(rid).state.status != "done":
                    raise RuntimeError(f"{rid}: {bridge.get(rid).state.reason}")
                return time.monotonic() - started

            anchor()  # warm: the first run of the CLI pays for its page cache
            anchors: list[float] = []
            subjects: list[float] = []
            for i in range(rounds):
                anchors.append(anchor())
                subjects.append(subject(i))
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(timeout=60)
            log.close()
            bridge.close()
    a, s = statistics.median(anchors), statistics.median(subjects)
    overhead = s - a
    add("Claude worker: overhead per request (beyond the CLI's own time)",
        f"{overhead * 1000:.0f} ms (request → reply {s:.2f} s)",
        f"the same claude -p with the bridge MCP server, run directly: {a:.2f} s "
        f"(median of {rounds}, interleaved)",
        f"{s / a:.2f}x", "≤ 1 s", overhead <= 1.0,
        {"overhead": overhead, "subject": subjects, "anchor": anchors})


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        bench_claude_worker("--quick" in sys.argv, lambda *row: print(*row[:6], sep="\n  "),
                            Path(tmp))
