"""Keeping secrets out of every log line.

Each secret the config loads is registered here; a logging filter then replaces
it (and its URL-encoded form) wherever it appears — in the message, in its
arguments, in structured fields. Patterns catch what was never registered: a
Green API token in a URL path (``/waInstance1101/sendMessage/<token>``, which
httpx logs at INFO), ``Authorization: Bearer ...`` headers, ``apiTokenInstance``
and ``api_key`` values.
"""

from __future__ import annotations

import re
import threading
import urllib.parse

__all__ = ["MASK", "redact", "register_secret"]

MASK = "***"

_lock = threading.Lock()
_secrets: tuple[str, ...] = ()

_PATTERNS = (
    # Green API: /waInstance{id}/{method}/{token}
    re.compile(r"(/waInstance\d+/[A-Za-z]+/)([A-Za-z0-9]{16,})"),
    re.compile(r"((?:[Bb]earer|[Tt]oken)\s+)([A-Za-z0-9._~+/=-]{8,})"),
    re.compile(r"((?:apiTokenInstance|api[_-]?key|x-api-key|token)[\"']?\s*[:=]\s*[\"']?)"
               r"([A-Za-z0-9._~+/=-]{8,})", re.IGNORECASE),
    re.compile(r"(sk-ant-[a-z0-9]*-?)([A-Za-z0-9_-]{8,})"),
)


def register_secret(value: str) -> None:
    """Never log ``value`` (nor its URL-encoded form). Short values are ignored: masking
    every "1" in a log would destroy it and protect nothing."""
    if len(value) < 6:
        return
    global _secrets
    forms = {value, urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value)}
    with _lock:
        # Longest first, so a secret that contains another is replaced whole.
        _secrets = tuple(sorted(set(_secrets) | forms, key=len, reverse=True))


def redact(text: str) -> str:
    """``text`` with every registered secret and every known token pattern masked."""
    for value in _secrets:
        if value in text:
            text = text.replace(value, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text
