"""Delivery: watching the log for change and following it from a position."""

# The names below are imported from their modules on first use (PEP 562), so
# importing this package costs nothing until one of them is asked for.

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._lazy import lazy_attribute

if TYPE_CHECKING:
    from ._follow import (
        Follower,
        Start,
    )
    from ._loop import (
        FollowLoop,
    )
    from ._watch import (
        ChangeWaiter,
        WakePipe,
    )

_EXPORTS: dict[str, str] = {
    "ChangeWaiter": "._watch",
    "FollowLoop": "._loop",
    "Follower": "._follow",
    "Start": "._follow",
    "WakePipe": "._watch",
}


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _EXPORTS, name)


__all__ = [
    "ChangeWaiter",
    "FollowLoop",
    "Follower",
    "Start",
    "WakePipe",
]
