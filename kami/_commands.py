"""Kami's built-in commands and direct routes, recognised in an owner's message.

A command is the whole message (case, surrounding spaces, a leading ``/`` and
trailing punctuation do not matter): ``status`` is a command, "what's the
status of the deploy?" goes to the model. Hebrew and English words both work.
``/claude …`` and ``/kaylee …`` skip the model. Nothing here runs anything: a
message's text only ever selects one of these names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["CONTROL", "Command", "Route", "parse_answer", "parse_command", "parse_route"]

_WORDS: dict[str, tuple[str, ...]] = {
    "help": ("help", "?", "עזרה"),
    "status": ("status", "סטטוס", "מצב"),
    "health": ("health", "בריאות"),
    "pause": ("pause", "השהה"),
    "resume": ("resume", "המשך"),
    "shutdown": ("shutdown all", "shutdown", "כבה הכל", "כבה את הכל"),
    "confirm": ("confirm", "אישור", "אשר"),
    "cancel": ("cancel", "ביטול", "בטל"),
}
_LOOKUP = {word: name for name, words in _WORDS.items() for word in words}
_TAKES_ARGUMENT = frozenset({"pause"})

CONTROL = frozenset(_WORDS)
"""Every built-in command is a control command: acted on even while PAUSE is set."""

_ROUTE = re.compile(r"^/(claude|kaylee)\b[ \t]*(.*)$", re.IGNORECASE | re.DOTALL)
_TASK = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]{0,63})\s*:?\s*(.*)$", re.DOTALL)


@dataclass(frozen=True)
class Command:
    name: str
    argument: str = ""


@dataclass(frozen=True)
class Route:
    """``/claude TEXT`` or ``/kaylee [TASK:] TEXT``."""

    to: str
    text: str
    task: str | None = None


def _normal(text: str) -> str:
    return " ".join(text.strip().removeprefix("/").split()).rstrip(".!? ").lower() or \
        text.strip()


def parse_command(text: str) -> Command | None:
    """The built-in command the whole message is, or None."""
    words = _normal(text)
    name = _LOOKUP.get(words)
    if name is not None:
        return Command(name)
    first = words.partition(" ")[0]
    if _LOOKUP.get(first) in _TAKES_ARGUMENT:
        # The reason keeps the owner's own spelling.
        original = " ".join(text.strip().removeprefix("/").split())
        return Command(_LOOKUP[first], original.split(" ", 1)[1].strip())
    return None


_ANSWERS: dict[str, bool] = {
    # Only explicit words: a casual "ok" must not approve a deploy.
    **dict.fromkeys(("yes", "approve", "approved", "כן"), True),
    **dict.fromkeys(("no", "decline", "declined", "לא"), False),
}


def parse_answer(text: str) -> bool | None:
    """The whole message as a yes (True) or a no (False) to a question, else None.

    ``confirm``/``cancel`` (and their Hebrew words) count, as do yes/no words; the
    caller decides whether a question is waiting (otherwise "no" is just a message).
    """
    words = _normal(text)
    name = _LOOKUP.get(words)
    if name in ("confirm", "cancel"):
        return name == "confirm"
    return _ANSWERS.get(words)


def parse_route(text: str) -> Route | None:
    """``/claude …`` or ``/kaylee …``: the message goes there without the model."""
    match = _ROUTE.match(text.strip())
    if match is None:
        return None
    to, rest = match.group(1).lower(), match.group(2).strip()
    if to == "claude":
        return Route("claude", rest)
    task = _TASK.match(rest)
    name = task.group(1).lower() if task else None
    return Route("kaylee", rest, name)
