"""Running the Claude Code CLI: its argv, its environment, its process group.

``claude -p --output-format stream-json --verbose`` runs as a subprocess (not through
claude-agent-sdk: no extra dependency, the same CLI people use, a process group the
worker can kill, and NDJSON it parses itself). The prompt goes in on stdin from a 0600
file — not in argv, where ``ps`` shows it and ARG_MAX limits it; the API key goes in
the environment, never in argv.

The child gets a session of its own (``start_new_session``): it and everything it
starts — the bridge MCP server, the tools' commands — form one process group, killed
as a whole at the timeout, on ``bridge cancel`` or when the worker stops. The child
also gets ``PR_SET_PDEATHSIG`` = SIGKILL, so a worker killed with SIGKILL takes the CLI
with it; and the group is recorded in ``<state>/run.json`` (pid, its start time, the
request) so that a restarted worker kills whatever of it is left before anything else.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bridge._fs import Perms, atomic_write

from ._config import WorkerSettings

__all__ = ["build_argv", "child_environment", "kill_orphan", "mcp_config", "pdeathsig",
           "process_start_time", "record_run", "signal_group"]

PR_SET_PDEATHSIG = 1

_libc: Any = None
try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    _prctl = _libc.prctl
except (OSError, AttributeError):  # pragma: no cover - not Linux/glibc
    _prctl = None


def pdeathsig() -> None:
    """``preexec_fn`` of the CLI: SIGKILL when the thread that started it dies. (That thread
    is the run's own, which lives until the CLI has exited; a dead worker is what fires it.)"""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def mcp_config(settings: WorkerSettings, bridge_url: str) -> str:
    """``--mcp-config``: the bridge MCP server, as ``bridge``, claiming as the worker does."""
    server: dict[str, Any] = {
        "type": "stdio",
        "command": sys.executable,
        "args": ["-m", "bridge.claude", "mcp", "--url", bridge_url, "--agent", settings.agent,
                 "--as", settings.identity],
    }
    if os.environ.get("PYTHONPATH"):
        # A development checkout: the server imports the same bridge package as the worker.
        server["env"] = {"PYTHONPATH": os.environ["PYTHONPATH"]}
    return orjson.dumps({"mcpServers": {"bridge": server}}).decode()


def build_argv(settings: WorkerSettings, *, mcp: str, resume: str | None,
               budget_left: float | None) -> list[str]:
    """The CLI's argv (no prompt, no secret: both go in otherwise)."""
    allowed = ",".join(["mcp__bridge", *settings.allowed_tools])
    argv = [settings.claude, "-p", "--output-format", "stream-json", "--verbose",
            "--max-turns", str(settings.max_turns),
            "--mcp-config", mcp, "--strict-mcp-config",
            "--allowedTools", allowed,
            "--permission-mode", settings.permission_mode]
    if settings.disallowed_tools:
        argv += ["--disallowedTools", ",".join(settings.disallowed_tools)]
    if settings.model:
        argv += ["--model", settings.model]
    if budget_left is not None:
        # The CLI stops a run that would spend more than what is left of today's budget.
        argv += ["--max-budget-usd", f"{max(budget_left, 0.0):.6f}"]
    if resume:
        argv += ["--resume", resume]
    return argv


def child_environment(settings: WorkerSettings, home: Path) -> dict[str, str]:
    """Only what the CLI needs: nothing else of the worker's environment reaches it."""
    env = {
        "PATH": settings.path,
        "HOME": str(home),
        "LANG": os.environ.get("LANG") or "C.UTF-8",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        # Wait for the MCP servers before the first request: the bridge's tools exist
        # on the first turn.
        "MCP_CONNECTION_NONBLOCKING": "0",
        # So hooks a project installed can tell a headless worker session from a person's.
        "BRIDGE_CLAUDE_WORKER": settings.identity,
    }
    if os.environ.get("TZ"):
        env["TZ"] = os.environ["TZ"]
    if settings.api_key:
        env["ANTHROPIC_API_KEY"] = settings.api_key.reveal()
    if settings.base_url:
        env["ANTHROPIC_BASE_URL"] = settings.base_url
    return env


def signal_group(pgid: int, sig: int) -> bool:
    """Signal a process group; False when it is gone."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def process_start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (``/proc/PID/stat`` field 22),
    which tells a pid from a later process that got the same number."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = stat[stat.rindex(b")") + 2:].split()
    return int(fields[19])


def group_members(pgid: int) -> list[int]:
    """The processes whose process group is ``pgid``."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] != b"Z":
            members.append(int(entry))
    return members


def record_run(path: Path, pid: int, request: str) -> None:
    """``<state>/run.json``: the group of the run going on now."""
    atomic_write(path, orjson.dumps({"pid": pid, "start": process_start_time(pid),
                                     "request": request, "since": time.time()}), Perms())


def kill_orphan(path: Path, log: Callable[..., None], *, timeout: float = 10.0) -> str | None:
    """Kill what is left of a run a previous worker started (after a SIGKILL, say); return
    that run's request id (None if there was none).

    The recorded pid is the group's id. If a process with that pid exists but started at
    another time, the number was reused and nothing is killed; if it exists and is the
    same process, or is gone while members of its group live on (a group's id is not
    reused while it has members), the group is killed.
    """
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, orjson.JSONDecodeError):
        path.unlink(missing_ok=True)
        return None
    pid = data.get("pid") if isinstance(data, dict) else None
    request = data.get("request") if isinstance(data, dict) else None
    if not isinstance(pid, int) or pid <= 1:
        path.unlink(missing_ok=True)
        return request if isinstance(request, str) else None
    started = process_start_time(pid)
    if started is not None and started != data.get("start"):
        log("orphan.reused", pid=pid)
    else:
        members = group_members(pid)
        if members:
            signal_group(pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
            while group_members(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            log("orphan.killed", pgid=pid, processes=len(members), request=request)
    path.unlink(missing_ok=True)
    return request if isinstance(request, str) else None
