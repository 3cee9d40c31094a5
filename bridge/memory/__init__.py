"""A bridge held in this process (``memory://NAME``): the contract without a file, for tests."""

# The names below are imported from their modules on first use (PEP 562), so
# importing this package costs nothing until one of them is asked for.

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._lazy import lazy_attribute

if TYPE_CHECKING:
    from ._backend import (
        MemoryBridge,
        MemoryFollower,
        forget,
    )

_EXPORTS: dict[str, str] = {
    "MemoryBridge": "._backend",
    "MemoryFollower": "._backend",
    "forget": "._backend",
}


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _EXPORTS, name)


__all__ = [
    "MemoryBridge",
    "MemoryFollower",
    "forget",
]
