"""Kami's commands: parsing, pause and resume from the phone, "shutdown all" over SSH."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.runtime import SSHConfig
from bridge.testing.greenapi import GreenApiSimulator
from kami._commands import Command, Route, parse_command, parse_route
from kami._config import ShutdownTarget
from kami._texts import detect_language
from tests.helpers import wait_for
from tests.kami_harness import OWNER, Kami, kami_config, start_kami
from tests.sshd import SSHD
from tests.test_ctl import SYSTEMCTL


@pytest.mark.parametrize(("text", "command"), [
    ("status", Command("status")), ("  Status? ", Command("status")),
    ("/status", Command("status")), ("סטטוס", Command("status")), ("מצב!", Command("status")),
    ("help", Command("help")), ("?", Command("help")), ("עזרה", Command("help")),
    ("health", Command("health")), ("pause", Command("pause")),
    ("pause deploying v2", Command("pause", "deploying v2")),
    ("השהה בגלל פריסה", Command("pause", "בגלל פריסה")),
    ("resume", Command("resume")), ("המשך", Command("resume")),
    ("shutdown all", Command("shutdown")), ("Shutdown   ALL", Command("shutdown")),
    ("כבה הכל", Command("shutdown")), ("confirm", Command("confirm")),
    ("אישור", Command("confirm")), ("cancel", Command("cancel")), ("ביטול", Command("cancel")),
])
def test_commands(text: str, command: Command) -> None:
    assert parse_command(text) == command


@pytest.mark.parametrize("text", [
    "what's the status of the deploy?", "please resume the build", "yes", "no", "כן",
    "status report for the site", "shutdown the staging server", "",
    "status; rm -rf /", "$(reboot)",
])
def test_not_commands(text: str) -> None:
    assert parse_command(text) is None


def test_routes() -> None:
    assert parse_route("/claude why is it slow?") == Route("claude", "why is it slow?")
    assert parse_route("/Claude\nmulti\nline") == Route("claude", "multi\nline")
    assert parse_route("/kaylee deploy: v2 to prod") == Route("kaylee", "deploy: v2 to prod",
                                                            "deploy")
    assert parse_route("/kaylee backup the db") == Route("kaylee", "backup the db", "backup")
    assert parse_route("/claude") == Route("claude", "")
    assert parse_route("/claudette hi") is None
    assert parse_route("ask /claude later") is None


@pytest.mark.parametrize(("text", "lang"), [
    ("מה שלומך?", "he"), ("how are you?", "en"), ("deploy את האתר", "he"), ("👍", "he"),
    ("123", "he"), ("Grüße", "en"),
])
def test_language(text: str, lang: str) -> None:
    assert detect_language(text) == lang


@pytest.fixture
def kami(tmp_path: Path, sim: GreenApiSimulator) -> Iterator[Kami]:
    k = start_kami(tmp_path / "bridge", sim)
    yield k
    k.stop()


def test_pause_holds_work_and_resume_releases_it(kami: Kami, sim: GreenApiSimulator) -> None:
    sim.send_text(OWNER, "השהה פריסה")
    kami.wait_sent(1)
    assert kami.bridge.paused() is not None
    assert kami.bridge.paused().reason == "פריסה"  # type: ignore[union-attr]
    # While paused: requests wait on the bridge (not forwarded, nothing said about them),
    # control commands are answered, and answers for the owner wait too.
    sim.send_text(OWNER, "/claude run the migrations")
    sim.send_text(OWNER, "something for the model")
    kami.bridge.send("an answer that waits", to="kami", type="response",
                     metadata={"whatsapp_sender": OWNER})
    sim.send_text(OWNER, "status")
    status = kami.wait_text("📊")
    assert "owner: פריסה" in status.message
    sim.send_text(OWNER, "השהה")
    kami.wait_text("כבר מושהה")
    kami.wait_queue_empty()  # received and journaled: nothing is lost on Green API's side
    assert not kami.events.named("notification.delete_failed")
    assert kami.requests_for("claude") == []
    assert len(kami.texts()) == 3
    held = [v for v in kami.bridge.inbox("kami") if v.message.metadata.get("kami") == "inbound"]
    assert [v.message.content for v in held] == ["/claude run the migrations",
                                                 "something for the model"]
    sim.send_text(OWNER, "המשך")
    kami.wait_text("ממשיכים")
    kami.wait_requests("claude", 2)
    kami.wait_text("an answer that waits")
    # What the owner asked for goes out before what waited.
    assert "ממשיכים" in kami.texts()[3]
    assert kami.bridge.paused() is None


def test_a_pause_from_elsewhere_is_obeyed_and_resumable_from_the_phone(
        kami: Kami, sim: GreenApiSimulator) -> None:
    kami.bridge.pause("maintenance", by="claude")
    sim.send_text(OWNER, "/claude hello")
    sim.send_text(OWNER, "resume")
    kami.wait_text("Resumed")
    kami.wait_requests("claude", 1)


def test_shutdown_without_targets(kami: Kami, sim: GreenApiSimulator) -> None:
    sim.send_text(OWNER, "shutdown all")
    assert "kami.shutdown" in kami.wait_text("configured").message
    sim.send_text(OWNER, "confirm")
    kami.wait_text("Nothing is waiting")


@pytest.fixture
def units(tmp_path: Path) -> Path:
    state = tmp_path / "units"
    state.mkdir()
    for unit in ("kami-bridge@kaylee.service", "kami-bridge@worker.service"):
        (state / unit).write_text("active\n")
    script = tmp_path / "systemctl"
    script.write_text(SYSTEMCTL.format(state=state))
    script.chmod(0o755)
    return script


def shutdown_kami(tmp_path: Path, sim: GreenApiSimulator, sshd: SSHD, systemctl: Path,
                  **settings: Any) -> Kami:
    config = kami_config(tmp_path / "bridge", sim, confirm_window=60.0, shutdown=(
        ShutdownTarget("bridgehost", ("kaylee", "worker"), systemctl=str(systemctl)),
        ShutdownTarget("nohost.invalid", ("ghost",))), **settings)
    config = dataclasses.replace(config, ssh=SSHConfig(config=sshd.ssh_config,
                                                       connect_timeout=3))
    return start_kami(tmp_path / "bridge", sim, config=config)


def test_shutdown_all_asks_then_stops_the_units_over_ssh(
        tmp_path: Path, sim: GreenApiSimulator, sshd: SSHD, units: Path) -> None:
    kami = shutdown_kami(tmp_path, sim, sshd, units)
    try:
        sim.send_text(OWNER, "כבה הכל")
        ask = kami.wait_text("אישור")
        assert "kaylee@bridgehost" in ask.message and "ghost@nohost.invalid" in ask.message
        assert not (units.parent / "units" / "calls").exists()  # nothing before the answer
        sim.send_text(OWNER, "אישור")
        kami.wait_text("מכבה")  # acknowledged before the SSH work starts
        done = kami.wait_text("סיום כיבוי", timeout=30)
        lines = done.message.split("\n")[1:]
        assert lines[0] == "✅ kaylee@bridgehost: inactive"
        assert lines[1] == "✅ worker@bridgehost: inactive"
        assert lines[2].startswith("❌ ghost@nohost.invalid:")
        calls = (units.parent / "units" / "calls").read_text().splitlines()
        assert "stop kami-bridge@kaylee.service" in calls
        assert "stop kami-bridge@worker.service" in calls
        assert kami.bridge.paused() is not None  # every agent stops taking work too
        # Kami itself stays up, paused, and still answers the owner.
        sim.send_text(OWNER, "status")
        kami.wait_text("מושהה")
    finally:
        kami.stop()


def test_shutdown_can_be_cancelled_and_expires(tmp_path: Path, sim: GreenApiSimulator,
                                               sshd: SSHD, units: Path) -> None:
    kami = shutdown_kami(tmp_path, sim, sshd, units)
    try:
        sim.send_text(OWNER, "shutdown all")
        kami.wait_text("Send confirm")
        sim.send_text(OWNER, "cancel")
        kami.wait_text("Cancelled")
        sim.send_text(OWNER, "confirm")
        kami.wait_text("Nothing is waiting")
        # A confirmation from another chat does not count.
        sim.send_text(OWNER, "shutdown all")
        wait_for(lambda: len([t for t in kami.texts() if "Send confirm" in t]) == 2)
        from tests.kami_harness import OWNER_LID
        sim.send_text(OWNER_LID, "confirm")
        kami.wait_text("Nothing is waiting", chat=OWNER_LID)
        assert not (units.parent / "units" / "calls").exists()
        assert kami.bridge.paused() is None
    finally:
        kami.stop()


def test_an_expired_confirmation_does_nothing(tmp_path: Path, sim: GreenApiSimulator,
                                              sshd: SSHD, units: Path) -> None:
    kami = shutdown_kami(tmp_path, sim, sshd, units)
    inbound = kami.agent.inbound
    inbound.settings = dataclasses.replace(inbound.settings, confirm_window=0.0)
    try:
        sim.send_text(OWNER, "shutdown all")
        kami.wait_text("Send confirm")
        sim.send_text(OWNER, "confirm")
        kami.wait_text("Nothing is waiting")
        assert not (units.parent / "units" / "calls").exists()
    finally:
        kami.stop()
