"""Timestamps and durations as the protocol writes and reads them.

Written: ISO-8601 UTC with milliseconds and a ``Z``, as JavaScript's
``toISOString()`` does (the seed's agents are TypeScript), e.g.
``2026-11-21T12:00:00.123Z``. Read: any ISO-8601 form Python understands,
with ``Z`` or an offset; a timestamp without a zone is taken as UTC.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

from .._errors import InvalidInput

__all__ = ["format_ms", "format_ts", "now_ts", "parse_duration", "parse_ts", "parse_when"]

_second_cache: tuple[int, str] = (-1, "")
_ms_cache: tuple[int, str] = (-1, "")


def format_ts(epoch: float) -> str:
    """Format seconds since the epoch as ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    return format_ms(int(epoch * 1000))


def format_ms(ms_total: int) -> str:
    """Format milliseconds since the epoch as ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    global _second_cache, _ms_cache
    if ms_total == _ms_cache[0]:  # a burst of appends in one millisecond
        return _ms_cache[1]
    sec, ms = divmod(ms_total, 1000)
    cached_sec, prefix = _second_cache
    if sec != cached_sec:
        # strftime is the slow part of formatting; appends in the same second share it.
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        _second_cache = (sec, prefix)
    text = f"{prefix}.{ms:03d}Z"
    _ms_cache = (ms_total, text)
    return text


def now_ts() -> str:
    """The current time in the protocol's format."""
    return format_ts(time.time())


def parse_ts(value: str) -> float:
    """Seconds since the epoch for an ISO-8601 timestamp; ValueError if it is not one."""
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)", re.IGNORECASE)
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``90s``, ``10m``, ``1h30m``, ``30d``, ``2w``.

    A bare number is seconds. Raises InvalidInput with the accepted forms.
    """
    raw = text.strip()
    try:
        value = float(raw)
    except ValueError:
        pass
    else:
        if value < 0:
            raise InvalidInput(f"duration {text!r} is negative")
        return value
    pos = 0
    total = 0.0
    for match in _DURATION_RE.finditer(raw):
        if raw[pos : match.start()].strip():
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
        pos = match.end()
    else:
        if pos and not raw[pos:].strip():
            return total
    raise InvalidInput(
        f"duration {text!r} is not understood: use a number and a unit "
        "(ms, s, m, h, d, w), e.g. 90s, 10m, 1h30m, 30d"
    )


def parse_when(text: str, *, now: float | None = None) -> float:
    """Seconds since the epoch for a ``--since``/``--until`` value.

    Accepts an ISO-8601 date or timestamp (``2026-11-01``, ``2026-11-01T08:00Z``)
    or a duration meaning "that long ago" (``2h``, ``7d``).
    """
    raw = text.strip()
    try:
        return parse_ts(raw)
    except ValueError:
        pass
    try:
        ago = parse_duration(raw)
    except InvalidInput:
        raise InvalidInput(
            f"time {text!r} is not understood: use a date (2026-11-01), "
            "a timestamp (2026-11-01T08:00:00Z) or a duration ago (2h, 7d)"
        ) from None
    return (time.time() if now is None else now) - ago


def to_datetime(epoch: float) -> datetime:
    """A timezone-aware UTC datetime for seconds since the epoch."""
    return datetime.fromtimestamp(epoch, tz=UTC)


def human_duration(seconds: float) -> str:
    """A short human form: ``45s``, ``12m``, ``3h``, ``2d``."""
    seconds = abs(seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    delta = timedelta(seconds=int(seconds))
    if delta < timedelta(minutes=1):
        return f"{delta.seconds}s"
    if delta < timedelta(hours=1):
        return f"{delta.seconds // 60}m"
    if delta < timedelta(days=1):
        return f"{delta.seconds // 3600}h"
    return f"{delta.days}d"
