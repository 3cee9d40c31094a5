"""Kami when things go wrong: Green API outages and refusals, uncertain sends, quotas,
failed deliveries, an unreachable bridge, the webhook's door."""

from __future__ import annotations

import collections
import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge import Bridge
from bridge.runtime import Secret
from bridge.testing.greenapi import GreenApiSimulator, incoming_body
from tests.helpers import wait_for
from tests.kami_harness import OWNER, Kami, kami_config, run_agent, start_kami


def answer_for_owner(bridge: Bridge, text: str) -> str:
    return bridge.send(text, to="kami", type="response",
                       metadata={"whatsapp_sender": OWNER}).id


def assert_once_each(kami: Kami, texts: list[str]) -> None:
    counts = collections.Counter(kami.texts())
    for text in texts:
        matching = [t for t in counts if text in t]
        assert len(matching) == 1 and counts[matching[0]] == 1, (text, counts)


def test_an_outage_loses_nothing_and_sends_nothing_twice(tmp_path: Path,
                                                         sim: GreenApiSimulator) -> None:
    kami = start_kami(tmp_path / "bridge", sim)
    try:
        kami.wait_sent(0)
        sim.outage(502)  # the gateway answers, the service does not
        for i in range(3):
            sim.send_text(OWNER, f"/claude job {i}")
        answers = [answer_for_owner(kami.bridge, f"answer {i}") for i in range(3)]
        # Minutes of outage, compressed: many rounds of retries on both sides.
        wait_for(lambda: len([c for c in sim.calls if c.status == 502]) >= 30, timeout=30,
                 what="Kami to keep retrying through the outage")
        health = kami.health()
        assert health["status"] == "degraded"
        assert "Green API" in health["degraded"]
        sim.refuse()  # and then the host is gone altogether for a while
        sim.outage(None)
        time.sleep(0.5)  # an absence: a window for a (wrong) delete or send
        assert len(sim.pending()) == 3  # nothing was taken off Green API's queue
        assert all(kami.bridge.get(a).status() != "done" for a in answers)
        sim.accept()
        kami.wait_requests("claude", 3, timeout=30)
        wait_for(lambda: all(kami.bridge.get(a).status() == "done" for a in answers),
                 timeout=30, what="the answers to go out")
        kami.wait_sent(6, timeout=30)
        kami.wait_queue_empty(timeout=30)
        assert_once_each(kami, [f"answer {i}" for i in range(3)])
        assert len([t for t in kami.texts() if "Passed to Claude Code" in t]) == 3
        assert [r.message.content for r in kami.requests_for("claude")] == \
            [f"job {i}" for i in range(3)]
        wait_for(lambda: kami.health()["status"] == "ok", what="Kami to recover")
    finally:
        kami.stop()


@pytest.mark.parametrize("fault", ["timeout", "500"])
def test_a_send_that_went_out_without_an_answer_is_not_sent_again(
        tmp_path: Path, sim: GreenApiSimulator, fault: str) -> None:
    kami = start_kami(tmp_path / "bridge", sim, timeout=0.5)
    try:
        if fault == "timeout":
            sim.delay("sendMessage", 1.5)  # sent, then answered after Kami gave up
        else:
            sim.fail("sendMessage", 500, perform=True)
        mid = answer_for_owner(kami.bridge, "the deploy finished")
        wait_for(lambda: kami.bridge.get(mid).status() == "done", timeout=15,
                 what="the answer to be recognised as sent")
        assert kami.texts() == ["*Claude Code*\nthe deploy finished"]
        assert kami.events.named("message.send_uncertain")
        recovered = kami.events.wait("message.recovered")
        assert recovered["already_sent"] == 1
        assert sim.calls_to("lastOutgoingMessages")
        reason = kami.bridge.get(mid).state.reason or ""
        assert reason == f"sent as {sim.sent[0].id_message}"
    finally:
        kami.stop()


def test_a_send_that_did_not_go_out_is_sent_after_the_lookup(tmp_path: Path,
                                                             sim: GreenApiSimulator) -> None:
    kami = start_kami(tmp_path / "bridge", sim)
    try:
        sim.fail("sendMessage", 500)  # failed before sending anything (perform=False)
        mid = answer_for_owner(kami.bridge, "retry me")
        wait_for(lambda: kami.bridge.get(mid).status() == "done", timeout=15)
        assert kami.texts() == ["*Claude Code*\nretry me"]
        assert kami.events.wait("message.recovered")["already_sent"] == 0
    finally:
        kami.stop()


