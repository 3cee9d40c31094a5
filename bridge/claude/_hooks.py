"""``bridge hook session-start|prompt|stop``: the bridge, as Claude Code's hooks see it.

Each hook reads the event's JSON on stdin and prints what Claude Code expects:

- ``session-start`` (SessionStart): a digest of the messages waiting for the
  agent, as ``hookSpecificOutput.additionalContext``; nothing when none wait;
- ``prompt`` (UserPromptSubmit): the same, for messages this session was not
  yet told about (a per-session record of announced ids, so each is announced
  once);
- ``stop`` (Stop): ``{"decision": "block", "reason": …}`` once per message when
  the session claimed a request and has not answered it, or a high-priority
  request arrived that it was not told about; nothing when the input says
  ``stop_hook_active`` (Claude Code is already continuing because of a Stop
  hook: blocking again would only loop, and every forced turn is a full model
  request).

A hook must never break the user's session: bad or missing stdin, an
unreachable or paused bridge, any error — it exits 0 with at most one line on
stderr (Claude Code shows a hook's stderr only in its debug view). Each runs on
every prompt, so this module imports only what a local bridge needs.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from .._errors import BridgeError, BridgeUnavailable
from .._url import parse_url
from ..store import default_directory, read_pause
from ._digest import MessageView, digest_shown, plain, provenance, wanted
from ._identity import session_identity
from ._local_inbox import read_waiting
from ._session_state import SessionState

if TYPE_CHECKING:
    from .._api import Backend
    from ..store import PauseInfo

__all__ = ["EVENTS", "run_hook"]

EVENTS = {"session-start": "SessionStart", "prompt": "UserPromptSubmit", "stop": "Stop"}

WORKER_ENV = "BRIDGE_CLAUDE_WORKER"
"""Set by the headless worker for its runs of the CLI: the hooks stay silent there."""

LOCAL_LOCK_TIMEOUT = 2.0
"""A hook only reads; it never waits long for anything."""


def _read_input(stdin: IO[bytes]) -> dict[str, Any] | None:
    try:
        data = stdin.read(1 << 20)
        doc = orjson.loads(data) if data.strip() else None
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


class _Local:
    """A bridge directory on this machine, read without the library's writer side."""

    def __init__(self, directory: Path) -> None:
        if not directory.is_dir():
            raise BridgeUnavailable(f"bridge directory {directory} does not exist")
        self.directory = directory
        self.where = str(directory)

    def waiting(self, agent: str, now: float) -> Sequence[MessageView]:
        return read_waiting(self.directory, agent, now)

    def paused(self) -> PauseInfo | None:
        return read_pause(self.directory)

    def close(self) -> None:
        pass


class _Connected:
    """Any other bridge (ssh://), through the library."""

    def __init__(self, bridge: Backend, where: str) -> None:
        self.bridge = bridge
        self.where = where

    def waiting(self, agent: str, now: float) -> Sequence[MessageView]:
        return self.bridge.inbox(agent)

    def paused(self) -> PauseInfo | None:
        return self.bridge.paused()

    def close(self) -> None:
        self.bridge.close()


def _open(url: str | None, agent: str) -> _Local | _Connected:
    parsed = parse_url(url)
    if not parsed.remote:
        if parsed.path:
            return _Local(Path(parsed.path).expanduser())
        return _Local(default_directory())
    from .._connect import connect

    return _Connected(connect(parsed, agent=agent, create=False,
                              lock_timeout=LOCAL_LOCK_TIMEOUT), str(url))


def _context(event: str, text: str) -> bytes:
    return orjson.dumps({"hookSpecificOutput": {"hookEventName": event,
                                                "additionalContext": text}},
                        option=orjson.OPT_APPEND_NEWLINE)


def _open_for(b: _Local | _Connected, agent: str, identity: str, now: float
              ) -> list[MessageView]:
    return [v for v in b.waiting(agent, now) if wanted(v, identity, now)]


def _announce(state: SessionState, open_views: Sequence[MessageView], shown: list[str]) -> None:
    """Remember what was shown; forget ids no longer open (they cannot come back open)."""
    still_open = {v.id for v in open_views}
    state.announced = [i for i in state.announced if i in still_open]
    known = set(state.announced)
    state.announced.extend(i for i in shown if i not in known)
    state.save()


def _session_start(b: _Local | _Connected, doc: dict[str, Any], agent: str) -> bytes | None:
    session = doc.get("session_id") if isinstance(doc.get("session_id"), str) else None
    identity = session_identity(agent, session)
    state = SessionState.load(session)
    state.prune()
    paused = b.paused()
    now = time.time()
    everything = _open_for(b, agent, identity, now)
    views = everything
    if doc.get("source") == "resume":
        # The resumed conversation holds the earlier digests: tell only what is new.
        # (After "compact" the conversation is a summary: everything is told again.)
        known = set(state.announced)
        views = [v for v in views if v.id not in known]
    lines: list[str] = []
    if paused is not None:
        reason = f": {orjson.dumps(paused.reason).decode()}" if paused.reason else ""
        lines.append(f"kami-bridge is paused{reason} (no agent takes new work until "
                     "`bridge resume`).")
    if views:
        text, shown = digest_shown(views, agent=agent, identity=identity, where=b.where,
                                   now=now)
        lines.append(text)
        _announce(state, everything, shown)
    return _context("SessionStart", "\n".join(lines)) if lines else None


