"""Text for WhatsApp: chat ids, Markdown to WhatsApp formatting, right-to-left, length.

- WhatsApp renders ``*bold*``, ``_italic_``, ``~strike~`` and backtick code, not
  Markdown's ``**bold**``, ``# headings`` or ``[links](url)``: a model's answer is
  converted (https://green-api.com/en/docs/faq/how-to-format-messages/).
- A paragraph's direction follows its first strong character, so a Hebrew line
  that starts with a Latin word, a number or a URL renders left-to-right; such
  lines get a RIGHT-TO-LEFT MARK in front.
- ``sendMessage`` takes at most 20,000 characters (counted, it seems, in UTF-16
  code units: an emoji is two); longer texts are split at paragraph, line or
  word boundaries, with a margin.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = [
    "CHAT_ID_RE",
    "MESSAGE_LIMIT",
    "RLM",
    "SAFE_LIMIT",
    "fix_bidi",
    "for_whatsapp",
    "is_chat_id",
    "is_group",
    "markdown_to_whatsapp",
    "split_message",
    "utf16_len",
]

CHAT_ID_RE = re.compile(r"^(?:\d+@c\.us|[\d-]+@g\.us|\d+@lid)$")
"""Personal chats (``972501234567@c.us``), groups (``120363043968066561@g.us``, or the
older ``972501234567-1581234048@g.us``) and WhatsApp's linked ids (``1206...@lid``)."""

MESSAGE_LIMIT = 20_000
SAFE_LIMIT = 19_000
"""Split below the limit with a margin (the server's counting is not documented)."""

RLM = "\u200f"


def is_chat_id(value: str) -> bool:
    return bool(CHAT_ID_RE.match(value))


def is_group(chat_id: str) -> bool:
    return chat_id.endswith("@g.us")


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units (characters outside the BMP, e.g. most emoji, are 2)."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


# -- Markdown -> WhatsApp ---------------------------------------------------------------

_FENCE = re.compile(r"```[^\n`]*\n?(.*?)```", re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]+`")
_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*|__(?=\S)(.+?)(?<=\S)__")
_ITALIC = re.compile(r"(?<![*\w])\*(?=[^\s*])([^*\n]+?)(?<=[^\s*])\*(?![*\w])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_IMAGE = re.compile(r"!\[([^\]\n]*)\]\(([^)\s]+)\)")
_LINK = re.compile(r"\[([^\]\n]+)\]\(([^)\s]+)\)")
_BOLD_MARK = "\x00B\x00"
_SLOT = "\x00{}\x00"


def _link(match: re.Match[str]) -> str:
    label, url = match.group(1).strip(), match.group(2)
    return url if not label or label == url else f"{label} ({url})"


def _unbold(match: re.Match[str]) -> str:
    return match.group(1) or match.group(2)


def markdown_to_whatsapp(text: str) -> str:
    """Convert the Markdown a model writes into WhatsApp's formatting.

    Code (fenced or inline) is kept as it is; ``**b**``/``__b__`` become ``*b*``,
    ``*i*`` becomes ``_i_``, ``~~s~~`` becomes ``~s~``, headings become bold lines
    and links become ``text (url)``.
    """
    kept: list[str] = []

    def keep(value: str) -> str:
        kept.append(value)
        return _SLOT.format(len(kept) - 1)

    # Fenced blocks lose their language tag (WhatsApp would show it as text).
    out = _FENCE.sub(lambda m: keep(f"```{m.group(1).rstrip()}```" if m.group(1).strip()
                                    else ""), text)
    out = _INLINE_CODE.sub(lambda m: keep(m.group(0)), out)
    out = _IMAGE.sub(_link, out)
    out = _LINK.sub(_link, out)
    out = _HEADING.sub(lambda m: _BOLD_MARK + _BOLD.sub(_unbold, m.group(1)) + _BOLD_MARK, out)
    out = _BOLD.sub(lambda m: f"{_BOLD_MARK}{m.group(1) or m.group(2)}{_BOLD_MARK}", out)
    out = _ITALIC.sub(r"_\1_", out)
    out = _STRIKE.sub(r"~\1~", out)
    out = out.replace(_BOLD_MARK, "*")
    for i, value in enumerate(kept):
        out = out.replace(_SLOT.format(i), value)
    return out


# -- direction ---------------------------------------------------------------------------

def _strong(ch: str) -> str | None:
    kind = unicodedata.bidirectional(ch)
    if kind == "L":
        return "L"
    if kind in ("R", "AL"):
        return "R"
    return None


def _needs_rlm(line: str) -> bool:
    first: str | None = None
    rtl = ltr = 0
    for ch in line:
        kind = _strong(ch)
        if kind is None:
            continue
        if first is None:
            first = kind
        if kind == "R":
            rtl += 1
        else:
            ltr += 1
    # Mostly right-to-left, but the first strong character would make it LTR.
    return first == "L" and rtl > 0 and rtl >= ltr


def fix_bidi(text: str) -> str:
    """Prefix RLM to each mostly right-to-left line that starts left-to-right
    (outside code blocks). Idempotent: RLM is itself a strong RTL character."""
    lines = text.split("\n")
    in_code = False
    for i, line in enumerate(lines):
        fences = line.count("```")
        if not in_code and _needs_rlm(line):
            lines[i] = RLM + line
        if fences % 2:
            in_code = not in_code
    return "\n".join(lines)


def for_whatsapp(text: str) -> str:
    """Markdown converted, direction fixed: what goes into ``sendMessage``."""
    return fix_bidi(markdown_to_whatsapp(text))


# -- length -------------------------------------------------------------------------------

def _fitting(text: str, limit: int) -> int:
    """How many characters of ``text`` fit in ``limit`` UTF-16 code units."""
    units = 0
    for i, ch in enumerate(text):
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > limit:
            return i
    return len(text)


def _joins(ch: str) -> bool:
    """Characters that attach to the one before (ZWJ, variation selectors, marks)."""
    return ch in "\u200d\ufe0e\ufe0f" or unicodedata.combining(ch) > 0 or \
        0x1F3FB <= ord(ch) <= 0x1F3FF


def split_message(text: str, limit: int = SAFE_LIMIT) -> list[str]:
    """Split ``text`` into parts of at most ``limit`` UTF-16 code units, at the last
    paragraph break, else line break, else space in each window (never inside an emoji
    sequence). Whitespace-only text gives no parts."""
    if limit < 2:
        raise ValueError("limit must be at least 2")
    parts: list[str] = []
    rest = text
    while utf16_len(rest) > limit:
        cut = _fitting(rest, limit)
        window = rest[:cut]
        for sep in ("\n\n", "\n", " "):
            at = window.rfind(sep)
            if at > cut // 3:
                cut = at + len(sep)
                break
        else:
            while cut > 1 and _joins(rest[cut]):
                cut -= 1
        part = rest[:cut].rstrip()
        if part:
            parts.append(part)
        rest = rest[cut:].lstrip("\n")
    if rest.strip():
        parts.append(rest)
    # A part that starts mid-line may need its own RLM.
    return [fix_bidi(p) for p in parts]
