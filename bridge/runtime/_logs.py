"""Reading agent logs back: ``bridge logs`` filters JSON log lines by agent, level, event, time.

Accepts the agents' log files and, for ``journalctl -o cat`` output, lines with
a ``<N>`` priority prefix. Lines that are not JSON objects are skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from ..format import parse_ts

__all__ = ["LEVEL_RANK", "LogFilter", "parse_log_line", "read_logs"]

LEVEL_RANK = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


def parse_log_line(raw: bytes | str) -> dict[str, Any] | None:
    """One log line as a dict, or None when it is not one of ours."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = text.strip()
    if text.startswith("<") and ">" in text[:4]:
        text = text[text.index(">") + 1:]
    if not text.startswith("{"):
        return None
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or "event" not in obj or "ts" not in obj:
        return None
    return obj


@dataclass(frozen=True)
class LogFilter:
    """What ``bridge logs`` keeps: every condition given must hold."""

    agent: str | None = None
    level: str | None = None  # this level and above
    event: str | None = None  # exact, or a prefix ending in "." or "*"
    since: float | None = None
    until: float | None = None

    def __call__(self, line: dict[str, Any]) -> bool:
        if self.agent is not None and line.get("agent") != self.agent:
            return False
        if self.level is not None and \
                LEVEL_RANK.get(str(line.get("level")), 0) < LEVEL_RANK[self.level]:
            return False
        if self.event is not None:
            event = str(line.get("event"))
            if self.event.endswith(("*", ".")):
                if not event.startswith(self.event.rstrip("*")):
                    return False
            elif event != self.event:
                return False
        if self.since is not None or self.until is not None:
            try:
                ts = parse_ts(str(line.get("ts")))
            except ValueError:
                return False
            if self.since is not None and ts < self.since:
                return False
            if self.until is not None and ts > self.until:
                return False
        return True


def read_logs(lines: Iterable[bytes | str], keep: LogFilter) -> Iterator[dict[str, Any]]:
    """The parsed lines that pass ``keep``, in order."""
    for raw in lines:
        line = parse_log_line(raw)
        if line is not None and keep(line):
            yield line
