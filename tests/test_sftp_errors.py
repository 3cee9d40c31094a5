"""Failures under the SFTP fallback, against a real sshd: each one a BridgeError of the right
class with a one-line message (never paramiko's exception, never a traceback).

Real faults where they can be made: a transport closed under a call in flight, a frozen
host, a directory the host refuses to write (immutable: the tests run as root, whom file
modes do not stop), a directory where the log should be. paramiko's own exceptions
(SSHException) are raised below the network edge, from its SFTPClient and SSHClient.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest

import bridge
from bridge import (
    Bridge,
    BridgeError,
    BridgeIOError,
    ConnectionLost,
    ProtocolError,
    RemoteUnsupported,
    SftpBridge,
)
from tests.conftest import require_tool
from tests.helpers import wait_for
from tests.sshd import SSHD


def fallback(server: SSHD, path: Path, **kw: Any) -> SftpBridge:
    b = bridge.connect(server.url(path, transport="sftp"),
                       **{"agent": "tester", "ssh_config": server.ssh_config,
                          "remote_command": "/nonexistent/bridge", **kw})
    assert isinstance(b, SftpBridge)
    return b


def failure(fn: Callable[[], object]) -> BaseException:
    try:
        fn()
    except BaseException as exc:  # the test inspects what came out
        return exc
    raise AssertionError("the call succeeded")


def one_line(exc: BaseException, cls: type[BridgeError]) -> str:
    assert isinstance(exc, cls), repr(exc)
    text = str(exc)
    assert text and "\n" not in text and "Traceback" not in text, text
    return text


def waiting_appends(server: SSHD) -> list[str]:
    return [c for c in server.commands_below() if c.startswith("flock -w")]


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[None]:
    """``chattr +i``: no entry can be added to, renamed in or removed from ``path``, by
    root too; undone afterwards."""
    chattr = require_tool("chattr")
    done = subprocess.run([chattr, "+i", str(path)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"chattr +i is not supported here: {done.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


def test_the_transport_closed_under_an_append_in_flight(sshd: SSHD, bridge_dir: Path) -> None:
    with fallback(sshd, bridge_dir) as b, Bridge(bridge_dir, agent="local") as local:
        b.send("before")
        box: list[BaseException] = []
        with local.lock:  # the append script waits for the host's lock: a call in flight
            worker = threading.Thread(target=lambda: box.append(
                failure(lambda: b.send("in flight"))))
            worker.start()
            wait_for(lambda: waiting_appends(sshd), what="the append waiting for the lock")
            transport = b._link._client.get_transport()  # type: ignore[union-attr]
            assert transport is not None
            transport.close()
            worker.join(30)
        assert not worker.is_alive()
        text = one_line(box[0], ConnectionLost)
        assert "may or may not have been applied" in text
        # The script on the host lost its client: once it has the lock it ends.
        wait_for(lambda: not waiting_appends(sshd), what="the orphaned append to end")
        after = b.send("after")  # the next call reconnects
        assert local.get(after.id).message.content == "after"
        assert b.get(after.id).id == after.id


def test_the_transport_closed_between_calls_is_replaced(sshd: SSHD, bridge_dir: Path) -> None:
    with fallback(sshd, bridge_dir) as b:
        mid = b.send("x").id
        transport = b._link._client.get_transport()  # type: ignore[union-attr]
        assert transport is not None
        transport.close()
        assert b.get(mid).id == mid
        assert b.status().counts == {"pending": 1}


def test_a_host_directory_that_refuses_writes_is_a_bridge_io_error_with_the_path(
        sshd: SSHD, bridge_dir: Path) -> None:
    with fallback(sshd, bridge_dir) as b:
        mid = b.send("hello", to="claude").id
        with immutable(bridge_dir):
            text = one_line(failure(lambda: b.pause("deploying")), BridgeIOError)
            assert str(bridge_dir / "PAUSE") in text and "permission denied" in text
            assert not b.is_paused()
            with b.follow("digest") as sub:
                wait_for(sub.poll, what="the message")
                text = one_line(failure(sub.commit), BridgeIOError)
            assert str(bridge_dir / "cursors") in text
            # The log itself is still writable: sends go on.
            assert b.reply(mid, "done", sender="claude").id
        assert b.pause("now it can").by == "tester"


def test_a_directory_in_the_logs_place_is_one_line_with_the_path(sshd: SSHD,
                                                                 bridge_dir: Path) -> None:
    (bridge_dir / "messages.jsonl").mkdir(parents=True)
    exc = failure(lambda: fallback(sshd, bridge_dir))
    text = one_line(exc, BridgeIOError)
    assert str(bridge_dir / "messages.jsonl") in text and "is a directory" in text
    assert exc.exit_code == 7  # type: ignore[attr-defined]


def test_a_frozen_host_is_connection_lost_within_the_request_timeout(
        private_sshd: SSHD, bridge_dir: Path) -> None:
    with fallback(private_sshd, bridge_dir, heartbeat_timeout=1.0) as b:
        b.send("x")
        pids = [private_sshd.pid, *private_sshd.session_pids()]
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            text = one_line(failure(b.status), ConnectionLost)
            assert "no answer" in text
        finally:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
        assert b.status().counts == {"pending": 1}  # the next call reconnects


def test_an_ssh_exception_under_an_sftp_request_is_a_protocol_error(
        sshd: SSHD, bridge_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with fallback(sshd, bridge_dir) as b:
        mid = b.send("x").id

        def garbage(self: paramiko.SFTPClient, path: str) -> paramiko.SFTPAttributes:
            raise paramiko.SSHException("Expected attributes")

        with monkeypatch.context() as patch:
            patch.setattr(paramiko.SFTPClient, "lstat", garbage)
            text = one_line(failure(lambda: b.get(mid)), ProtocolError)
            assert "messages.jsonl" in text and "Expected attributes" in text
        assert b.get(mid).id == mid  # reset, then connected again


def test_an_sftp_subsystem_the_host_refuses_is_remote_unsupported(
        sshd: SSHD, bridge_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(self: paramiko.SSHClient) -> paramiko.SFTPClient:
        raise paramiko.SSHException("Channel closed.")

    monkeypatch.setattr(paramiko.SSHClient, "open_sftp", refused)
    text = one_line(failure(lambda: fallback(sshd, bridge_dir)), RemoteUnsupported)
    assert "Subsystem sftp" in text
