"""Rotation hooks (the rotation itself arrives with the rotation issue).

A rotation replaces the live file by rename; a follower positioned in the old
file asks :func:`relocate_offset` where the same position lies in the new one.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["relocate_offset"]


def relocate_offset(
    directory: Path, old_epoch: str | None, old_offset: int, new_epoch: str | None
) -> int | None:
    """The offset in the new live file equivalent to ``old_offset`` in ``old_epoch``.

    None when no rotation map links the two files.
    """
    del directory, old_epoch, old_offset, new_epoch
    return None