def _prompt(b: _Local | _Connected, doc: dict[str, Any], agent: str) -> bytes | None:
    session = doc.get("session_id") if isinstance(doc.get("session_id"), str) else None
    identity = session_identity(agent, session)
    state = SessionState.load(session)
    known = set(state.announced)
    now = time.time()
    everything = _open_for(b, agent, identity, now)
    new = [v for v in everything if v.id not in known]
    if not new:
        return None
    text, shown = digest_shown(new, agent=agent, identity=identity, where=b.where,
                               heading="new", now=now)
    _announce(state, everything, shown)
    return _context("UserPromptSubmit", text)


def _stop(b: _Local | _Connected, doc: dict[str, Any], agent: str) -> bytes | None:
    if doc.get("stop_hook_active") is True:
        return None
    session = doc.get("session_id") if isinstance(doc.get("session_id"), str) else None
    if session is None:
        return None  # without a session there is no claim of "this session" to check
    identity = session_identity(agent, session)
    state = SessionState.load(session)
    nagged = set(state.nagged)
    announced = set(state.announced)
    now = time.time()
    views = _open_for(b, agent, identity, now)
    # A claim whose lease ran out is no longer the session's to answer.
    claimed = {v.id for v in views if v.state.effective_status(now) == "claimed"}
    mine = [v for v in views if v.id in claimed and v.id not in nagged]
    urgent = [v for v in views if v.id not in claimed and v.state.priority == "high"
              and v.message.type == "request" and v.id not in announced
              and v.id not in nagged]
    if not mine and not urgent:
        return None
    parts: list[str] = []
    if mine:
        parts.append("You claimed " + "; ".join(f"{plain(v.id)} (from {provenance(v)})"
                                               for v in mine)
                     + " on kami-bridge and have not answered: answer with "
                     "mcp__bridge__reply, or hand it back with mcp__bridge__release.")
    if urgent:
        parts.append("A high-priority request arrived on kami-bridge: "
                     + "; ".join(f"{plain(v.id)} (from {provenance(v)})" for v in urgent)
                     + ". Read it with mcp__bridge__show; claim it if you take it.")
    still_open = {v.id for v in views}
    state.nagged = [i for i in state.nagged if i in still_open]
    state.nagged.extend(v.id for v in mine + urgent)
    state.announced.extend(v.id for v in urgent if v.id not in announced)
    state.save()
    return orjson.dumps({"decision": "block", "reason": " ".join(parts)},
                        option=orjson.OPT_APPEND_NEWLINE)


def run_hook(event: str, argv: Sequence[str] = (), *, stdin: IO[bytes] | None = None,
             stdout: IO[bytes] | None = None, stderr: IO[str] | None = None) -> int:
    """Run one hook; always returns 0 (a hook must not fail the user's session).

    ``argv`` may give ``--url URL`` (default ``$BRIDGE_URL``, else ``$BRIDGE_DIR``,
    else ``~/.claude/kami-bridge``) and ``--agent NAME`` (default ``claude``).
    """
    stdin = stdin or sys.stdin.buffer
    stdout = stdout or sys.stdout.buffer
    stderr = stderr or sys.stderr
    if os.environ.get(WORKER_ENV):
        # A run of the headless worker (in a project that also has the hooks): its prompt
        # names its one request, and it claims as the worker, not as this session.
        return 0
    try:
        _run(event, argv, stdin, stdout, stderr)
    except Exception as exc:  # noqa: BLE001 - a hook must never break the session
        print(f"bridge hook {event}: unexpected {type(exc).__name__}: {exc}", file=stderr)
    return 0


def _run(event: str, argv: Sequence[str], stdin: IO[bytes], stdout: IO[bytes],
         stderr: IO[str]) -> None:
    try:
        url, agent = _options(argv)
    except ValueError as exc:
        print(f"bridge hook: {exc}", file=stderr)
        return
    if event not in EVENTS:
        print(f"bridge hook: unknown hook {event!r} (use {', '.join(EVENTS)})", file=stderr)
        return
    doc = _read_input(stdin)
    if doc is None:
        print(f"bridge hook {event}: no JSON object on stdin; nothing to do", file=stderr)
        return
    try:
        b = _open(url, agent)
    except (BridgeError, OSError, RuntimeError) as exc:
        # RuntimeError: Path.home()/expanduser() without a resolvable home.
        print(f"bridge hook {event}: bridge unavailable: {exc}", file=stderr)
        return
    try:
        if event == "session-start":
            output = _session_start(b, doc, agent)
        elif event == "prompt":
            output = _prompt(b, doc, agent)
        else:
            output = _stop(b, doc, agent)
    except (BridgeError, OSError) as exc:
        print(f"bridge hook {event}: {exc}", file=stderr)
        return
    finally:
        b.close()
    if output:
        try:
            stdout.write(output)
            stdout.flush()
        except OSError:
            pass


def _options(argv: Sequence[str]) -> tuple[str | None, str]:
    url: str | None = None
    agent = "claude"
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg in ("--url", "-u", "--agent") and args:
            value = args.pop(0)
        elif arg.startswith(("--url=", "--agent=")):
            arg, value = arg.split("=", 1)
        else:
            raise ValueError(f"unknown option {arg!r} (use --url URL, --agent NAME)")
        if arg in ("--url", "-u"):
            url = value
        else:
            agent = value
    return url or os.environ.get("BRIDGE_URL") or None, agent
