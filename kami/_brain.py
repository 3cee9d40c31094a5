"""Deciding what to do with an owner's message: the model, or the offline router.

The model (Claude, through the runtime's ModelRouter: routes tried in order,
each with a daily token budget, downgrading when one is spent) gets the
message and three tools: ``answer`` (Kami answers itself), ``ask_claude`` (real
work for the Claude Code orchestrator) and ``delegate_to_kaylee`` (a named
task for the autonomous worker). Plain text without a tool is an answer.

When there is no model (no API key, no route), every route's budget is spent,
or the model fails (an error, a timeout), the decision is made offline: the
message goes to Claude Code, and the owner is told why, so a message is never
dropped and never waits for a model that will not come.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from bridge.runtime import BudgetExhausted, ModelError, ModelRouter

from ._texts import Lang

__all__ = ["SYSTEM_PROMPT", "TOOLS", "Brain", "Decision"]

SYSTEM_PROMPT = """\
You are Kami, the owner's assistant on WhatsApp in a small network of AI agents:
Claude Code (the orchestrator on the owner's machine: code, files, servers, anything
that takes real work) and Kaylee (an autonomous worker on a VPS: deployments,
monitoring, scheduled jobs, reviews).

- Be concise: this is WhatsApp. A few short lines at most.
- Answer the owner's language: Hebrew by default, English when they write English.
- Answer yourself only what needs no tools, files or machines (a fact, a wording, a
  quick calculation, a clarifying question). Use the answer tool.
- Anything that needs the code, the servers, or more than a minute of thought:
  escalate to Claude Code with ask_claude, restating the request clearly.
- A routine operational task Kaylee owns (deploy, restart, check, review, backup):
  delegate_to_kaylee with a short task name and the details.
- Never invent results of work you did not do. When unsure, ask_claude.
"""

TOOLS: list[dict[str, Any]] = [
    {"name": "answer", "description": "Reply to the owner directly (short).",
     "input_schema": {"type": "object", "properties": {"text": {"type": "string"}},
                      "required": ["text"]}},
    {"name": "ask_claude",
     "description": "Forward the request to Claude Code, the orchestrator, for real work.",
     "input_schema": {"type": "object", "properties": {
         "request": {"type": "string", "description": "the request, restated clearly"}},
         "required": ["request"]}},
    {"name": "delegate_to_kaylee",
     "description": "Hand a named operational task to Kaylee, the autonomous worker.",
     "input_schema": {"type": "object", "properties": {
         "task": {"type": "string", "description": "a short task name, e.g. deploy"},
         "details": {"type": "string"}}, "required": ["task", "details"]}},
]

Action = Literal["answer", "claude", "kaylee"]


@dataclass(frozen=True)
class Decision:
    """What to do with a message.

    ``text``: the answer, or what to send on (for claude/kaylee). ``note``: why the
    decision was made without the model (None when the model made it).
    """

    action: Action
    text: str
    task: str | None = None
    summary: str | None = None
    note: str | None = None
    note_detail: str = ""
    route: str | None = None


class Brain:
    """Asks the model when there is one; decides offline otherwise."""

    def __init__(self, router: ModelRouter | None, *, max_input: int = 4000) -> None:
        self.router = router
        self.max_input = max_input

    @property
    def online(self) -> bool:
        return self.router is not None and self.router.available

    def remaining(self) -> dict[str, int]:
        """Tokens left today per route (for status and /health)."""
        if self.router is None:
            return {}
        return {r.name: self.router.remaining(r) for r in self.router.routes()}

    def decide(self, text: str, lang: Lang, *, sender_name: str = "",
               quoted: str | None = None) -> Decision:
        if self.router is None or not self.router.available:
            return Decision("claude", text, note="offline_no_model")
        prompt = text if len(text) <= self.max_input else \
            text[: self.max_input] + f"\n[... {len(text) - self.max_input} more characters]"
        context = []
        if quoted:
            context.append(f"(replying to: {quoted[:500]})")
        language = "Hebrew" if lang == "he" else "English"
        context.append(f"(from {sender_name or 'the owner'}; answer in {language})")
        content = "\n".join([*context, prompt])
        try:
            completion = self.router.complete([{"role": "user", "content": content}],
                                              system=SYSTEM_PROMPT, tools=TOOLS)
        except BudgetExhausted as exc:
            return Decision("claude", text, note="offline_budget", note_detail=_short(exc))
        except ModelError as exc:
            return Decision("claude", text, note="offline_error", note_detail=_short(exc))
        for call in completion.tool_calls:
            given = call.get("input")
            args: dict[str, Any] = given if isinstance(given, dict) else {}
            if call.get("name") == "answer" and str(args.get("text", "")).strip():
                return Decision("answer", str(args["text"]), route=completion.route)
            if call.get("name") == "ask_claude":
                return Decision("claude", text, summary=str(args.get("request") or "") or None,
                                route=completion.route)
            if call.get("name") == "delegate_to_kaylee":
                task = str(args.get("task") or "task").strip()[:64] or "task"
                details = str(args.get("details") or text)
                return Decision("kaylee", text, task=task, summary=details,
                                route=completion.route)
        if completion.text.strip():
            return Decision("answer", completion.text.strip(), route=completion.route)
        return Decision("claude", text, note="offline_error",
                        note_detail="an answer with neither text nor a tool")


def _short(exc: Exception) -> str:
    return " ".join(str(exc).split())[:200]
