"""What ``bridge ping`` reports: connection time, round trips, versions, pause."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..store import PauseInfo

__all__ = ["PingResult"]


@dataclass(frozen=True)
class PingResult:
    """What ``bridge ping`` reports (for a local bridge: no connection, no round trips)."""

    url: str
    connect_ms: float | None
    rtt_ms: list[float]
    protocol: int | None
    server: str
    directory: str
    paused: PauseInfo | None

    @property
    def remote(self) -> bool:
        return self.protocol is not None

    def to_dict(self) -> dict[str, Any]:
        rtt = sorted(self.rtt_ms)
        return {
            "url": self.url, "remote": self.remote, "version": self.server,
            "protocol": self.protocol, "directory": self.directory,
            "connect_ms": None if self.connect_ms is None else round(self.connect_ms, 2),
            "rtt_ms": {"min": round(rtt[0], 3), "median": round(rtt[len(rtt) // 2], 3),
                       "max": round(rtt[-1], 3), "count": len(rtt)} if rtt else None,
            "paused": self.paused is not None,
            "pause": self.paused.to_dict() if self.paused else None,
        }  # fmt: skip