def test_after_a_restart_an_identical_text_sent_for_another_item_is_not_taken_for_this_one(
        tmp_path: Path, sim: GreenApiSimulator) -> None:
    """The same text often goes to the same chat ("Passed to Claude Code"). An item whose
    earlier attempt was cut short must not be taken as sent because another item with the
    same text went out: after a restart only the done records say which id was whose."""
    kami = start_kami(tmp_path / "bridge", sim)
    try:
        first = answer_for_owner(kami.bridge, "the same words")
        wait_for(lambda: kami.bridge.get(first).status() == "done", what="the first send")
    finally:
        kami.stop()
    with Bridge(tmp_path / "bridge", agent="claude") as claude, \
            Bridge(tmp_path / "bridge", agent="kami") as as_kami:
        second = answer_for_owner(claude, "the same words")
        as_kami.claim(second, lease=600)  # a claim, then a SIGKILL before the send
    kami = start_kami(tmp_path / "bridge", sim)
    try:
        wait_for(lambda: kami.bridge.get(second).status() == "done", what="the second send")
        assert kami.events.wait("message.recovered")["already_sent"] == 0
        assert kami.texts() == ["*Claude Code*\nthe same words"] * 2
    finally:
        kami.stop()


@pytest.mark.parametrize("kind", ["method", "correspondents"])
def test_a_466_quota_waits_reports_and_then_delivers(tmp_path: Path, sim: GreenApiSimulator,
                                                     kind: str) -> None:
    kami = start_kami(tmp_path / "bridge", sim)
    try:
        sim.fail_quota("sendMessage", kind=kind, times=2)  # the answer and the owner notice
        mid = answer_for_owner(kami.bridge, "after the quota")
        kami.events.wait("kami.degraded", where=lambda e: e["condition"] == "quota")
        report = wait_for(lambda: [v for v in kami.bridge.inbox("claude")
                                   if v.message.metadata.get("kami") == "report"])
        assert "quota" in report[0].message.content
        assert kami.bridge.get(mid).status() != "done"  # waiting, not dropped
        wait_for(lambda: kami.bridge.get(mid).status() == "done", timeout=15)
        assert kami.texts() == ["*Claude Code*\nafter the quota"]
        wait_for(lambda: kami.health()["status"] == "ok", what="the quota condition to clear")
    finally:
        kami.stop()


def test_a_waiting_message_cancelled_on_the_bridge_is_forgotten(
        tmp_path: Path, sim: GreenApiSimulator) -> None:
    kami = start_kami(tmp_path / "bridge", sim, quota_backoff=600.0)
    try:
        sim.fail_quota("sendMessage", times=5)
        mid = answer_for_owner(kami.bridge, "never mind")
        wait_for(lambda: kami.health()["whatsapp"]["waiting"] == 1, what="the item to wait")
        kami.bridge.cancel(mid, reason="no longer needed")
        wait_for(lambda: kami.health()["whatsapp"]["waiting"] == 0, what="it to be dropped")
        assert kami.bridge.get(mid).status() == "cancelled"
    finally:
        kami.stop()


def test_a_revoked_token_stops_kami_talking_to_green_api(tmp_path: Path,
                                                         sim: GreenApiSimulator) -> None:
    kami = start_kami(tmp_path / "bridge", sim)
    try:
        sim.token = "f" * 50  # revoked in the console
        sim.send_text(OWNER, "/claude are you there?")
        kami.events.wait("greenapi.auth_failed")
        health = wait_for(lambda: (h := kami.health())["status"] == "degraded" and h)
        assert "refused the token (HTTP 401" in health["degraded"]
        mid = answer_for_owner(kami.bridge, "undeliverable for now")
        time.sleep(0.5)  # requests already on their way when the token was refused finish
        calls = len(sim.calls)
        time.sleep(1.0)  # an absence: a window in which nothing may happen
        assert len(sim.calls) == calls  # no hammering with a refused token
        assert len(sim.pending()) == 1  # not received, so not lost
        assert kami.bridge.get(mid).status() == "pending"
    finally:
        kami.stop()


