"""What Kami says, in Hebrew and English, and which of the two the owner wrote in.

Hebrew is the default (the seed's owner writes Hebrew); a message with Latin
letters and no Hebrew ones gets English. Every phrase starts with a Hebrew
letter or an emoji followed by one, so WhatsApp lays Hebrew lines out
right-to-left without help (the delivery adds RLMs where a line needs them).
"""

from __future__ import annotations

import unicodedata
from typing import Literal

__all__ = ["LABELS", "Lang", "detect_language", "say"]

Lang = Literal["he", "en"]


def detect_language(text: str, default: Lang = "he") -> Lang:
    """``he`` if the text has Hebrew letters, ``en`` if it has only Latin ones, else
    ``default`` (emoji, digits, punctuation)."""
    latin = False
    for ch in text:
        if "\u0590" <= ch <= "\u05ff":
            return "he"
        if not latin and ch.isalpha() and unicodedata.bidirectional(ch) == "L":
            latin = True
    return "en" if latin else default


PHRASES: dict[str, dict[Lang, str]] = {
    "ack": {"he": "קיבלתי 👍 בודק…", "en": "Got it 👍 on it…"},
    "forwarded": {"he": "📨 העברתי ל-Claude Code. אחזור עם התשובה.",
                  "en": "📨 Passed to Claude Code; I'll bring the answer."},
    "delegated": {"he": "📋 העברתי לקיילי: {task}", "en": "📋 Handed to Kaylee: {task}"},
    "offline_no_model": {"he": "(אין מודל מוגדר, אז העברתי הלאה בלי לחשוב)",
                         "en": "(no model is configured, so I passed it on without thinking)"},
    "offline_budget": {"he": "(תקציב המודל להיום נגמר: {detail})",
                       "en": "(today's model budget is spent: {detail})"},
    "offline_error": {"he": "(המודל לא ענה: {detail})",
                      "en": "(the model did not answer: {detail})"},
    "paused": {"he": "⏸️ כל הסוכנים הושהו. שלח \"המשך\" (resume) כדי להמשיך.",
               "en": "⏸️ Every agent is paused. Send resume to continue."},
    "already_paused": {"he": "⏸️ כבר מושהה ({who}).", "en": "⏸️ Already paused ({who})."},
    "resumed": {"he": "▶️ ממשיכים. מה שחיכה יטופל עכשיו.",
                "en": "▶️ Resumed; what was waiting is handled now."},
    "not_paused": {"he": "▶️ לא היה מושהה.", "en": "▶️ Nothing was paused."},
    "shutdown_none": {"he": "אין סוכנים מוגדרים לכיבוי (kami.shutdown).",
                      "en": "No agents are configured for shutdown (kami.shutdown)."},
    "shutdown_ask": {"he": "⚠️ לכבות את {targets}? הסוכנים יושהו והשירותים ייעצרו.\nשלח "
                           "\"אישור\" תוך {minutes} דקות, או \"ביטול\".",
                     "en": "⚠️ Shut down {targets}? Every agent is paused and the services are "
                           "stopped.\nSend confirm within {minutes} minutes, or cancel."},
    "shutdown_running": {"he": "🛑 מכבה…", "en": "🛑 Shutting down…"},
    "shutdown_done": {"he": "🛑 סיום כיבוי (הגשר מושהה):\n{lines}",
                      "en": "🛑 Shutdown finished (the bridge is paused):\n{lines}"},
    "nothing_to_confirm": {"he": "אין פעולה שמחכה לאישור.",
                           "en": "Nothing is waiting for confirmation."},
    "answered_yes": {"he": "✅ אמרתי ל-{asker}: כן ({what})",
                     "en": "✅ Told {asker}: yes ({what})"},
    "answered_no": {"he": "❌ אמרתי ל-{asker}: לא ({what})",
                    "en": "❌ Told {asker}: no ({what})"},
    "cancelled": {"he": "בוטל. שום דבר לא כובה.", "en": "Cancelled; nothing was stopped."},
    "resend": {"he": "ההודעה שלך הגיעה ריקה (תקלה של וואטסאפ). אפשר לשלוח שוב?",
               "en": "Your message arrived empty (a WhatsApp glitch). Could you send it again?"},
    "text_only": {"he": "אני קורא רק טקסט וכיתובים של תמונות.",
                  "en": "I can only read text and captions."},
    "failed": {"he": "⚠️ משהו השתבש: {detail}", "en": "⚠️ Something went wrong: {detail}"},
    "quota": {"he": "⚠️ מכסת Green API נגמרה ({detail}). הודעות ממתינות ויישלחו כשאפשר.",
              "en": "⚠️ The Green API quota is spent ({detail}). Messages wait and go out "
                    "when they can."},
}

HELP: dict[Lang, str] = {
    "he": ("🤖 קמי. כתוב לי חופשי, או:\n"
           "• סטטוס — מצב הגשר והסוכנים\n"
           "• בריאות — בדיקת /health של הסוכנים עכשיו\n"
           "• השהה [סיבה] / המשך — עצירה וחידוש של כל הסוכנים\n"
           "• כבה הכל — עצירת השירותים (עם אישור)\n"
           "• /claude \u200f<בקשה> — ישר ל-Claude Code\n"
           "• /kaylee \u200f<משימה> — ישר לקיילי\n"
           "• עזרה — ההודעה הזאת"),
    "en": ("🤖 Kami. Write freely, or:\n"
           "• status: the bridge and the agents\n"
           "• health: check the agents' /health now\n"
           "• pause [reason] / resume: stop and restart every agent's work\n"
           "• shutdown all: stop the services (asks to confirm)\n"
           "• /claude <request>: straight to Claude Code\n"
           "• /kaylee <task>: straight to Kaylee\n"
           "• help: this message"),
}


LABELS: dict[Lang, dict[str, str]] = {
    "he": {"title": "📊 סטטוס קמי", "bridge": "גשר", "running": "פעיל", "paused": "מושהה",
           "unreachable": "לא זמין", "waiting": "ממתינות", "whatsapp": "וואטסאפ",
           "sent": "נשלחו", "received": "התקבלו", "model": "מודל", "off": "כבוי (ניתוב ידני)",
           "left": "נותרו היום", "peers": "סוכנים", "problems": "בעיות", "health": "🩺 בריאות"},
    "en": {"title": "📊 Kami status", "bridge": "Bridge", "running": "running",
           "paused": "paused", "unreachable": "unreachable", "waiting": "Waiting",
           "whatsapp": "WhatsApp", "sent": "sent", "received": "received", "model": "Model",
           "off": "off (manual routing)", "left": "left today", "peers": "Agents",
           "problems": "Problems", "health": "🩺 Health"},
}
"""Labels of the status and health answers."""


def say(key: str, lang: Lang, **values: object) -> str:
    """The phrase ``key`` in ``lang``, with ``values`` filled in."""
    if key == "help":
        return HELP[lang]
    return PHRASES[key][lang].format(**values)
