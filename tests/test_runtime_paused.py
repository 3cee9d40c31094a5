"""While PAUSE is set the loop calls step_paused() instead of step(): an agent may act on
what a pause allows (Kami: the owner's resume) and nothing else."""

from __future__ import annotations

from pathlib import Path

from bridge import Bridge
from bridge.runtime import Agent, AgentConfig


class Recorder(Agent):
    name = "rec"

    def __init__(self, config: AgentConfig, paused_work: int) -> None:
        super().__init__(config, notify=lambda state: True)
        self.calls: list[str] = []
        self.paused_work = paused_work

    def step(self) -> bool:
        self.calls.append("step")
        return False

    def step_paused(self) -> bool:
        self.calls.append("paused")
        if self.paused_work > 0:
            self.paused_work -= 1
            if self.paused_work == 0 and self.bridge is not None:
                self.bridge.resume(by="rec")  # as Kami does for the owner's "resume"
            return True
        return False


def make(tmp_path: Path, paused_work: int) -> tuple[Recorder, Bridge]:
    bridge = Bridge(tmp_path / "b", agent="owner")
    bridge.pause("test", by="owner")
    config = AgentConfig(name="rec", bridge=str(bridge.directory), idle_wait=0.05)
    return Recorder(config, paused_work), bridge


def test_paused_work_runs_and_step_waits(tmp_path: Path) -> None:
    agent, bridge = make(tmp_path, paused_work=0)
    assert agent.run(once=True) == 0
    assert agent.calls == ["paused"]  # nothing allowed to do: once stops there
    bridge.close()


def test_paused_work_until_it_resumes_then_steps(tmp_path: Path) -> None:
    agent, bridge = make(tmp_path, paused_work=2)
    assert agent.run(once=True) == 0
    assert agent.calls == ["paused", "paused", "step"]
    assert not bridge.is_paused()
    bridge.close()