def test_the_bridge_unreachable_holds_messages_in_green_api(tmp_path: Path,
                                                            sim: GreenApiSimulator) -> None:
    directory = tmp_path / "later"  # does not exist yet: Kami starts degraded
    sim.send_text(OWNER, "/claude while the bridge is away")
    agent, thread, events, _ = run_agent(kami_config(directory, sim))
    try:
        events.wait("bridge.unreachable")
        time.sleep(1.0)  # an absence: Kami stays degraded and takes nothing meanwhile
        snapshot = agent.snapshot()
        assert snapshot["status"] == "degraded"
        assert snapshot["bridge"]["reachable"] is False
        assert len(sim.pending()) == 1  # held in Green API's queue, not deleted
        assert not sim.calls_to("receiveNotification")
        assert not sim.calls_to("deleteNotification")
        with Bridge(directory, agent="claude") as bridge:
            wait_for(lambda: bridge.inbox("claude"), timeout=20,
                     what="the held message once the bridge is back")
            wait_for(lambda: not sim.pending(), what="the notification to be deleted")
    finally:
        agent.request_stop()
        thread.join(30)
        logging.getLogger("agent.kami").removeHandler(events)


def test_failed_deliveries_are_resent_once_then_reported(tmp_path: Path,
                                                         sim: GreenApiSimulator) -> None:
    kami = start_kami(tmp_path / "bridge", sim)
    try:
        sim.fail_chat(OWNER, "failed", "SWE004: could not send")
        mid = answer_for_owner(kami.bridge, "important news")
        kami.events.wait("message.undelivered", timeout=15)
        assert kami.texts() == ["*Claude Code*\nimportant news"] * 2  # once more, no more
        copy = kami.events.named("message.resend")[0]
        assert copy["id"] == mid
        reports = wait_for(lambda: [v.message.content for v in kami.bridge.inbox("claude")
                                    if v.message.metadata.get("kami") == "report"],
                           what="the report")
        assert any("failed" in r and "SWE004" in r for r in reports)
        assert kami.health()["lastError"] is not None
    finally:
        kami.stop()


def test_no_account_is_reported_to_the_author(tmp_path: Path, sim: GreenApiSimulator) -> None:
    kami = start_kami(tmp_path / "bridge", sim)
    try:
        sim.fail_chat(OWNER, "noAccount")
        kaylee = Bridge(kami.bridge.directory, agent="kaylee")
        mid = kaylee.send("backup done", to="kami", type="notification",
                          metadata={"whatsapp_sender": OWNER}).id
        kaylee_reports = wait_for(lambda: [v for v in kaylee.inbox("kaylee")
                                           if v.message.metadata.get("kami") == "report"],
                                  timeout=15)
        assert mid in kaylee_reports[0].message.content
        assert "noAccount" in kaylee_reports[0].message.content
        assert len(kami.texts()) == 1  # noAccount is not retried
        kaylee.close()
    finally:
        kami.stop()


def test_instance_states_and_quota_notices_reach_health(tmp_path: Path,
                                                        sim: GreenApiSimulator) -> None:
    kami = start_kami(tmp_path / "bridge", sim)
    try:
        sim.set_state("notAuthorized")
        wait_for(lambda: "scan the QR code" in (kami.health()["degraded"] or ""))
        assert kami.health()["whatsapp"]["state"] == "notAuthorized"
        mid = answer_for_owner(kami.bridge, "queued by Green API")
        wait_for(lambda: kami.bridge.get(mid).status() == "done")
        assert kami.texts() == []  # accepted, but it waits in Green API's send queue
        sim.set_state("authorized")
        wait_for(lambda: kami.health()["status"] == "ok")
        assert kami.texts() == ["*Claude Code*\nqueued by Green API"]
        sim.quota_notice()
        wait_for(lambda: "quota" in (kami.health()["degraded"] or ""))
    finally:
        kami.stop()


