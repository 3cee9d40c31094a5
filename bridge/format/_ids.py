"""Record ids: ``<agent>-<ULID>``, unique across processes and hosts, sortable by time.

A ULID is 48 bits of milliseconds since the epoch and 80 random bits, written
as 26 Crockford base-32 characters, so ids sort by creation time. Within one
process two ids made in the same millisecond increment the random part instead
of drawing a new one, which keeps them strictly increasing there too. Across
hosts uniqueness rests on the 80 random bits (a collision needs ~2^40 ids in the
same millisecond).
"""

from __future__ import annotations

import os
import re
import threading
import time

__all__ = ["AGENT_NAME_RE", "new_id", "ulid", "ulid_time_ms", "validate_agent_name"]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_RANDOM_BITS = 80
_RANDOM_MAX = (1 << _RANDOM_BITS) - 1

AGENT_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
"""Agent names: lower-case, start with a letter or digit, at most 64 characters."""

_lock = threading.Lock()
_last_ms = -1
_last_rand = 0


def _after_fork() -> None:
    # A forked child must not continue its parent's sequence: both would make
    # the same "next" id in the same millisecond.
    global _last_ms, _lock
    _last_ms = -1
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork)


# Two base-32 digits per 10 bits: encoding 80 bits takes 8 table lookups,
# several times faster than base64.b32encode (pure Python) or digit by digit.
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
_time_cache: tuple[int, str] = (-1, "")


def _encode(value: int, length: int) -> str:
    out = []
    for _ in range(length):
        out.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


def _encode_random(value: int) -> str:
    p = _PAIRS
    return (p[value >> 70] + p[(value >> 60) & 1023] + p[(value >> 50) & 1023]
            + p[(value >> 40) & 1023] + p[(value >> 30) & 1023] + p[(value >> 20) & 1023]
            + p[(value >> 10) & 1023] + p[value & 1023])


def _encode_time(ms: int) -> str:
    global _time_cache
    cached_ms, text = _time_cache
    if cached_ms != ms:
        text = _encode(ms, 10)
        _time_cache = (ms, text)
    return text


_last_text = ""


def ulid(now: int | None = None) -> str:
    """A new ULID; ``now`` is the time in ms since the epoch (default: the clock)."""
    global _last_ms, _last_rand, _last_text
    if now is None:
        now = time.time_ns() // 1_000_000
    with _lock:
        if now <= _last_ms:
            _last_rand += 1
            low = _last_rand & 1023
            if low and _last_rand <= _RANDOM_MAX:
                # Only the last two digits changed: the common case in a burst.
                _last_text = _last_text[:-2] + _PAIRS[low]
                return _last_text
            now = _last_ms
            if _last_rand > _RANDOM_MAX:  # 2^80 ids in one ms: borrow the next ms
                now += 1
                _last_rand = int.from_bytes(os.urandom(10), "big") >> 1
        else:
            # Top bit clear leaves room to increment without overflow in practice.
            _last_rand = int.from_bytes(os.urandom(10), "big") >> 1
        _last_ms = now
        _last_text = _encode_time(now) + _encode_random(_last_rand)
        return _last_text


def new_id(agent: str) -> str:
    """A new record id for ``agent``, e.g. ``kami-01JD3X6ZB5T4Q8W2M7N9P0R1S2``."""
    return f"{agent}-{ulid()}"


def ulid_time_ms(record_id: str) -> int | None:
    """The millisecond timestamp inside an id made by :func:`new_id`, else None."""
    tail = record_id.rsplit("-", 1)[-1]
    if len(tail) != 26:
        return None
    value = 0
    for ch in tail[:10]:
        idx = _ALPHABET.find(ch.upper())
        if idx < 0:
            return None
        value = value * 32 + idx
    return value


def validate_agent_name(name: str, what: str = "agent name") -> str:
    """Return ``name`` if it is a valid agent name, else raise InvalidInput."""
    from .._errors import InvalidInput

    if not isinstance(name, str) or not AGENT_NAME_RE.match(name):
        raise InvalidInput(
            f"{what} {name!r} is not valid: use lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, at most 64 characters"
        )
    return name
