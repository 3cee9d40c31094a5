"""PAUSE: a file in the bridge directory that halts every agent until it is removed.

It is a file, not a message, so that a human can stop everything with
``touch PAUSE`` (or ``bridge pause``) without any agent's cooperation, and so that
checking it costs one ``stat``. Agents check it in code before taking work. The
file may hold JSON saying who paused and why; an empty file means "paused, by
someone unknown".
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import orjson

from ..format import now_ts
from ._fs import Perms, atomic_write

__all__ = ["PAUSE_NAME", "PauseInfo", "read_pause", "remove_pause", "write_pause"]

PAUSE_NAME = "PAUSE"


@dataclass(frozen=True, slots=True)
class PauseInfo:
    """Who paused the bridge, why, and since when (each may be unknown)."""

    by: str | None = None
    reason: str | None = None
    since: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {"by": self.by, "reason": self.reason, "since": self.since}


def read_pause(directory: Path) -> PauseInfo | None:
    """The pause state, or None when the bridge is not paused."""
    try:
        data = (directory / PAUSE_NAME).read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        return PauseInfo(reason="PAUSE is a directory")
    try:
        obj = orjson.loads(data) if data.strip() else {}
    except orjson.JSONDecodeError:
        # A human wrote free text into it: that is the reason.
        return PauseInfo(reason=data.decode("utf-8", "replace").strip()[:500] or None)
    if not isinstance(obj, dict):
        return PauseInfo()

    def text(key: str) -> str | None:
        value = obj.get(key)
        return value if isinstance(value, str) else None

    return PauseInfo(by=text("by"), reason=text("reason"), since=text("since"))


def write_pause(directory: Path, perms: Perms, *, by: str, reason: str | None) -> PauseInfo:
    """Create (or replace) the PAUSE file atomically."""
    info = PauseInfo(by=by, reason=reason, since=now_ts())
    atomic_write(directory / PAUSE_NAME, orjson.dumps(info.to_dict()) + b"\n", perms)
    return info


def remove_pause(directory: Path) -> bool:
    """Remove the PAUSE file; True if it was there."""
    with contextlib.suppress(FileNotFoundError):
        (directory / PAUSE_NAME).unlink()
        return True
    return False