def test_a_poison_notification_is_dead_lettered(tmp_path: Path, sim: GreenApiSimulator,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"
    kami = start_kami(tmp_path / "bridge", sim, state_dir=state)
    try:
        journal = kami.agent.journal
        real = journal.handle

        def buggy(body: Any) -> str:
            if isinstance(body, dict) and body.get("poison"):
                raise RuntimeError("a bug in a handler")
            return real(body)

        monkeypatch.setattr(journal, "handle", buggy)
        sim.inject({"typeWebhook": "incomingMessageReceived", "poison": True})
        sim.send_text(OWNER, "/claude behind the poison")
        kami.wait_requests("claude", 1, timeout=15)
        [dead] = kami.events.named("notification.dead_letter")
        assert "a bug in a handler" in dead["error"]
        letter = state / "dead-letters.jsonl"
        assert letter.stat().st_mode & 0o777 == 0o600
        assert '"poison":true' in letter.read_text()
    finally:
        kami.stop()


# -- webhook mode ----------------------------------------------------------------------------


def webhook_kami(tmp_path: Path, sim: GreenApiSimulator) -> tuple[Kami, str]:
    """Kami in webhook mode, and the URL Green API is to POST to."""
    config = kami_config(tmp_path / "bridge", sim, receive="webhook", webhook_port=0,
                         webhook_token=Secret("hook-secret-123"))
    kami = start_kami(tmp_path / "bridge", sim, config=config)
    return kami, str(kami.events.wait("webhook.listening")["url"])


def test_webhook_checks_the_bearer_token_and_shares_the_journal(tmp_path: Path,
                                                                sim: GreenApiSimulator) -> None:
    kami, url = webhook_kami(tmp_path, sim)
    try:
        body = incoming_body(sim.id_instance, sim.wid, OWNER, "/claude via webhook",
                             id_message="W1")
        assert httpx.post(url, json=body).status_code == 401
        assert httpx.post(url, json=body, headers={"Authorization": "Bearer wrong"}
                          ).status_code == 401
        assert kami.bridge.fold().messages == {}
        assert kami.events.named("webhook.rejected")
        ok = {"Authorization": "Bearer hook-secret-123"}
        assert httpx.post(url, json=body, headers=ok).status_code == 200
        assert httpx.post(url, json=body, headers=ok).status_code == 200  # resent: once
        assert httpx.post(url, content=b"{nope", headers=ok).status_code == 400
        assert httpx.post(url.replace("/green-api/webhook", "/other"), json=body,
                          headers=ok).status_code == 404
        kami.wait_requests("claude", 1)
        time.sleep(0.2)  # an absence: a window for a second (wrong) forward
        assert len(kami.requests_for("claude")) == 1
        # And Green API itself pushing to it (the simulator's webhook mode).
        sim.settings.update(webhookUrl=url, webhookUrlToken="hook-secret-123")
        sim.send_text(OWNER, "/claude pushed")
        kami.wait_requests("claude", 2)
        kami.wait_queue_empty()
    finally:
        kami.stop()


def test_webhook_answers_503_while_the_bridge_is_away(tmp_path: Path,
                                                      sim: GreenApiSimulator) -> None:
    kami, url = webhook_kami(tmp_path, sim)
    try:
        bridge, kami.agent.bridge = kami.agent.bridge, None  # as the runtime does on an error
        body = incoming_body(sim.id_instance, sim.wid, OWNER, "/claude later", id_message="W2")
        ok = {"Authorization": "Bearer hook-secret-123"}
        assert httpx.post(url, json=body, headers=ok).status_code == 503  # Green API resends
        kami.agent.bridge = bridge
        assert httpx.post(url, json=body, headers=ok).status_code == 200
        kami.wait_requests("claude", 1)
    finally:
        kami.stop()


def test_a_webhook_port_in_use_is_a_clear_error_and_deliveries_go_on(
        tmp_path: Path, sim: GreenApiSimulator) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = kami_config(tmp_path / "bridge", sim, receive="webhook",
                             webhook_port=taken.getsockname()[1],
                             webhook_token=Secret("hook-secret-123"))
        bridge = Bridge(tmp_path / "bridge", agent="claude")
        agent, thread, events, codes = run_agent(config)
        try:
            failed = events.wait("webhook.bind_failed")
            assert "cannot listen on 127.0.0.1" in failed["error"]
            wait_for(lambda: "Green API webhook" in (agent.snapshot()["degraded"] or ""))
            answer_for_owner(bridge, "still delivered")
            sim.wait_sent(1)
        finally:
            agent.request_stop()
            thread.join(30)
            logging.getLogger("agent.kami").removeHandler(events)
            bridge.close()
    assert codes == [0]


def test_webhook_mode_needs_a_token(tmp_path: Path, sim: GreenApiSimulator) -> None:
    from bridge import ConfigError

    with pytest.raises(ConfigError, match="webhook mode needs a token"):
        kami_config(tmp_path / "b", sim, receive="webhook")
    config = kami_config(tmp_path / "b", sim)
    with pytest.raises(ConfigError, match="poll or webhook"):
        dataclasses.replace(config.kami, receive="push").validate()
