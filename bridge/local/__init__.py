"""The local backend: a bridge directory on this machine."""

# The names below are imported from their modules on first use (PEP 562), so
# importing this package costs nothing until one of them is asked for.

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._lazy import lazy_attribute

if TYPE_CHECKING:
    from ._bridge import (
        DEFAULT_MAX_RECORD_BYTES,
        Bridge,
        parse_meta,
    )

_EXPORTS: dict[str, str] = {
    "Bridge": "._bridge",
    "DEFAULT_MAX_RECORD_BYTES": "._bridge",
    "parse_meta": "._bridge",
}


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _EXPORTS, name)


__all__ = [
    "DEFAULT_MAX_RECORD_BYTES",
    "Bridge",
    "parse_meta",
]
