"""What the layers above the store see of a local bridge: its directory and the files in it.

Following, rotation, search, the doctor and statistics work on a bridge
directory, not on the :class:`bridge.Bridge` API; typing them against this
small interface keeps them below the backend that uses them (no import circle)
and lets any object holding these files — the SFTP fallback's mirror too — be
followed, rotated or checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from ._cursor import CursorStore
from ._fs import Perms
from ._lock import BridgeLock

__all__ = ["LocalStore"]


class LocalStore(Protocol):
    """A bridge directory opened on this machine."""

    agent: str
    """The name written as ``from`` (rotation's own records)."""
    directory: Path
    log_path: Path
    perms: Perms
    lock: BridgeLock
    cursors: CursorStore
