"""The archive: rotating old records out of the log, and searching the archives."""

# The names below are imported from their modules on first use (PEP 562), so
# importing this package costs nothing until one of them is asked for.

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._lazy import lazy_attribute

if TYPE_CHECKING:
    from ._archive import (
        list_archives,
    )
    from ._rotate import (
        DEFAULT_OLDER_THAN,
        TMP_NAME,
        RotationResult,
        pending_archive_sizes,
        repair_rotation,
        rotate,
        rotation_running,
        rotation_state,
    )
    from ._rotation_map import (
        relocate_offset,
    )
    from ._search import (
        Hit,
        Matcher,
        find_archived,
        iter_archive,
        search,
    )

_EXPORTS: dict[str, str] = {
    "DEFAULT_OLDER_THAN": "._rotate",
    "Hit": "._search",
    "Matcher": "._search",
    "RotationResult": "._rotate",
    "TMP_NAME": "._rotate",
    "find_archived": "._search",
    "iter_archive": "._search",
    "list_archives": "._archive",
    "pending_archive_sizes": "._rotate",
    "relocate_offset": "._rotation_map",
    "repair_rotation": "._rotate",
    "rotate": "._rotate",
    "rotation_running": "._rotate",
    "rotation_state": "._rotate",
    "search": "._search",
}


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _EXPORTS, name)


__all__ = [
    "DEFAULT_OLDER_THAN",
    "TMP_NAME",
    "Hit",
    "Matcher",
    "RotationResult",
    "find_archived",
    "iter_archive",
    "list_archives",
    "pending_archive_sizes",
    "relocate_offset",
    "repair_rotation",
    "rotate",
    "rotation_running",
    "rotation_state",
    "search",
]
