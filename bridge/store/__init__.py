"""The local store: one directory holding the log, its lock, cursors, PAUSE file and the fold."""

# The names below are imported from their modules on first use (PEP 562), so
# importing this package costs nothing until one of them is asked for.

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._lazy import lazy_attribute

if TYPE_CHECKING:
    from ._cursor import (
        Cursor,
        CursorStore,
    )
    from ._fold import (
        Fold,
        FoldIssue,
        MessageState,
    )
    from ._fs import (
        LOG_NAME,
        Perms,
        atomic_write,
        check_filesystem,
        default_directory,
        fsync_dir,
        mode_problems,
        open_private,
        write_all,
    )
    from ._lock import (
        BridgeLock,
        lock_holders,
    )
    from ._pause import (
        PAUSE_NAME,
        PauseInfo,
        read_pause,
        remove_pause,
        write_pause,
    )
    from ._results import (
        DEFAULT_LEASE,
        DEFAULT_OLDER_THAN,
        BridgeStatus,
        History,
        MessageView,
        SendResult,
        StatusShortcuts,
    )
    from ._store import (
        LocalStore,
    )
    from ._transitions import (
        check_claim,
        check_lease,
        check_open,
        check_release,
        check_terminal_status,
    )
    from ._writer import (
        DURABILITY_MODES,
        Durability,
        LogWriter,
    )

_EXPORTS: dict[str, str] = {
    "BridgeLock": "._lock",
    "BridgeStatus": "._results",
    "Cursor": "._cursor",
    "CursorStore": "._cursor",
    "DEFAULT_LEASE": "._results",
    "DEFAULT_OLDER_THAN": "._results",
    "DURABILITY_MODES": "._writer",
    "Durability": "._writer",
    "Fold": "._fold",
    "FoldIssue": "._fold",
    "History": "._results",
    "LOG_NAME": "._fs",
    "LocalStore": "._store",
    "LogWriter": "._writer",
    "MessageState": "._fold",
    "MessageView": "._results",
    "PAUSE_NAME": "._pause",
    "PauseInfo": "._pause",
    "Perms": "._fs",
    "SendResult": "._results",
    "StatusShortcuts": "._results",
    "atomic_write": "._fs",
    "check_claim": "._transitions",
    "check_filesystem": "._fs",
    "check_lease": "._transitions",
    "check_open": "._transitions",
    "check_release": "._transitions",
    "check_terminal_status": "._transitions",
    "default_directory": "._fs",
    "fsync_dir": "._fs",
    "lock_holders": "._lock",
    "mode_problems": "._fs",
    "open_private": "._fs",
    "read_pause": "._pause",
    "remove_pause": "._pause",
    "write_all": "._fs",
    "write_pause": "._pause",
}


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _EXPORTS, name)


__all__ = [
    "DEFAULT_LEASE",
    "DEFAULT_OLDER_THAN",
    "DURABILITY_MODES",
    "LOG_NAME",
    "PAUSE_NAME",
    "BridgeLock",
    "BridgeStatus",
    "Cursor",
    "CursorStore",
    "Durability",
    "Fold",
    "FoldIssue",
    "History",
    "LocalStore",
    "LogWriter",
    "MessageState",
    "MessageView",
    "PauseInfo",
    "Perms",
    "SendResult",
    "StatusShortcuts",
    "atomic_write",
    "check_claim",
    "check_filesystem",
    "check_lease",
    "check_open",
    "check_release",
    "check_terminal_status",
    "default_directory",
    "fsync_dir",
    "lock_holders",
    "mode_problems",
    "open_private",
    "read_pause",
    "remove_pause",
    "write_all",
    "write_pause",
]
