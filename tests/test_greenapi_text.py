"""WhatsApp text: Markdown conversion, right-to-left lines, the length limit, chat ids."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.runtime.greenapi import (
    RLM,
    fix_bidi,
    for_whatsapp,
    is_chat_id,
    markdown_to_whatsapp,
    split_message,
    utf16_len,
)


@pytest.mark.parametrize(("markdown", "whatsapp"), [
    ("**bold** and __also bold__", "*bold* and *also bold*"),
    ("*italic* and _italic_", "_italic_ and _italic_"),
    ("~~gone~~", "~gone~"),
    ("# Title\n## Sub **x**", "*Title*\n*Sub x*"),
    ("see [the docs](https://x.example/a) or https://y.example",
     "see the docs (https://x.example/a) or https://y.example"),
    ("[https://x.example](https://x.example)", "https://x.example"),
    ("![chart](https://x.example/c.png)", "chart (https://x.example/c.png)"),
    ("- item\n* item\n1. first", "- item\n* item\n1. first"),
    ("keep `**code**` as is", "keep `**code**` as is"),
    ("```python\nx = a**2 * b\n```", "```x = a**2 * b```"),
    ("2 * 3 * 4", "2 * 3 * 4"),
    ("**שלום** עולם", "*שלום* עולם"),
])
def test_markdown_to_whatsapp(markdown: str, whatsapp: str) -> None:
    assert markdown_to_whatsapp(markdown) == whatsapp


def test_rtl_lines_that_start_ltr_get_a_mark() -> None:
    text = "Kaylee סיימה את הפריסה בהצלחה\nAll good here\n42 שניות\n```\nls שלום\n```"
    lines = fix_bidi(text).split("\n")
    assert lines[0] == RLM + "Kaylee סיימה את הפריסה בהצלחה"
    assert lines[1] == "All good here"          # English stays LTR
    assert lines[2] == "42 שניות"               # first strong character is already RTL
    assert lines[4] == "ls שלום"                # code is left alone
    assert fix_bidi(fix_bidi(text)) == fix_bidi(text)
    assert fix_bidi("Deploy to שרת done") == "Deploy to שרת done"  # mostly LTR


def test_for_whatsapp_does_both() -> None:
    assert for_whatsapp("**Claude**: הכל תקין") == RLM + "*Claude*: הכל תקין"


def test_short_text_is_one_part() -> None:
    assert split_message("hello") == ["hello"]
    assert split_message("   \n ") == []


def test_long_text_splits_at_paragraphs_then_lines_then_words() -> None:
    para = "word " * 50
    text = "\n\n".join([para.strip()] * 10)
    parts = split_message(text, limit=600)
    assert all(utf16_len(p) <= 600 for p in parts)
    assert all(p.startswith("word") and p.endswith("word") for p in parts)
    assert sum(p.count("word") for p in parts) == 500


def test_emoji_count_double_and_sequences_stay_whole() -> None:
    family = "👨\u200d👩\u200d👧"  # one glyph, five code points, eight UTF-16 units
    text = family * 100
    parts = split_message(text, limit=50)
    assert all(utf16_len(p) <= 50 for p in parts)
    assert "".join(parts) == text
    assert all(p.startswith("👨") and p.endswith("👧") for p in parts)


def test_a_split_hebrew_line_keeps_its_direction() -> None:
    text = "Kaylee " + "שלום " * 100
    parts = split_message(fix_bidi(text), limit=120)
    assert len(parts) > 1
    assert all(p.startswith(RLM) or p[0] in "שלום" for p in parts)


def visible(text: str) -> str:
    return "".join(ch for ch in text if not ch.isspace() and ch != RLM)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=3000), st.integers(min_value=2, max_value=500))
def test_nothing_is_lost_when_splitting(text: str, limit: int) -> None:
    parts = split_message(text, limit=limit)
    assert all(utf16_len(p) <= limit + 1 for p in parts)  # + an RLM at most
    # Only whitespace at the cuts (and RLMs added) may differ.
    assert visible("".join(parts)) == visible(text)


@pytest.mark.parametrize(("chat", "ok"), [
    ("972501234567@c.us", True), ("120363043968066561@g.us", True),
    ("972501234567-1581234048@g.us", True), ("120650379300963@lid", True),
    ("+972501234567@c.us", False), ("972501234567", False), ("abc@c.us", False),
    ("972501234567@c.us; rm -rf /", False), ("", False),
])
def test_chat_ids(chat: str, ok: bool) -> None:
    assert is_chat_id(chat) is ok
