"""From the phone and back: the owner's ``/claude …`` on WhatsApp, Kami (the real agent,
against the Green API simulator) passes it to claude, the worker answers with the real
CLI, and Kami delivers "working on it" and then the answer — each once."""

from __future__ import annotations

from pathlib import Path

from bridge.testing.greenapi import GreenApiSimulator, incoming_body
from tests.kami_harness import OWNER, start_kami
from tests.test_claude_worker_support import IDENTITY, Harness


def test_kami_delivers_the_progress_line_then_the_answer_once_each(
        tmp_path: Path, sim: GreenApiSimulator) -> None:
    h = Harness(tmp_path)
    kami = start_kami(tmp_path / "bridge", sim)
    try:
        h.start()
        body = incoming_body(sim.id_instance, sim.wid, OWNER, "/claude why is the site slow?")
        sim.inject(body)
        (request,) = kami.wait_requests("claude", 1)
        answer = kami.wait_text("The answer is 42.", timeout=90)
        progress = kami.wait_text("Working on it")
        assert progress.message == "*Claude Code*\n⏳ Working on it…"
        assert answer.message == "*Claude Code*\nThe answer is 42."
        assert progress.at < answer.at
        # Both quote the owner's message they answer.
        assert progress.quoted_message_id == answer.quoted_message_id == body["idMessage"]

        # Delivered means marked done by Kami; then nothing is left to send again.
        mine = [v for v in h.bridge.history(request.id).thread if v.message.sender == IDENTITY]
        assert [v.message.type for v in mine] == ["notification", "response"]
        for view in mine:
            h.wait_status(view.id, "done", timeout=30)
        kami.wait_queue_empty()
        texts = kami.texts()
        assert texts.count(progress.message) == 1
        assert texts.count(answer.message) == 1
        assert h.view(request.id).state.status == "done"
    finally:
        kami.stop()
        h.close()
