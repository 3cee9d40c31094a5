"""Running the Claude Code CLI: its argv, its environment, its process group.

``claude -p --output-format stream-json --verbose`` runs as a subprocess (not through
claude-agent-sdk: no extra dependency, the same CLI people use, a process group the
worker can kill, and NDJSON it parses itself). The prompt goes in on stdin from a 0600
file — not in argv, where ``ps`` shows it and ARG_MAX limits it; the API key goes in
the environment, never in argv.

The child gets a session of its own (``start_new_session``), so it and the bridge MCP
server form one process group. That is not enough: the CLI starts the commands of its
Bash tool with ``setsid`` (measured with 2.1.197), in sessions of their own. So the
worker is a *child subreaper* (``PR_SET_CHILD_SUBREAPER``): whatever a run starts stays
below the worker even when its parent exits, and the run's whole process tree (found in
/proc, each process with its start time) is what is killed — at the timeout, on
``bridge cancel``, when the worker stops, and when the CLI ends (nothing a run started
outlives it). The CLI also gets ``PR_SET_PDEATHSIG`` = SIGKILL, so a worker killed with
SIGKILL takes the CLI with it; and the tree is recorded in ``<state>/run.json`` as it
grows, so that a restarted worker kills whatever of it is left before anything else.
(Under systemd, ``KillMode=control-group`` also ends it all when the worker dies.)
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

from bridge.store import Perms, atomic_write

from ._config import WorkerSettings

__all__ = ["alive", "become_subreaper", "build_argv", "child_environment", "descendants",
           "group_members", "kill_orphan", "kill_processes", "mcp_config", "pdeathsig",
           "process_start_time", "reap", "record_run", "signal_group"]

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36

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


def become_subreaper() -> None:
    """Orphans of the runs' processes are reparented to this process (not to init)."""
    if _prctl is not None:
        _prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


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


BRIDGE_TOOLS = tuple(f"mcp__bridge__{tool}" for tool in (
    "inbox", "show", "claim", "release", "reply", "done", "fail", "search", "status"))
"""The bridge tools a run may use unattended: not ``send``, ``pause`` or ``resume`` —
a request's text (from WhatsApp) must not be able to message other agents or stop the
network through the worker. Add them to ``allowed_tools`` to allow them."""


def build_argv(settings: WorkerSettings, *, mcp: str, resume: str | None,
               budget_left: float | None) -> list[str]:
    """The CLI's argv (no prompt, no secret: both go in otherwise)."""
    allowed = ",".join([*BRIDGE_TOOLS, *settings.allowed_tools])
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


def _stat(pid: int | str) -> tuple[int, int, int, bytes] | None:
    """(ppid, pgid, start time in clock ticks since boot, state) from ``/proc/PID/stat``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = stat[stat.rindex(b")") + 2:].split()
    return int(fields[1]), int(fields[2]), int(fields[19]), fields[0]


def process_start_time(pid: int) -> int | None:
    """A process's start time, which tells a pid from a later process with the same number."""
    stat = _stat(pid)
    return stat[2] if stat is not None else None


def _table() -> dict[int, tuple[int, int, int, bytes]]:
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(entry)
            if stat is not None:
                table[int(entry)] = stat
    return table


def descendants(root: int) -> dict[int, int]:
    """The living processes below ``root`` (not itself): pid → start time."""
    table = _table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out: dict[int, int] = {}
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        if pid in out:
            continue
        ppid, _, start, state = table[pid]
        if state != b"Z":
            out[pid] = start
        todo.extend(children.get(pid, []))
    return out


def group_members(pgid: int) -> list[int]:
    """The living processes whose process group is ``pgid``."""
    return [pid for pid, (_, group, _, state) in _table().items()
            if group == pgid and state != b"Z"]


def kill_processes(tree: dict[int, int], sig: int) -> int:
    """Signal each process of ``tree`` that is still the same process (pid and start time),
    and the process group it leads; return how many were signalled."""
    count = 0
    for pid, start in tree.items():
        stat = _stat(pid)
        if stat is None or stat[2] != start or stat[3] == b"Z":
            continue
        if stat[1] == pid:
            signal_group(pid, sig)
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            continue
        count += 1
    return count


def alive(tree: dict[int, int]) -> list[int]:
    """The processes of ``tree`` that are still there (zombies are not)."""
    out = []
    for pid, start in tree.items():
        stat = _stat(pid)
        if stat is not None and stat[2] == start and stat[3] != b"Z":
            out.append(pid)
    return out


def reap(pids: list[int] | dict[int, int]) -> None:
    """Collect the exit status of those that are (reparented) children of this process."""
    for pid in list(pids):
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            continue


def record_run(path: Path, pid: int, request: str, tree: dict[int, int] | None = None) -> None:
    """``<state>/run.json``: the run going on now — the CLI and the processes below it."""
    atomic_write(path, orjson.dumps({"pid": pid, "start": process_start_time(pid),
                                     "request": request, "since": time.time(),
                                     "tree": {str(k): v for k, v in (tree or {}).items()}}),
                 Perms(), durable=False)


def kill_orphan(path: Path, log: Callable[..., None], *, timeout: float = 10.0) -> str | None:
    """Kill what is left of a run a previous worker started (after a SIGKILL, say); return
    that run's request id (None if there was none).

    Every recorded process is killed if it is still the same process (its start time
    matches); the CLI's process group is killed if its leader is that process, or is gone
    while members of the group live on (a group's id is not reused while it has members).
    """
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, orjson.JSONDecodeError):
        path.unlink(missing_ok=True)
        return None
    if not isinstance(data, dict):
        path.unlink(missing_ok=True)
        return None
    pid, request = data.get("pid"), data.get("request")
    raw = data.get("tree")
    if not isinstance(raw, dict):
        raw = {}
    tree = {int(k): int(v) for k, v in raw.items()
            if str(k).isdigit() and isinstance(v, int)}
    killed = 0
    if isinstance(pid, int) and pid > 1:
        started = process_start_time(pid)
        if started is None or started == data.get("start"):
            members = group_members(pid)
            if members:
                signal_group(pid, signal.SIGKILL)
                killed += len(members)
        else:
            log("orphan.reused", pid=pid)
    killed += kill_processes(tree, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while (alive(tree) or (isinstance(pid, int) and pid > 1 and group_members(pid))) and \
            time.monotonic() < deadline:
        time.sleep(0.02)
    if killed:
        log("orphan.killed", pgid=pid, processes=killed, request=request)
    path.unlink(missing_ok=True)
    return request if isinstance(request, str) else None
