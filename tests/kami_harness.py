"""Kami in tests: the real agent against the Green API simulator and a real bridge.

``start_kami(tmp_path, sim, ...)`` runs :class:`kami._agent.KamiAgent` in a thread
(its loop, receiver and worker are the real ones; only systemd's notify socket
is replaced by a function) and collects its structured log events.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge import Bridge, MessageView
from bridge.runtime import HealthConfig, ModelRoute, ModelsConfig, Secret
from bridge.testing.greenapi import GreenApiSimulator, SentMessage
from kami._agent import KamiAgent
from kami._config import KamiConfig, KamiSettings

OWNER = "972501234567@c.us"
OWNER_LID = "120650379300963@lid"
STRANGER = "972509999999@c.us"
GROUP = "120363043968066561@g.us"
OTHER_GROUP = "120363000000000000@g.us"


class Events(logging.Handler):
    """The agent's structured log events, as dicts (``event`` plus the fields)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.items: list[dict[str, Any]] = []
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "event", None)
        fields = dict(getattr(record, "fields", None) or {})
        if event is not None:
            self.items.append({"event": event, "level": record.levelname.lower(), **fields})
        self.texts.append(f"{event} {fields} {record.getMessage()}")

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in list(self.items) if e["event"] == name]

    def wait(self, name: str, timeout: float = 10.0,
             where: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.named(name):
                if where is None or where(e):
                    return e
            time.sleep(0.005)
        raise AssertionError(f"no {name!r} event within {timeout}s; saw "
                             f"{[e['event'] for e in self.items][-30:]}")


def kami_config(bridge_dir: Path, sim: GreenApiSimulator, *, models: ModelsConfig | None = None,
                **settings: Any) -> KamiConfig:
    base: dict[str, Any] = {
        "api_url": sim.api_url, "id_instance": sim.id_instance, "token": Secret(sim.token),
        "owners": (OWNER, OWNER_LID), "receive_timeout": 5, "retry_delay": 0.02,
        "backoff_cap": 0.3, "verify_after": 0.2, "quota_backoff": 0.5, "state_poll": 3600.0,
    }
    base.update(settings)
    config = KamiConfig(bridge=str(bridge_dir), idle_wait=1.0, health=HealthConfig(port=0),
                        kami=KamiSettings(**base), models=models or ModelsConfig())
    config.validate()
    return config


def models_for(api: Any, *, daily_tokens: int = 100_000, timeout: float = 5.0,
               routes: int = 1) -> ModelsConfig:
    """[models] pointing the real anthropic SDK at a FakeMessagesAPI."""
    return ModelsConfig(base_url=api.url, timeout=timeout, retries=0,
                        api_key=Secret(api.api_key),
                        route=tuple(ModelRoute(f"r{i}", f"claude-test-{i}",
                                               daily_tokens=daily_tokens, max_tokens=256)
                                    for i in range(routes)))


@dataclass
class Kami:
    sim: GreenApiSimulator
    bridge: Bridge
    agent: KamiAgent
    events: Events
    thread: threading.Thread
    exit_code: list[int] = field(default_factory=list)

    def texts(self, chat: str = OWNER) -> list[str]:
        return self.sim.texts(chat)

    def wait_sent(self, count: int, chat: str | None = OWNER,
                  timeout: float = 10.0) -> list[SentMessage]:
        return self.sim.wait_sent(count, timeout=timeout, chat_id=chat)

    def wait_text(self, needle: str, chat: str = OWNER, timeout: float = 10.0) -> SentMessage:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in list(self.sim.sent):
                if m.chat_id == chat and needle in m.message:
                    return m
            time.sleep(0.005)
        raise AssertionError(f"no message containing {needle!r} to {chat} within {timeout}s; "
                             f"sent: {[m.message[:80] for m in self.sim.sent]}")

    def requests_for(self, agent: str) -> list[MessageView]:
        return [v for v in self.bridge.inbox(agent) if v.message.type == "request"]

    def wait_requests(self, agent: str, count: int, timeout: float = 10.0) -> list[MessageView]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.requests_for(agent)
            if len(found) >= count:
                return found
            time.sleep(0.005)
        raise AssertionError(f"{len(self.requests_for(agent))} requests for {agent} within "
                             f"{timeout}s, expected {count}")

    def wait_queue_empty(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.sim.pending():
            if time.monotonic() > deadline:
                raise AssertionError(f"Green API queue not drained: {self.sim.pending()}")
            time.sleep(0.005)

    def health(self) -> dict[str, Any]:
        return self.agent.snapshot()

    def stop(self) -> int:
        self.agent.request_stop()
        self.thread.join(30)
        assert not self.thread.is_alive(), "kami did not stop"
        logging.getLogger("agent.kami").removeHandler(self.events)
        self.bridge.close()
        return self.exit_code[0]


def run_agent(config: KamiConfig) -> tuple[KamiAgent, threading.Thread, Events, list[int]]:
    """Start the agent's loop in a thread; its events are collected from now on."""
    events = Events()
    logger = logging.getLogger("agent.kami")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(events)
    agent = KamiAgent(config, notify=lambda state: True)
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(agent.run()), daemon=True)
    thread.start()
    return agent, thread, events, codes


def start_kami(bridge_dir: Path, sim: GreenApiSimulator, *, config: KamiConfig | None = None,
               **settings: Any) -> Kami:
    """Kami on a bridge in ``bridge_dir`` (created first), once it is ready."""
    config = config or kami_config(bridge_dir, sim, **settings)
    bridge = Bridge(bridge_dir, agent="claude")
    agent, thread, events, codes = run_agent(config)
    kami = Kami(sim, bridge, agent, events, thread, codes)
    events.wait("kami.ready")
    return kami


def with_settings(config: KamiConfig, **settings: Any) -> KamiConfig:
    return dataclasses.replace(config, kami=dataclasses.replace(config.kami, **settings))
