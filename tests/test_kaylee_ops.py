"""health-sweep (real /health endpoints, alerts on the edges, Kami down → the direct channel),
report (the digest of a real bridge) and rotate."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge import Bridge
from bridge.format._time import format_ts
from bridge.testing.greenapi import GreenApiSimulator
from bridge.testing.health import FakeHealth
from tests.kaylee_support import OWNER_CHAT, outcome, owner_notes, run_once


@pytest.fixture
def peers() -> Iterator[dict[str, FakeHealth]]:
    made = {name: FakeHealth(name) for name in ("claude", "kami")}
    yield made
    for peer in made.values():
        peer.close()


def sweep_config(peers: dict[str, FakeHealth]) -> str:
    entries = "".join(f'[[peers.peer]]\nname = "{p.name}"\nurl = "{p.url}"\n'
                      for p in peers.values())
    return f"[peers]\nfailures = 2\ntimeout = \"2s\"\n{entries}"


def test_a_peer_going_down_alerts_once_and_once_more_when_back(
        tmp_path: Path, peers: dict[str, FakeHealth]) -> None:
    direct: list[tuple[str, dict[str, Any]]] = []
    with Bridge(tmp_path / "bridge", agent="owner") as b:
        def sweep() -> str:
            rid = b.send("health-sweep", to="kaylee").id
            run_once(tmp_path, sweep_config(peers),
                     direct=lambda text, meta: direct.append((text, meta)))
            return outcome(b, rid).message.content

        assert "2 peer(s) checked; all well" in sweep()
        peers["claude"].ok = False
        assert "not well: claude" in sweep()
        assert owner_notes(b) == []  # one bad check is not yet an alert
        sweep()
        [alert] = owner_notes(b)
        assert alert.message.content == ("Kaylee: ⚠️ claude is down: answered something that "
                                         "is not JSON (HTTP 500) (2 checks in a row)")
        assert alert.message.metadata == {"kaylee": "alert", "whatsapp_sender": OWNER_CHAT}
        sweep()
        sweep()
        assert len(owner_notes(b)) == 1  # never one per check
        peers["claude"].ok = True
        sweep()
        notes = owner_notes(b)
        assert len(notes) == 2 and notes[1].message.content.startswith("Kaylee: ✅ claude is "
                                                                       "back")
        assert direct == []  # Kami was up: everything went through Kami
        # Kami itself goes down: the alert cannot go through Kami.
        peers["kami"].ok = False
        sweep()
        sweep()
        assert len(owner_notes(b)) == 2
        [(text, meta)] = direct
        assert text.startswith("Kaylee: ⚠️ kami is down")
        assert meta["whatsapp_sender"] == OWNER_CHAT


def test_with_kami_down_alerts_reach_the_phone_through_green_api(
        tmp_path: Path, peers: dict[str, FakeHealth]) -> None:
    peers["kami"].ok = False
    with GreenApiSimulator() as sim, Bridge(tmp_path / "bridge", agent="owner") as b:
        whatsapp = (f'[whatsapp]\napi_url = "{sim.api_url}"\nid_instance = {sim.id_instance}\n'
                    f'owners = ["{OWNER_CHAT}"]\nretry_delay = "10ms"\n')
        for _ in range(2):
            b.send("health-sweep", to="kaylee")
            run_once(tmp_path, sweep_config(peers) + whatsapp,
                     env={"KAYLEE_GREEN_API_TOKEN": sim.token})
        [sent] = sim.wait_sent(1, chat_id=OWNER_CHAT)
        assert sent.message.startswith("Kaylee: ⚠️ kami is down")
        assert owner_notes(b) == []  # not left for Kami, who is down
        # A failure while Kami is down takes the same way.
        rid = b.send("echo", to="kaylee").id  # the required parameter is missing
        run_once(tmp_path, sweep_config(peers) + whatsapp,
                 env={"KAYLEE_GREEN_API_TOKEN": sim.token})
        assert b.get(rid).state.status == "failed"
        texts = [m.message for m in sim.wait_sent(2, chat_id=OWNER_CHAT)]
        assert texts[1].startswith("Kaylee: ⛔ refused 'echo': parameter 'text' is required")


def test_a_dry_run_sweep_checks_but_never_alerts(tmp_path: Path,
                                                 peers: dict[str, FakeHealth]) -> None:
    peers["claude"].ok = False
    with Bridge(tmp_path / "bridge", agent="owner") as b:
        for _ in range(3):
            rid = b.send("health-sweep --dry-run", to="kaylee").id
            run_once(tmp_path, sweep_config(peers))
            assert "no alerts were sent" in outcome(b, rid).message.content
        assert owner_notes(b) == []


def old_message(b: Bridge, sender: str, to: str, content: str, age: float,
                status: str | None = None) -> str:
    """A message written ``age`` seconds ago (and finished then, with ``status``)."""
    mid = f"{sender}-01J{int(age):023d}"[:len(sender) + 27]
    when = format_ts(time.time() - age)
    b.append_record({"v": 1, "t": "msg", "id": mid, "ts": when, "from": sender, "to": to,
                     "type": "request", "status": "pending", "content": content})
    if status is not None:
        b.append_record({"v": 1, "t": "status", "id": f"{to}-01J{int(age):023d}"[:len(to) + 27],
                         "ts": when, "from": to, "ref": mid, "status": status})
    return mid


def test_the_report_counts_activity_failures_and_old_work(tmp_path: Path) -> None:
    with Bridge(tmp_path / "bridge", agent="kami") as b:
        done = b.send("hello", to="claude").id
        b.reply(done, "hi", sender="claude")
        failed = b.send("do the thing", to="claude").id
        b.fail(failed, "the thing is broken", sender="claude")
        stale = old_message(b, "kami", "claude", "forgotten", 3 * 86400)
        rid = b.send("report", to="kaylee").id
        run_once(tmp_path)
        content = outcome(b, rid).message.content
        assert "Bridge report for the last 1d:" in content
        assert "1 failure(s), 1 waiting longer than 1d" in content
        assert "• claude: 1 pending" in content  # its answer, not read by anyone yet
        assert "• kami: 1 claimed, 1 done, 1 failed" in content  # claimed: this very report
        assert f"• {failed} failed: the thing is broken" in content
        assert f"• {stale} pending for claude, 3d old" in content
        [note] = owner_notes(b)
        assert note.message.content.startswith("📋 Bridge report for the last 1d")
        assert note.message.metadata["kaylee"] == "report"


def test_rotate_moves_old_finished_messages(tmp_path: Path) -> None:
    with Bridge(tmp_path / "bridge", agent="kami") as b:
        old_message(b, "kami", "claude", "ancient", 40 * 86400, status="done")
        rid = b.send("rotate older_than=1d", to="kaylee").id
        run_once(tmp_path)
        content = outcome(b, rid).message.content
        assert content.startswith("✅ rotate older_than=1d: moved ")
        assert list((tmp_path / "bridge" / "archive").iterdir())
        rid = b.send("rotate older_than=soon", to="kaylee").id
        run_once(tmp_path)
        assert "does not match" in (b.get(rid).state.reason or "")
