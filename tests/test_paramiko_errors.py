"""map_paramiko_errors: paramiko's exceptions as BridgeErrors, with real paramiko objects.

The connection is a real one to the session's sshd; a failure is made real where it can
be (a closed transport, a missing file, a directory the host refuses to write) and raised
below the network edge where it cannot (an SFTP packet that is not SFTP, a refused
channel). Then the places that share the mapping: RemoteHost (ctl, deploy) and the SSH
connect itself.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from bridge import (
    AuthenticationFailed,
    BridgeError,
    BridgeIOError,
    BridgeUnavailable,
    ConfigError,
    ConnectionLost,
    HostUnreachable,
    NotFound,
    ProtocolError,
    RemoteUnsupported,
)
from bridge.remote._errors import map_paramiko_errors
from bridge.remote._ssh import SSHTarget, open_client, open_sftp, resolve_target
from bridge.runtime._remote_exec import RemoteHost
from tests.conftest import require_tool
from tests.sshd import ALIAS, SSHD, wait_gone


@pytest.fixture
def target(sshd: SSHD) -> SSHTarget:
    return resolve_target(ALIAS, config_path=sshd.ssh_config)


@pytest.fixture
def client(target: SSHTarget) -> Iterator[paramiko.SSHClient]:
    c = open_client(target)
    yield c
    c.close()


@pytest.fixture
def sftp(client: paramiko.SSHClient) -> Iterator[paramiko.SFTPClient]:
    s = open_sftp(client, timeout=10)
    yield s
    s.close()


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[None]:
    chattr = require_tool("chattr")
    done = subprocess.run([chattr, "+i", str(path)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"chattr +i is not supported here: {done.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


def one_line(info: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(info.value)
    assert text and "\n" not in text, text
    return text


def test_a_closed_transport_is_connection_lost_and_calls_on_lost(
        client: paramiko.SSHClient, sftp: paramiko.SFTPClient) -> None:
    transport = client.get_transport()
    assert transport is not None
    transport.close()
    lost: list[bool] = []
    with pytest.raises(ConnectionLost) as info, \
            map_paramiko_errors("host1", "reading", path="/x", link=sftp,
                                on_lost=lambda: lost.append(True)):
        sftp.stat("/")
    assert one_line(info).startswith("reading /x on host1 failed: the connection dropped")
    assert lost == [True]


def test_the_hosts_answers_on_a_live_link_name_the_file(sftp: paramiko.SFTPClient,
                                                        tmp_path: Path) -> None:
    missing = str(tmp_path / "missing")
    with pytest.raises(BridgeUnavailable) as info, \
            map_paramiko_errors("host1", "reading", path=missing, link=sftp):
        sftp.stat(missing)
    assert missing in one_line(info) and "no such file" in one_line(info)
    assert info.value.exit_code == 6
    target = tmp_path / "locked"
    target.mkdir()
    with immutable(target):
        for writing, cls in ((True, BridgeIOError), (False, BridgeUnavailable)):
            with pytest.raises(cls) as refused, \
                    map_paramiko_errors("host1", "writing", path=str(target / "f"),
                                        writing=writing, link=sftp):
                sftp.open(str(target / "f"), "wb").close()
            assert "permission denied" in one_line(refused)
            assert str(target / "f") in str(refused.value) and type(refused.value) is cls
    # An SFTP failure that is neither (a directory opened as a file, read).
    with pytest.raises(BridgeUnavailable) as failed, \
            map_paramiko_errors("host1", "reading", path=str(tmp_path), link=sftp), \
            sftp.open(str(tmp_path), "rb") as f:
        f.read()
    assert str(tmp_path) in one_line(failed)


def test_what_paramiko_cannot_say_with_an_errno(sftp: paramiko.SFTPClient) -> None:
    lost: list[bool] = []
    with pytest.raises(ProtocolError) as info, \
            map_paramiko_errors("host1", "reading", link=sftp, on_lost=lambda: lost.append(True)):
        raise paramiko.SFTPError("Garbage packet received")
    assert "Garbage packet received" in one_line(info) and lost == [True]
    with pytest.raises(RemoteUnsupported, match="no sftp here"), \
            map_paramiko_errors("host1", "opening", link=sftp,
                                refused=lambda why: RemoteUnsupported(f"no sftp here: {why}")):
        raise paramiko.ChannelException(1, "Administratively prohibited")
    with pytest.raises(ConnectionLost, match="the connection dropped"), \
            map_paramiko_errors("host1", "reading", link=sftp):
        raise paramiko.SSHException("Server connection dropped: ")
    with pytest.raises(ConnectionLost, match="no answer in time"), \
            map_paramiko_errors("host1", "reading", link=sftp):
        raise TimeoutError("timed out")
    # Without a link, a stream on the connection itself: every failure means it is gone.
    with pytest.raises(ConnectionLost), map_paramiko_errors("host1", "sending requests"):
        raise OSError("Socket is closed")
    # The bridge's own errors go through untouched; anything else is not paramiko's.
    mine = NotFound("no message x")
    with pytest.raises(NotFound) as caught, map_paramiko_errors("host1", "reading", link=sftp):
        raise mine
    assert caught.value is mine
    with pytest.raises(KeyError), map_paramiko_errors("host1", "reading", link=sftp):
        raise KeyError("a bug stays a bug")


def test_while_connecting_everything_is_about_reaching_the_host(target: SSHTarget) -> None:
    cases: list[tuple[BaseException, type[BridgeError], str]] = [
        (paramiko.SSHException("Error reading SSH protocol banner"), HostUnreachable,
         "is an OpenSSH server"),
        (paramiko.SSHException("No authentication methods available"), AuthenticationFailed,
         "to offer"),
        (EOFError(), HostUnreachable, "broke while connecting"),
        (ConnectionResetError(104, "Connection reset by peer"), HostUnreachable,
         "Connection reset by peer"),
        (paramiko.AuthenticationException("no"), AuthenticationFailed, "refused every key"),
    ]
    for raised, cls, words in cases:
        with pytest.raises(cls) as info, \
                map_paramiko_errors(str(target), "connecting", connecting=target):
            raise raised
        assert type(info.value) is cls and words in one_line(info), (raised, info.value)


def test_an_unreadable_known_hosts_is_a_config_error(sshd: SSHD, tmp_path: Path) -> None:
    bad = tmp_path / "known_hosts"
    bad.write_bytes(b"\xff\xfe not text\n")
    target = resolve_target(ALIAS, config_path=sshd.ssh_config, known_hosts=bad)
    with pytest.raises(ConfigError) as info:
        open_client(target).close()
    assert str(bad) in one_line(info)


def test_remote_host_put_refused_by_the_host_is_a_bridge_io_error(sshd: SSHD,
                                                                 tmp_path: Path) -> None:
    target = tmp_path / "staging"
    target.mkdir()
    with RemoteHost(ALIAS, ssh_config=sshd.ssh_config) as remote:
        remote.put(b"one", str(target / "a.txt"), 0o640)
        assert (target / "a.txt").read_bytes() == b"one"
        assert (target / "a.txt").stat().st_mode & 0o777 == 0o640
        with immutable(target), pytest.raises(BridgeIOError) as info:
            remote.put(b"two", str(target / "b.txt"))
        assert str(target / "b.txt") in one_line(info) and "permission denied" in str(info.value)
        assert sorted(p.name for p in target.iterdir()) == ["a.txt"]  # no temporary left
        with pytest.raises(BridgeUnavailable, match="no such file"):
            remote.put(b"three", str(tmp_path / "nowhere" / "c.txt"))


def test_remote_host_reconnects_after_its_connection_dropped(sshd: SSHD) -> None:
    with RemoteHost(ALIAS, ssh_config=sshd.ssh_config) as remote:
        assert remote.run(["echo", "one"]).stdout == "one\n"
        transport = remote._client.get_transport()
        assert transport is not None
        transport.close()
        result = remote.run(["sh", "-c", "echo two; echo err >&2; exit 3"])
        assert (result.status, result.stdout, result.stderr) == (3, "two\n", "err\n")
        assert remote.run(["cat"], stdin=b"x" * 300_000).stdout == "x" * 256 * 1024  # capped


def test_remote_host_run_past_its_timeout_is_connection_lost(sshd: SSHD) -> None:
    marker = "sleep 30.5"
    with RemoteHost(ALIAS, ssh_config=sshd.ssh_config) as remote:
        with pytest.raises(ConnectionLost, match=r"did not finish within 0\.5 s") as info:
            remote.run(["sleep", "30.5"], timeout=0.5)
        one_line(info)
        # Giving up dropped the connection; should the host's command outlive it (no PTY,
        # no SIGHUP), end it by its PID.
        pids = [p for p in sshd.session_pids() if _cmdline(p) == marker]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        wait_gone(pids)
        assert remote.run(["true"]).status == 0  # a new connection


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""
