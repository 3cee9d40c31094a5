"""What the hooks remember per Claude Code session: which messages it was told about.

One small JSON file per session id, in ``$BRIDGE_CLAUDE_STATE`` or
``$XDG_STATE_HOME/kami-bridge/claude`` (``~/.local/state/...``), written
atomically (temp file, rename; not fsynced) with mode 0600. It is a convenience, never
the truth: losing it means a request is announced again, never lost.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from ..store import Perms, atomic_write

__all__ = ["SessionState", "state_directory"]

KEEP_IDS = 20_000
"""A bound on the ids remembered per session. The hooks keep only ids still open, so
this is reached only by a backlog that large; past it the oldest are announced again."""

STALE_AFTER = 14 * 86400.0
"""Session files untouched this long are removed when a new session starts."""

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def state_directory() -> Path:
    env = os.environ.get("BRIDGE_CLAUDE_STATE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "kami-bridge" / "claude"


@dataclass
class SessionState:
    """The ids a session was shown (``announced``) and nagged about at Stop (``nagged``)."""

    path: Path | None
    announced: list[str] = field(default_factory=list)
    nagged: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, session_id: str | None) -> SessionState:
        """The session's state; empty (and not saved) without a usable session id."""
        name = _SAFE.sub("", session_id or "")[:128]
        if not name:
            return cls(None)
        path = state_directory() / f"{name}.json"
        try:
            doc = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return cls(path)
        if not isinstance(doc, dict):
            return cls(path)
        return cls(path, _ids(doc.get("announced")), _ids(doc.get("nagged")))

    def save(self) -> None:
        if self.path is None:
            return
        perms = Perms.for_group(None)
        perms.make_dir(self.path.parent)
        data = orjson.dumps({"announced": self.announced[-KEEP_IDS:],
                             "nagged": self.nagged[-KEEP_IDS:], "saved": time.time()})
        # Not fsynced: it runs on every prompt, and losing it only repeats an announcement.
        atomic_write(self.path, data, perms, durable=False)

    def prune(self, now: float | None = None) -> None:
        """Remove other sessions' files older than :data:`STALE_AFTER`."""
        if self.path is None:
            return
        cutoff = (time.time() if now is None else now) - STALE_AFTER
        try:
            entries = list(os.scandir(self.path.parent))
        except OSError:
            return
        for entry in entries:
            if entry.name == self.path.name:
                continue  # this session's own record, however old (a resumed session)
            try:
                if entry.name.endswith((".json", ".tmp")) and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
            except OSError:
                continue


def _ids(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
