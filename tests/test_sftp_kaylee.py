"""Kaylee's rotate recipe asks the backend, not its class: the SFTP fallback cannot rotate
(a clear failure, never a rotation of its private copy reported as done), and whether a
failure is worth retrying follows the error's class."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

import bridge
from bridge import Bridge, RemoteBridge, SftpBridge
from bridge.format._time import format_ts
from bridge.runtime import AgentLogger
from kaylee._config import RotateConfig
from kaylee._errors import RecipeFailed
from kaylee._ops import RotateRecipe
from kaylee._recipe import TaskContext
from tests.sshd import BRIDGE_COMMAND, SSHD


def task(recipe: RotateRecipe, b: object, state: Path) -> TaskContext:
    def nothing() -> Any:
        raise AssertionError("not used by the rotate recipe")

    return TaskContext(task_id="t1", recipe=recipe, params={"older_than": "1d"},
                       dry_run=False, attempt=1, log=AgentLogger(logging.getLogger("test")),
                       state_dir=state, stop=threading.Event(), is_paused=lambda: False,
                       progress_sink=lambda _text: None,
                       bridge_getter=cast("Callable[[], Any]", lambda: b),
                       models=nothing, monitor=lambda: None)


def finished_long_ago(b: Bridge) -> str:
    when = format_ts(time.time() - 40 * 86400)
    mid = "kami-01J0000000000000000000000A"
    b.append_record({"v": 1, "t": "msg", "id": mid, "ts": when, "from": "kami", "to": "claude",
                     "type": "request", "status": "pending", "content": "ancient"})
    b.append_record({"v": 1, "t": "status", "id": "claude-01J0000000000000000000000B",
                     "ts": when, "from": "claude", "ref": mid, "status": "done"})
    return mid


def test_rotation_through_the_sftp_fallback_fails_clearly_and_moves_nothing(
        sshd: SSHD, bridge_dir: Path, tmp_path: Path) -> None:
    with Bridge(bridge_dir, agent="kami") as local:
        finished_long_ago(local)
    before = (bridge_dir / "messages.jsonl").read_bytes()
    with bridge.connect(sshd.url(bridge_dir, transport="sftp"), agent="kaylee",
                        ssh_config=sshd.ssh_config) as b:
        assert isinstance(b, SftpBridge)
        with pytest.raises(RecipeFailed) as info:
            RotateRecipe(RotateConfig()).run(task(RotateRecipe(RotateConfig()), b,
                                                  tmp_path / "state"))
    assert "cannot rotate" in info.value.reason and "on its host" in info.value.reason
    assert not info.value.retryable
    assert (bridge_dir / "messages.jsonl").read_bytes() == before
    assert not (bridge_dir / "archive").exists()


def test_rotation_on_a_local_bridge_moves_the_old_messages(bridge_dir: Path,
                                                           tmp_path: Path) -> None:
    with Bridge(bridge_dir, agent="kaylee") as b:
        finished_long_ago(b)
        result = RotateRecipe(RotateConfig()).run(task(RotateRecipe(RotateConfig()), b,
                                                       tmp_path / "state"))
    assert result.text.startswith("moved 2 records")
    assert list((bridge_dir / "archive").iterdir())


def test_a_busy_bridge_is_worth_retrying(bridge_dir: Path, tmp_path: Path) -> None:
    import fcntl

    from bridge.archive._rotate import ROTATION_LOCK_NAME

    with Bridge(bridge_dir, agent="kaylee") as b:
        finished_long_ago(b)
        fd = os.open(bridge_dir / ROTATION_LOCK_NAME, os.O_RDONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # another rotation is running
            with pytest.raises(RecipeFailed) as info:
                RotateRecipe(RotateConfig()).run(task(RotateRecipe(RotateConfig()), b,
                                                      tmp_path / "state"))
        finally:
            os.close(fd)
    assert "another rotation" in info.value.reason and info.value.retryable


@contextlib.contextmanager
def frozen(server: SSHD) -> Iterator[None]:
    pids = [server.pid, *server.session_pids()]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def test_a_connection_lost_mid_rotation_is_worth_retrying(private_sshd: SSHD,
                                                          bridge_dir: Path,
                                                          tmp_path: Path) -> None:
    with bridge.connect(private_sshd.url(bridge_dir), agent="kaylee",
                        ssh_config=private_sshd.ssh_config, remote_command=BRIDGE_COMMAND,
                        heartbeat_timeout=1.0, reconnect_timeout=0.5) as b:
        assert isinstance(b, RemoteBridge)
        b.send("x")
        with frozen(private_sshd), pytest.raises(RecipeFailed) as info:
            RotateRecipe(RotateConfig()).run(task(RotateRecipe(RotateConfig()), b,
                                                  tmp_path / "state"))
    assert "rotation failed" in info.value.reason and info.value.retryable
