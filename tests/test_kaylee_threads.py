"""Kaylee's loop with recipes in worker threads: PAUSE, leases, cancellation, concurrency,
stopping, and outcomes kept while the bridge is away."""

from __future__ import annotations

import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge import Bridge
from tests.kaylee_support import Driver, make, outcome

GATED = """
[[recipe]]
name = "gated"
argv = ["sh", "-c",
        "echo start >> {log}; while [ ! -e {gate} ]; do sleep 0.02; done; echo end >> {log}"]
idempotent = {idem}
timeout = "60s"
"""

STEPPED = """
[[recipe]]
name = "stepped"
steps = [["sh", "-c", "echo one >> {log}; while [ ! -e {gate} ]; do sleep 0.02; done"],
         ["sh", "-c", "echo two >> {log}"]]
"""


class Scene:
    """A bridge, a gate file the recipe waits for, and its log."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.gate = tmp_path / "gate"
        self.log = tmp_path / "log"
        self.bridge = Bridge(tmp_path / "bridge", agent="claude")

    def config(self, top: str = "", *, idem: bool = True) -> str:
        return top + GATED.format(log=self.log, gate=self.gate, idem=str(idem).lower()) + \
            STEPPED.format(log=self.log, gate=self.gate)

    def lines(self) -> list[str]:
        return self.log.read_text().split() if self.log.exists() else []

    def status(self, rid: str) -> str:
        return self.bridge.get(rid).state.status


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[Scene]:
    s = Scene(tmp_path)
    yield s
    s.bridge.close()


@pytest.fixture
def drivers() -> Iterator[list[Driver]]:
    made: list[Driver] = []
    yield made
    for d in made:
        d.stop()


def drive(scene: Scene, drivers: list[Driver], top: str = "", **kw: object) -> Driver:
    d = Driver(make(scene.tmp_path, scene.config(top, **kw)))  # type: ignore[arg-type]
    drivers.append(d)
    return d


def test_outcomes_are_appended_while_paused_but_nothing_new_starts(
        scene: Scene, drivers: list[Driver]) -> None:
    d = drive(scene, drivers)
    first = scene.bridge.send("gated", to="kaylee").id
    d.until(lambda: scene.lines() == ["start"], what="the first task to start")
    scene.bridge.pause("maintenance", by="owner")
    second = scene.bridge.send("echo text=later", to="kaylee").id
    scene.gate.touch()
    d.until(lambda: scene.status(first) == "done", what="the outcome while paused")
    for _ in range(20):
        d.turn()
    assert scene.status(second) == "pending"  # PAUSE: nothing new is taken
    scene.bridge.resume(by="owner")
    d.until(lambda: scene.status(second) == "done", what="work after the resume")


def test_pause_holds_a_long_recipe_between_its_steps(scene: Scene,
                                                     drivers: list[Driver]) -> None:
    d = drive(scene, drivers)
    rid = scene.bridge.send("stepped", to="kaylee").id
    d.until(lambda: scene.lines() == ["one"], what="step one")
    scene.bridge.pause("hold on", by="owner")
    d.turn()  # the loop notices PAUSE
    scene.gate.touch()  # step one can finish now
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        d.turn()
        time.sleep(0.02)
    assert scene.lines() == ["one"]  # step two waits for the resume
    assert scene.status(rid) == "claimed"
    progress = [v.message.content for v in scene.bridge.inbox("claude")
                if v.message.metadata.get("kaylee") == "progress"]
    assert "⏳ stepped: paused before step 2 of 2; waiting for the resume" in progress
    scene.bridge.resume(by="owner")
    d.until(lambda: scene.status(rid) == "done", what="step two after the resume")
    assert scene.lines() == ["one", "two"]


def test_the_lease_of_a_running_task_is_renewed(scene: Scene, drivers: list[Driver]) -> None:
    d = drive(scene, drivers)  # lease = 5s: renewed every 5/3 s
    rid = scene.bridge.send("gated", to="kaylee").id
    d.until(lambda: scene.lines() == ["start"], what="the task to start")
    first = scene.bridge.get(rid).state.lease_until or 0
    d.until(lambda: (scene.bridge.get(rid).state.lease_until or 0) > first + 1, timeout=10,
            what="a renewed lease")
    claims = [c for c in scene.bridge.history(rid).changes if c["status"] == "claimed"]
    assert len(claims) >= 2 and scene.bridge.get(rid).state.attempts == 1
    scene.gate.touch()
    d.until(lambda: scene.status(rid) == "done", what="the outcome")


def test_cancelling_a_running_task_stops_it(scene: Scene, drivers: list[Driver]) -> None:
    d = drive(scene, drivers, "stop_grace = \"1s\"\n")
    rid = scene.bridge.send("gated", to="kaylee").id
    d.until(lambda: scene.lines() == ["start"], what="the task to start")
    scene.bridge.cancel(rid, reason="changed my mind", sender="owner")
    d.until(lambda: not d.kaylee.running, timeout=20, what="the task to stop")
    assert scene.status(rid) == "cancelled"
    scene.gate.touch()
    time.sleep(0.3)
    assert scene.lines() == ["start"]  # it was killed, it never went on
    kaylee_said = [s for s in scene.bridge.fold() if s.sender == "kaylee"
                   and s.reply_to == rid and s.type == "response"]
    assert kaylee_said == []


@pytest.mark.parametrize("concurrency", [1, 2])
def test_one_task_at_a_time_unless_configured(scene: Scene, drivers: list[Driver],
                                              concurrency: int) -> None:
    d = drive(scene, drivers, f"concurrency = {concurrency}\n")
    a = scene.bridge.send("gated", to="kaylee").id
    b = scene.bridge.send("gated", to="kaylee").id
    d.until(lambda: scene.lines().count("start") == concurrency, what="the tasks to start")
    for _ in range(30):  # more turns: nothing more may start
        d.turn()
        time.sleep(0.01)
    assert scene.lines().count("start") == concurrency
    assert [scene.status(a), scene.status(b)].count("claimed") == concurrency
    scene.gate.touch()
    d.until(lambda: scene.status(a) == scene.status(b) == "done", what="both outcomes")


def test_stopping_hands_back_an_idempotent_task(scene: Scene, drivers: list[Driver]) -> None:
    d = drive(scene, drivers, "stop_grace = \"1s\"\n")
    rid = scene.bridge.send("gated", to="kaylee").id
    d.until(lambda: scene.lines() == ["start"], what="the task to start")
    drivers.remove(d)
    d.stop()  # SIGTERM: the command gets stop_grace, then it is killed and handed back
    state = scene.bridge.get(rid).state
    assert state.status == "pending"
    assert "Kaylee is stopping" in (state.reason or "")
    d2 = drive(scene, drivers)
    scene.gate.touch()
    d2.until(lambda: scene.status(rid) == "done", what="the re-run")
    assert scene.lines() == ["start", "start", "end"]


def test_stopping_fails_a_non_idempotent_task_as_interrupted(scene: Scene,
                                                             drivers: list[Driver]) -> None:
    d = drive(scene, drivers, "stop_grace = \"1s\"\n", idem=False)
    rid = scene.bridge.send("gated", to="kaylee").id
    d.until(lambda: scene.lines() == ["start"], what="the task to start")
    drivers.remove(d)
    d.stop()
    state = scene.bridge.get(rid).state
    assert state.status == "failed"
    assert "not idempotent, so it is not run again" in (state.reason or "")


def test_a_task_that_ends_within_the_grace_reports_normally(scene: Scene,
                                                            drivers: list[Driver]) -> None:
    d = drive(scene, drivers, "stop_grace = \"20s\"\n", idem=False)
    rid = scene.bridge.send("gated", to="kaylee").id
    d.until(lambda: scene.lines() == ["start"], what="the task to start")
    drivers.remove(d)
    import threading
    threading.Timer(0.5, scene.gate.touch).start()
    d.stop()
    assert scene.status(rid) == "done"
    assert scene.lines() == ["start", "end"]


def test_an_outcome_waits_in_the_outbox_while_the_bridge_is_away(
        scene: Scene, drivers: list[Driver]) -> None:
    d = drive(scene, drivers)
    rid = scene.bridge.send("gated", to="kaylee").id
    d.until(lambda: scene.lines() == ["start"], what="the task to start")
    bridge = d.kaylee.bridge
    d.kaylee.bridge = None  # the bridge is unreachable (as after a lost connection)
    scene.gate.touch()
    outbox = scene.tmp_path / "state" / "outbox"
    deadline = time.monotonic() + 20
    while not (outbox.exists() and any(outbox.iterdir())):
        assert time.monotonic() < deadline, "no outbox file"
        d.kaylee._refresh = lambda: None  # type: ignore[method-assign]
        d.kaylee.housekeeping()
        time.sleep(0.02)
    [kept] = list(outbox.iterdir())
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert scene.status(rid) == "claimed"
    # Kaylee is restarted before the bridge comes back; the new one appends the outcome.
    drivers.remove(d)
    d.kaylee.running.clear()
    d.kaylee.bridge = bridge
    assert bridge is not None
    bridge.close()
    d2 = drive(scene, drivers)
    d2.until(lambda: scene.status(rid) == "done", what="the kept outcome")
    assert list(outbox.iterdir()) == []
    assert scene.lines() == ["start", "end"]  # appended, not run again
    assert "✅ gated" in outcome(scene.bridge, rid).message.content


def test_an_approval_that_arrives_while_busy_waits_for_a_free_slot(
        scene: Scene, drivers: list[Driver]) -> None:
    marker = scene.tmp_path / "approved-ran"
    top = f'[[recipe]]\nname = "careful"\nargv = ["touch", "{marker}"]\nconfirm = true\n'
    d = Driver(make(scene.tmp_path, scene.config() + top))
    drivers.append(d)
    careful = scene.bridge.send("careful", to="kaylee").id
    d.until(lambda: [v for v in scene.bridge.inbox("kami")
                     if v.message.metadata.get("kaylee") == "confirm"], what="the question")
    busy = scene.bridge.send("gated", to="kaylee").id
    d.until(lambda: scene.lines() == ["start"], what="the gated task to start")
    [ask] = [v for v in scene.bridge.inbox("kami") if v.message.metadata.get("kaylee") == "confirm"]
    with Bridge(scene.tmp_path / "bridge", agent="kami") as kami:
        kami.reply(ask.id, "yes", metadata={"confirmed": True})
    for _ in range(30):
        d.turn()
        time.sleep(0.01)
    assert not marker.exists()  # one task at a time: the approved one waits
    scene.gate.touch()
    d.until(lambda: scene.status(careful) == "done", what="the approved task")
    assert marker.exists() and scene.status(busy) == "done"


def test_a_quick_task_posts_started_before_its_result(scene: Scene) -> None:
    """The "⏳ started" line and the outcome come from different queues; a task that ends
    before the loop looks again must still have them on the bridge in that order (Kami
    delivers them to WhatsApp in bridge order)."""
    d = Driver(make(scene.tmp_path))
    try:
        rid = scene.bridge.send('echo text=hi', to="kaylee").id
        d.turn()  # claims it, queues "started", starts the worker
        task = d.kaylee.running[rid]
        assert task.thread is not None
        task.thread.join(20)  # finished before the loop's next look
        d.turn()
        result = outcome(scene.bridge, rid)
        lines = [v for v in scene.bridge.inbox("claude")
                 if v.message.metadata.get("kaylee") == "progress"]
        assert [v.message.content.split(": ", 1)[1] for v in lines] == ["started"]
        assert lines[0].state.offset < result.state.offset
    finally:
        d.stop()
