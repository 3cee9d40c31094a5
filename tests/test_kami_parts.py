"""Kami's parts on their own: the journal and the outbox driven by a small stand-in for
the agent (what kami._context says they need), with a real bridge and the Green API
simulator."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bridge import Bridge, BridgeUnavailable
from bridge.runtime import AgentLogger, get_logger
from bridge.runtime.greenapi import GreenApiError
from bridge.testing.greenapi import GreenApiSimulator, incoming_body
from kami._config import KamiSettings
from kami._context import Context
from kami._journal import Journal
from kami._outbox import Outbox
from tests.kami_harness import OWNER, STRANGER, kami_config


@dataclass
class FakeAgent:
    """Everything a part may ask of the agent; it only writes down what it is told."""

    settings: KamiSettings
    bridge: Bridge | None
    name: str = "kami"
    log: AgentLogger = field(default_factory=lambda: get_logger("kami-parts"))
    green_blocked: str | None = None
    should_stop: bool = False
    told: list[tuple[Any, ...]] = field(default_factory=list)

    def wake_up(self) -> None:
        self.told.append(("wake_up",))

    def set_condition(self, key: str, reason: str | None) -> None:
        self.told.append(("condition", key, reason))

    def record_error(self, message: str) -> None:
        self.told.append(("error", message))

    def activity(self, processed: int = 1) -> None:
        self.told.append(("activity", processed))

    def on_auth_error(self, exc: GreenApiError) -> None:
        self.told.append(("auth", str(exc)))

    def on_green_down(self, where: str, exc: GreenApiError) -> None:
        self.told.append(("down", where))

    def on_green_ok(self, where: str) -> None:
        self.told.append(("ok", where))

    def on_held(self, reason: str | None) -> None:
        self.told.append(("held", reason))

    def on_instance_state(self, state: str | None) -> None:
        self.told.append(("state", state))

    def on_quota(self, detail: str) -> None:
        self.told.append(("quota", detail))

    def received(self, timestamp: int) -> None:
        self.told.append(("received", timestamp))

    def sent(self, count: int) -> None:
        self.told.append(("sent", count))

    def report(self, text: str, *, ref: str | None, author: str | None) -> None:
        self.told.append(("report", text, ref, author))


@pytest.fixture
def own(bridge_dir: Path) -> Iterator[Bridge]:
    """The bridge as Kami opens it (``bridge``, the conftest's, is another agent's)."""
    b = Bridge(bridge_dir, agent="kami")
    yield b
    b.close()


def fake(bridge_dir: Path, sim: GreenApiSimulator, bridge: Bridge) -> FakeAgent:
    return FakeAgent(kami_config(bridge_dir, sim).kami, bridge)


def test_the_journal_records_what_a_notification_causes(bridge_dir: Path, sim: GreenApiSimulator,
                                                        own: Bridge) -> None:
    agent = fake(bridge_dir, sim, own)
    journaled: list[str] = []
    context: Context = agent
    journal = Journal(context, default_language="he", on_journaled=journaled.append)
    body = incoming_body(sim.id_instance, sim.wid, OWNER, "hello there", timestamp=1_700_000_000)

    assert journal.handle(body) == "journaled"
    [record] = own.inbox("kami")
    assert (record.message.sender, record.message.type) == ("kami", "request")
    assert record.message.metadata["kami"] == "inbound"
    assert record.message.metadata["lang"] == "en"
    assert journaled == [record.id]
    assert agent.told == [("received", 1_700_000_000), ("wake_up",)]

    assert journal.handle(body) == "duplicate"  # Green API offered it again
    assert journaled == [record.id] and len(own.inbox("kami")) == 1

    stranger = incoming_body(sim.id_instance, sim.wid, STRANGER, "hi")
    assert journal.handle(stranger) == "refused"
    assert len(own.inbox("kami")) == 1
    agent.told.clear()
    assert journal.handle({"typeWebhook": "stateInstanceChanged", "timestamp": 1,
                           "instanceData": {}, "stateInstance": "notAuthorized"}) == "state"
    assert agent.told == [("state", "notAuthorized")]

    agent.bridge = None
    with pytest.raises(BridgeUnavailable):
        journal.handle(incoming_body(sim.id_instance, sim.wid, OWNER, "while it is away"))


def test_the_outbox_delivers_and_reports_to_whoever_implements_the_context(
        bridge_dir: Path, sim: GreenApiSimulator, bridge: Bridge, own: Bridge) -> None:
    agent = fake(bridge_dir, sim, own)
    client = agent.settings.client()
    try:
        outbox = Outbox(agent, client=client, notify_chats=[OWNER])
        ok = bridge.send("the answer", to="kami", type="response",
                         metadata={"whatsapp_sender": OWNER})
        bad = bridge.send("to a stranger", to="kami", type="response",
                          metadata={"whatsapp_sender": STRANGER})
        views = own.inbox("kami", include_claimed=True)
        assert all(outbox.deliverable(v) for v in views)

        assert outbox.deliver(own, views)
        assert sim.texts(OWNER) == ["*Tester*\nthe answer"]
        assert sim.texts(STRANGER) == []
        done, failed = bridge.get(ok.id).state, bridge.get(bad.id).state
        assert done.status == "done" and done.reason == f"sent as {sim.sent[0].id_message}"
        assert failed.status == "failed"
        assert ("ok", "send") in agent.told and ("sent", 1) in agent.told
        [report] = [t for t in agent.told if t[0] == "report"]
        assert report[2:] == (bad.id, "tester")
        assert any(t[0] == "error" and bad.id in t[1] for t in agent.told)

        agent.green_blocked = "401"  # the credentials were refused: nothing goes out
        bridge.send("later", to="kami", type="response", metadata={"whatsapp_sender": OWNER})
        assert not outbox.deliver(own, own.inbox("kami", include_claimed=True))
        assert len(sim.sent) == 1
    finally:
        client.close()
