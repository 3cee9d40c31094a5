"""Faults on the way to a real sshd: killed sessions, a frozen host, requests caught in between.

Each test has an sshd of its own (``private_sshd``): they kill and freeze its
processes, always by PID, and thaw them before the fixture stops them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

import bridge
from bridge import Bridge, ConnectionLost, RemoteBridge
from bridge.remote._remote import backoff_delays
from bridge.remote._session import DEFAULT_HEARTBEAT_TIMEOUT
from tests.helpers import wait_for
from tests.sshd import BRIDGE_COMMAND, SSHD, wait_session_count


def connect(server: SSHD, path: Path, **kw: Any) -> RemoteBridge:
    b = bridge.connect(server.url(path), **{"agent": "tester", "ssh_config": server.ssh_config,
                                            "remote_command": BRIDGE_COMMAND, **kw})
    assert isinstance(b, RemoteBridge)
    return b


def session_processes(server: SSHD) -> list[int]:
    """sshd's per-connection processes (not the bridge server they run)."""
    out = []
    for pid in server.session_pids():
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sshd:"):
                out.append(pid)
    return out


@contextlib.contextmanager
def frozen(server: SSHD):
    """SIGSTOP the listener and everything below it (a frozen host); SIGCONT afterwards."""
    pids = [server.pid, *server.session_pids()]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSTOP)
    try:
        yield pids
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


class Collector:
    """Runs ``follower.run`` in a thread, keeping the content of every message handled."""

    def __init__(self, follower: Any) -> None:
        self.follower = follower
        self.got: list[str] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.follower.run(lambda e: self.got.append(e.record["content"])
                              if e.kind == "msg" else None)
        except BaseException as exc:
            self.error = exc

    def stop(self) -> None:
        self.follower.stop()
        self.thread.join(10)
        self.follower.close()


def test_killing_the_ssh_session_mid_follow_loses_and_repeats_nothing(
        private_sshd: SSHD, bridge_dir: Path) -> None:
    with Bridge(bridge_dir, agent="writer") as local, connect(private_sshd, bridge_dir) as b:
        collector = Collector(b.follow("kami", start="end"))
        total = 300
        stop_writing = threading.Event()

        def write() -> None:
            for i in range(total):
                local.send(str(i))
                if stop_writing.wait(0.003):
                    return

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        wait_for(lambda: len(collector.got) >= 60, what="records flowing")
        killed = session_processes(private_sshd)
        assert killed
        for pid in killed:  # the connection dies mid-stream, records still being appended
            os.kill(pid, signal.SIGKILL)
        writer.join(30)
        wait_for(lambda: len(collector.got) >= total, timeout=30, what="every record")
        assert collector.error is None
        assert collector.got == [str(i) for i in range(total)]  # no gap, no repeat
        assert collector.follower.reconnects == 1
        collector.stop()
        b.is_paused()  # after the pipelined commits: the cursor is on the host
        cursor = local.cursors.load("kami")
        assert cursor is not None and cursor.offset == local.log_path.stat().st_size


def test_reads_reconnect_by_themselves_and_writes_after_a_drop_are_safe(
        private_sshd: SSHD, bridge_dir: Path) -> None:
    with connect(private_sshd, bridge_dir) as b:
        first = b.send("one")
        for pid in session_processes(private_sshd):
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not b.connected, what="the drop to be noticed")
        # The connection is known to be gone before the call: it reconnects first.
        assert b.get(first.id).message.content == "one"
        assert b.send("two").id
        assert b.reconnects == 1
        wait_session_count(private_sshd, 1)  # the old server exited: no orphan


