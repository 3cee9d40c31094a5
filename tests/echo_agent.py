"""A small agent for the runtime's tests: answers requests addressed to it.

``python -m tests.echo_agent run --config FILE`` — content ``sleep:N`` makes the
work take N seconds (checking for a stop every 50 ms and handing the claim back
if asked to stop), ``hang`` blocks the loop for good (a stuck agent), anything
else is echoed back.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from bridge import MessageView
from bridge.runtime import Agent, AgentConfig
from bridge.runtime._main import agent_main


@dataclass(frozen=True)
class EchoConfig(AgentConfig):
    name: str = "echo"


class EchoAgent(Agent):
    name = "echo"

    def __init__(self, config: AgentConfig) -> None:
        super().__init__(config)
        self.current: MessageView | None = None

    def step(self) -> bool:
        assert self.bridge is not None
        view = self.bridge.claim_next(self.config.name, lease=60)
        if view is None:
            return False
        self.current = view
        content = view.message.content
        self.log.info("work.started", id=view.id)
        if content == "hang":
            while True:  # a stuck loop: the watchdog must notice
                time.sleep(1)
        if content.startswith("sleep:"):
            end = time.monotonic() + float(content.split(":", 1)[1])
            while time.monotonic() < end:
                if self.should_stop:
                    return True  # hand_back() releases the claim
                time.sleep(0.05)
        self.bridge.reply(view.id, f"echo: {content}")
        self.current = None
        self.activity()
        self.log.info("work.done", id=view.id)
        return True

    def hand_back(self) -> None:
        if self.current is not None and self.bridge is not None:
            self.bridge.release(self.current.id, reason="agent stopping")
            self.log.info("work.handed_back", id=self.current.id)
            self.current = None


def main() -> int:
    return agent_main(EchoAgent, EchoConfig, "echo", sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
