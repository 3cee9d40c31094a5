"""Inspection: the doctor (consistency checks and repair) and statistics."""

# The names below are imported from their modules on first use (PEP 562), so
# importing this package costs nothing until one of them is asked for.

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._lazy import lazy_attribute

if TYPE_CHECKING:
    from ._doctor import (
        DoctorReport,
        Finding,
        run_doctor,
    )
    from ._ping import (
        PingResult,
    )
    from ._stats import (
        compute_stats,
        stats_of,
    )

_EXPORTS: dict[str, str] = {
    "DoctorReport": "._doctor",
    "Finding": "._doctor",
    "PingResult": "._ping",
    "compute_stats": "._stats",
    "run_doctor": "._doctor",
    "stats_of": "._stats",
}


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _EXPORTS, name)


__all__ = [
    "DoctorReport",
    "Finding",
    "PingResult",
    "compute_stats",
    "run_doctor",
    "stats_of",
]
