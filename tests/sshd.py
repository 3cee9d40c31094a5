"""A real OpenSSH sshd on 127.0.0.1 for the tests: its own host key, client key and directory.

Started in the foreground (``sshd -D``) so that its PID is the child's, stopped
by that PID, never by name. Files live in a directory the test owns (pytest's
tmp_path_factory), not in /tmp as a whole: sshd re-reads its config and keys
for every connection, and a tmp cleaner must not pull them away.

The client side is described the way a user would: a ``Host`` alias in an
ssh_config file, a known_hosts file, a key file. Root's ~/.bashrc on the test
machine runs slow shell init, and bash sources it for commands sshd starts;
``SetEnv SHLVL=1`` makes bash a nested shell, which does not (see docs/remote.md).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import wait_for

BRIDGE_COMMAND = str(Path(sys.executable).parent / "bridge")
"""The toolkit's command on the "remote" host: this venv's entry point, by absolute path."""

ALIAS = "bridgehost"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _keygen(path: Path, comment: str) -> None:
    from tests.conftest import require_tool

    subprocess.run([require_tool("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C",
                    comment, "-f", str(path)], check=True, capture_output=True)


@dataclass
class SSHD:
    """A running sshd and everything a client needs to reach it."""

    directory: Path
    port: int
    proc: subprocess.Popen[bytes]
    user: str
    client_key: Path
    known_hosts: Path
    ssh_config: Path
    host_key: Path
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def url(self, path: Path | str, **query: str) -> str:
        """``ssh://bridgehost/path`` through the ssh_config alias."""
        q = "&".join(f"{k}={v}" for k, v in query.items())
        return f"ssh://{ALIAS}{path}" + (f"?{q}" if q else "")

    def session_pids(self) -> list[int]:
        """Every process below the listener: sshd's per-connection processes and their
        commands (on this host they are the "remote" side)."""
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
        out: list[int] = []
        todo = [self.pid]
        while todo:
            for child in children.get(todo.pop(), []):
                out.append(child)
                todo.append(child)
        return out

    def commands_below(self) -> list[str]:
        """The command lines of the processes below the listener."""
        out = []
        for pid in self.session_pids():
            with contextlib.suppress(OSError):
                out.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                           .decode(errors="replace").strip())
        return out

    def signal_sessions(self, sig: int) -> list[int]:
        pids = self.session_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        return pids

    def home(self, home: Path) -> dict[str, str]:
        """Write ~/.ssh as a user would have it in ``home``: a Host alias in ~/.ssh/config,
        the key as ~/.ssh/id_ed25519, the host in ~/.ssh/known_hosts. Returns the env for
        a CLI subprocess."""
        ssh = home / ".ssh"
        ssh.mkdir(parents=True, exist_ok=True, mode=0o700)
        (ssh / "config").write_text(
            f"Host {ALIAS}\n    HostName 127.0.0.1\n    Port {self.port}\n    User {self.user}\n")
        key = ssh / "id_ed25519"
        key.write_bytes(self.client_key.read_bytes())
        key.chmod(0o600)
        (ssh / "known_hosts").write_text(self.known_hosts.read_text())
        return {"HOME": str(home), "BRIDGE_REMOTE_COMMAND": BRIDGE_COMMAND}

    def stop(self) -> None:
        # Found before the listener goes: its orphans would be reparented out of reach.
        sessions = self.session_pids()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        # Session processes of connections still open belong to this sshd: end them too.
        for pid in sessions:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGTERM)


def start_sshd(directory: Path, *, key_options: str = "") -> SSHD:
    """Start sshd on a free 127.0.0.1 port; ``key_options`` prefixes the authorized key."""
    from tests.conftest import require_tool

    sshd = require_tool("sshd")
    require_tool("ssh-keygen")
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    host_key, client_key = directory / "host_ed25519", directory / "client_ed25519"
    if not host_key.exists():
        _keygen(host_key, "test-host")
        _keygen(client_key, "test-client")
    pub = client_key.with_suffix(".pub").read_text().strip()
    auth = directory / "authorized_keys"
    auth.write_text((f"{key_options} " if key_options else "") + pub + "\n")
    auth.chmod(0o600)
    user = getpass.getuser()
    if os.geteuid() == 0:
        # The privilege-separation directory; a root sshd refuses to start without it.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    for _attempt in range(5):
        port = _free_port()
        config = directory / "sshd_config"
        config.write_text(f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile none
AuthorizedKeysFile {auth}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
StrictModes no
Subsystem sftp internal-sftp
ClientAliveInterval 15
ClientAliveCountMax 3
SetEnv SHLVL=1
LogLevel VERBOSE
""")
        subprocess.run([sshd, "-t", "-f", str(config)], check=True, capture_output=True)
        log = open(directory / "sshd.log", "ab")  # noqa: SIM115 - handed to the process
        proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=log)
        log.close()

        def listening(port: int = port, proc: subprocess.Popen[bytes] = proc) -> bool:
            if proc.poll() is not None:
                return True
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        wait_for(listening, timeout=10, what="sshd listening")
        if proc.poll() is None:
            break
    else:
        pytest.fail(f"sshd did not start: {(directory / 'sshd.log').read_text()[-2000:]}")
    host_pub = host_key.with_suffix(".pub").read_text().split()
    known = directory / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    ssh_config = directory / "ssh_config"
    ssh_config.write_text(f"""\
Host {ALIAS}
    HostName 127.0.0.1
    Port {port}
    User {user}
    IdentityFile {client_key}
    IdentitiesOnly yes
    UserKnownHostsFile {known}
""")
    return SSHD(directory, port, proc, user, client_key, known, ssh_config, host_key)


@contextlib.contextmanager
def running_sshd(directory: Path, **kw: str) -> Iterator[SSHD]:
    server = start_sshd(directory, **kw)
    try:
        yield server
    finally:
        server.stop()


def wait_gone(pids: list[int], timeout: float = 10) -> None:
    """Wait until none of ``pids`` is a live process (zombies count as gone)."""
    def gone() -> bool:
        for pid in pids:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state != "Z":
                return False
        return True

    wait_for(gone, timeout=timeout, what=f"processes {pids} to exit")


def wait_session_count(server: SSHD, n: int, timeout: float = 10) -> None:
    wait_for(lambda: sum("serve --stdio" in c for c in server.commands_below()) == n,
             timeout=timeout, what=f"{n} bridge serve process(es)")


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHD]:
    """One sshd shared by the tests that do not disturb it."""
    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture
def private_sshd(tmp_path: Path) -> Iterator[SSHD]:
    """An sshd of the test's own, for tests that freeze or kill its processes."""
    with running_sshd(tmp_path / "sshd") as server:
        yield server