@pytest.mark.slow
def test_a_frozen_host_is_noticed_within_the_default_deadline(
        private_sshd: SSHD, bridge_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert DEFAULT_HEARTBEAT_TIMEOUT <= 10
    with connect(private_sshd, bridge_dir) as b:
        outcome: list[Any] = []

        def call() -> None:
            try:
                outcome.append(b.status())
            except BaseException as exc:
                outcome.append(exc)

        with frozen(private_sshd):
            threading.Thread(target=call, daemon=True).start()
            # paramiko's transport stays "active" with a frozen peer; the heartbeat
            # deadline is what notices, while a call is waiting on the host.
            wait_for(lambda: not b.connected, timeout=DEFAULT_HEARTBEAT_TIMEOUT + 1,
                     what="the frozen host to be noticed")
            assert not outcome  # a read: it keeps reconnecting rather than failing
        assert "heartbeat deadline 10 s" in caplog.text
        # Thawed: the read is answered over a new connection.
        wait_for(lambda: outcome, timeout=30, what="the read to be answered after the thaw")
        assert isinstance(outcome[0], bridge.BridgeStatus), outcome
        assert b.reconnects == 1


def test_a_write_in_flight_when_the_host_froze(private_sshd: SSHD, bridge_dir: Path) -> None:
    with connect(private_sshd, bridge_dir, heartbeat_timeout=1.5, connect_timeout=1.0,
                 reconnect_timeout=30) as b:
        b.send("before")
        outcomes: dict[str, Any] = {}

        def attempt(name: str, **kw: Any) -> None:
            try:
                outcomes[name] = b.send(name, **kw)
            except BaseException as exc:
                outcomes[name] = exc

        with frozen(private_sshd):
            plain = threading.Thread(target=attempt, args=("plain",), daemon=True)
            keyed = threading.Thread(target=attempt, args=("keyed",),
                                     kwargs={"idempotency_key": "wa-1"}, daemon=True)
            plain.start()
            keyed.start()
            wait_for(lambda: "plain" in outcomes, timeout=10, what="the plain send to fail")
        # Without a key nobody can know whether the host appended it: the error says so.
        assert isinstance(outcomes["plain"], ConnectionLost)
        assert "may or may not have been applied" in str(outcomes["plain"])
        # With a key the send is retried after reconnecting, and it is in the file once.
        wait_for(lambda: "keyed" in outcomes, timeout=30, what="the keyed send to finish")
        result = outcomes["keyed"]
        assert isinstance(result, bridge.SendResult), result
        with Bridge(bridge_dir) as local:
            written = [e for e in local.entries() if isinstance(e, bridge.Entry)
                       and e.record.get("idem") == "wa-1"]
        assert len(written) == 1 and written[0].record["id"] == result.id


def test_a_follower_waits_out_a_frozen_host_and_resumes(private_sshd: SSHD,
                                                        bridge_dir: Path) -> None:
    with Bridge(bridge_dir, agent="writer") as local, \
            connect(private_sshd, bridge_dir, heartbeat_timeout=1.5, connect_timeout=1.0) as b:
        collector = Collector(b.follow("kami", start="end"))
        local.send("0")
        wait_for(lambda: collector.got == ["0"], what="the first record")
        with frozen(private_sshd):
            for i in range(1, 6):
                local.send(str(i))
            wait_for(lambda: not b.connected, timeout=10,
                     what="the freeze to be noticed")
        wait_for(lambda: len(collector.got) == 6, timeout=30, what="records after the thaw")
        assert collector.got == [str(i) for i in range(6)]
        assert collector.error is None
        collector.stop()


def test_backoff_is_capped_and_exponential() -> None:
    delays = backoff_delays()
    first = [next(delays) for _ in range(10)]
    assert first[0] == 0.0
    assert 0.16 <= first[1] <= 0.24 and 0.32 <= first[2] <= 0.48
    assert all(d <= 5.0 * 1.2 for d in first) and first[-1] >= 5.0 * 0.8


def test_a_call_gives_up_after_the_reconnect_timeout(private_sshd: SSHD, bridge_dir: Path
                                                     ) -> None:
    b = connect(private_sshd, bridge_dir, reconnect_timeout=1.0, connect_timeout=1.0)
    # A follower reconnects for ever; that must not keep other calls from their deadline.
    follower = b.follow(start="end")
    threading.Thread(target=follower.wait, daemon=True).start()
    try:
        private_sshd.stop()  # the listener is gone: every reconnect is refused
        wait_for(lambda: not b.connected, timeout=10,
                 what="the drop to be noticed")
        outcome: list[BaseException] = []

        def call() -> None:
            try:
                b.status()
            except BaseException as exc:
                outcome.append(exc)

        threading.Thread(target=call, daemon=True).start()
        wait_for(lambda: outcome, timeout=10, what="the call to give up")
        assert isinstance(outcome[0], bridge.RemoteError)
        assert "refused" in str(outcome[0])
        assert not follower.stopped  # still trying
    finally:
        b.close()
    wait_for(lambda: follower.stopped, what="the follower to stop with the bridge")
