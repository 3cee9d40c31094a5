"""One Claude session per conversation, kept across requests and restarts.

A conversation is (the requesting agent, the WhatsApp chat — ``metadata.whatsapp_sender`` —
or else the root of the request's thread, the project). Claude Code keeps a session's
transcript under ``$HOME/.claude/projects/<its working directory>/``, so the project is
part of the key: ``--resume`` finds a session only from the directory it began in.

The store is ``<state>/sessions.json`` (0600), replaced atomically on every change; a
damaged file is set aside (``sessions.json.damaged``) and the worker starts afresh.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import orjson

from bridge.format import format_ts
from bridge.store import Perms, atomic_write

__all__ = ["SessionStore", "conversation_key"]

MAX_SESSIONS = 10_000
"""Conversations remembered; the least recently used are forgotten beyond it."""


def conversation_key(agent: str, conversation: str, project: str) -> str:
    """The store's key (agent names, chat ids and project names hold no ``|``)."""
    return f"{agent}|{conversation}|{project}"


class SessionStore:
    """conversation key → Claude session id, persisted on every change (any thread)."""

    def __init__(self, path: Path, *, warn: Any = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._sessions: dict[str, dict[str, Any]] = {}
        try:
            data = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            return
        except (OSError, orjson.JSONDecodeError) as exc:
            self._set_aside(warn, str(exc))
            return
        sessions = data.get("sessions") if isinstance(data, dict) else None
        if not isinstance(sessions, dict):
            self._set_aside(warn, "no sessions table")
            return
        for key, entry in sessions.items():
            if isinstance(entry, dict) and isinstance(entry.get("session_id"), str):
                self._sessions[str(key)] = entry

    def _set_aside(self, warn: Any, why: str) -> None:
        damaged = self.path.with_name(self.path.name + ".damaged")
        try:
            self.path.replace(damaged)
        except OSError:
            pass
        if warn is not None:
            warn("sessions.damaged", file=str(self.path), kept_as=str(damaged), error=why)

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, key: str) -> str | None:
        with self._lock:
            entry = self._sessions.get(key)
            return str(entry["session_id"]) if entry is not None else None

    def put(self, key: str, session_id: str) -> None:
        with self._lock:
            entry = self._sessions.pop(key, None) or {}
            if entry.get("session_id") == session_id:
                entry["updated"] = format_ts(time.time())
            else:
                entry = {"session_id": session_id, "created": format_ts(time.time()),
                         "updated": format_ts(time.time())}
            self._sessions[key] = entry  # re-inserted: the dict's order is recency
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.pop(next(iter(self._sessions)))
            self._save()

    def forget(self, key: str) -> None:
        with self._lock:
            if self._sessions.pop(key, None) is not None:
                self._save()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(self.path, orjson.dumps({"sessions": self._sessions},
                                             option=orjson.OPT_INDENT_2), Perms())
