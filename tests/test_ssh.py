"""Connecting to a real OpenSSH sshd on 127.0.0.1: config, keys, agent, and every fault case."""

from __future__ import annotations

import os
import socket
import subprocess
import textwrap
import threading
from pathlib import Path

import pytest

import bridge
from bridge import (
    AuthenticationFailed,
    HostKeyChanged,
    HostUnreachable,
    ProtocolError,
    ProtocolMismatch,
    RemoteBridge,
    RemoteUnsupported,
    UnknownHostKey,
)
from bridge.remote._ssh import resolve_target
from tests.conftest import CLI, require_tool
from tests.helpers import wait_for
from tests.sshd import ALIAS, BRIDGE_COMMAND, SSHD, wait_gone


def connect(server: SSHD, path: Path, **kw: object) -> RemoteBridge:
    options: dict[str, object] = {"ssh_config": server.ssh_config,
                                  "remote_command": BRIDGE_COMMAND}
    options.update(kw)
    b = bridge.connect(server.url(path), agent="tester", **options)
    assert isinstance(b, RemoteBridge)
    return b


def write_config(server: SSHD, path: Path, **overrides: str) -> Path:
    """An ssh_config like the fixture's, with some keys replaced (None drops one)."""
    keys = {"HostName": "127.0.0.1", "Port": str(server.port), "User": server.user,
            "IdentityFile": str(server.client_key), "IdentitiesOnly": "yes",
            "UserKnownHostsFile": str(server.known_hosts), **overrides}
    body = "".join(f"    {k} {v}\n" for k, v in keys.items() if v != "")
    path.write_text(f"Host {ALIAS}\n{body}")
    return path


def test_a_host_alias_resolves_like_openssh(sshd: SSHD, tmp_path: Path) -> None:
    target = resolve_target(ALIAS, config_path=sshd.ssh_config)
    assert (target.hostname, target.port, target.user) == ("127.0.0.1", sshd.port, sshd.user)
    assert target.identity_files == (sshd.client_key,)
    assert target.identities_only
    # UserKnownHostsFile, then the global files OpenSSH also reads.
    assert target.known_hosts == (sshd.known_hosts, Path("/etc/ssh/ssh_known_hosts"),
                                  Path("/etc/ssh/ssh_known_hosts2"))
    assert target.host_key_name == f"[127.0.0.1]:{sshd.port}"
    # What the URL says beats the config, as `ssh -p` and user@ beat it.
    override = resolve_target(ALIAS, user="someone", port=2200, config_path=sshd.ssh_config)
    assert (override.user, override.port) == ("someone", 2200)
    jump = tmp_path / "jump_config"
    jump.write_text("Host j\n    ProxyJump other\n")
    with pytest.raises(bridge.ConfigError, match="ProxyCommand"):
        resolve_target("j", config_path=jump)


def test_connects_with_nodelay_and_the_config_alias(sshd: SSHD, bridge_dir: Path) -> None:
    with connect(sshd, bridge_dir) as b:
        assert b.directory == bridge_dir
        transport = b.session().client.get_transport()
        assert transport is not None
        sock = transport.sock
        assert isinstance(sock, socket.socket)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert sock.getpeername()[0] == "127.0.0.1"


def test_an_unknown_host_key_is_refused_and_never_recorded(sshd: SSHD, tmp_path: Path,
                                                           bridge_dir: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(UnknownHostKey) as info:
        connect(sshd, bridge_dir, known_hosts=empty)
    fingerprint = subprocess.run(
        [require_tool("ssh-keygen"), "-lf", str(sshd.host_key.with_suffix(".pub"))],
        capture_output=True, text=True, check=True).stdout.split()[1]
    message = str(info.value)
    assert fingerprint in message  # the user can compare it with the host's
    assert "ssh-keyscan" in message and "never trusted on first use" in message
    assert info.value.exit_code == 9
    assert empty.read_text() == ""  # no trust on first use
    assert not bridge_dir.exists()  # nothing ran on the host


def test_a_changed_host_key_is_refused(sshd: SSHD, tmp_path: Path, bridge_dir: Path) -> None:
    other = tmp_path / "other_host"
    subprocess.run([require_tool("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f",
                    str(other)], check=True)
    known = tmp_path / "known_hosts"
    kind, blob = other.with_suffix(".pub").read_text().split()[:2]
    known.write_text(f"[127.0.0.1]:{sshd.port} {kind} {blob}\n")
    with pytest.raises(HostKeyChanged) as info:
        connect(sshd, bridge_dir, known_hosts=known)
    assert "CHANGED" in str(info.value) and "ssh-keygen -R" in str(info.value)
    assert info.value.exit_code == 9


def test_a_refused_key_says_what_to_do(sshd: SSHD, tmp_path: Path, bridge_dir: Path) -> None:
    stranger = tmp_path / "stranger"
    subprocess.run([require_tool("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f",
                    str(stranger)], check=True)
    with pytest.raises(AuthenticationFailed) as info:
        connect(sshd, bridge_dir, identity_file=stranger)
    assert str(stranger) in str(info.value) and "authorized_keys" in str(info.value)
    assert info.value.exit_code == 10


def test_an_unreachable_host_is_one_line(sshd: SSHD, tmp_path: Path, bridge_dir: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on (127.0.0.1 only)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = write_config(sshd, tmp_path / "config", Port=str(port))
    with pytest.raises(HostUnreachable) as info:
        connect(sshd, bridge_dir, ssh_config=config)
    assert f"127.0.0.1:{port} refused" in str(info.value)
    assert info.value.exit_code == 8


def test_a_host_without_the_toolkit(sshd: SSHD, bridge_dir: Path) -> None:
    with pytest.raises(RemoteUnsupported) as info:
        connect(sshd, bridge_dir, remote_command="/opt/nowhere/bin/bridge")
    message = str(info.value)
    assert "no kami-bridge toolkit at '/opt/nowhere/bin/bridge'" in message
    assert "exit 127" in message and "?command=" in message and "transport=sftp" in message
    assert info.value.exit_code == 11


def fake_remote(tmp_path: Path, name: str, script: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(script))
    path.chmod(0o755)
    return str(path)


def test_a_protocol_version_mismatch(sshd: SSHD, tmp_path: Path, bridge_dir: Path) -> None:
    command = fake_remote(tmp_path, "future-bridge", """\
        #!/bin/sh
        printf '{"ev":"hello","protocol":"kami-bridge","versions":[7,8],"server":"9.0"}\\n'
        exec cat >/dev/null
        """)
    with pytest.raises(ProtocolMismatch) as info:
        connect(sshd, bridge_dir, remote_command=command)
    assert "kami-bridge 9.0" in str(info.value) and "[7, 8]" in str(info.value)
    assert info.value.exit_code == 11


def test_shell_noise_before_the_banner_is_named(sshd: SSHD, tmp_path: Path,
                                                bridge_dir: Path) -> None:
    command = fake_remote(tmp_path, "noisy", f"""\
        #!/bin/sh
        echo "Welcome to vps1!"
        exec {BRIDGE_COMMAND} "$@"
        """)
    with pytest.raises(ProtocolError) as info:
        connect(sshd, bridge_dir, remote_command=command)
    assert "Welcome to vps1!" in str(info.value) and "shell startup" in str(info.value)


def test_a_malformed_line_resets_the_connection_instead_of_hanging(
        sshd: SSHD, tmp_path: Path, bridge_dir: Path) -> None:
    # Speaks the handshake, then answers the next request with garbage and stays open.
    command = fake_remote(tmp_path, "broken", f"""\
        #!{BRIDGE_COMMAND.rsplit('/', 1)[0]}/python
        import sys
        out = sys.stdout
        out.write('{{"ev":"hello","protocol":"kami-bridge","versions":[1],"server":"x"}}\\n')
        out.flush()
        sys.stdin.readline()
        out.write('{{"id":1,"ok":{{"dir":"{bridge_dir}","version":1}}}}\\n')
        out.flush()
        sys.stdin.readline()
        out.write('this is not json\\n')
        out.flush()
        for _ in sys.stdin:
            pass
        """)
    b = connect(sshd, bridge_dir, remote_command=command)
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            b.status()
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    wait_for(lambda: outcome, timeout=10, what="the malformed line to be reported")
    assert isinstance(outcome[0], ProtocolError)
    assert "not JSON" in str(outcome[0]) and "connection reset" in str(outcome[0])
    # The connection was reset: the fake server got EOF and its process is gone.
    wait_for(lambda: not any("broken" in c for c in sshd.commands_below()), timeout=10,
             what="the remote process to exit")
    b.close()


def test_the_agent_is_used_when_no_key_file_is_named(sshd: SSHD, tmp_path: Path,
                                                     bridge_dir: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    agent_bin = require_tool("ssh-agent")
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen([agent_bin, "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        wait_for(sock.exists, what="ssh-agent socket")
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        subprocess.run([require_tool("ssh-add"), "-q", str(sshd.client_key)], env=env,
                       check=True, capture_output=True)
        home = tmp_path / "home"  # no ~/.ssh/id_*: the key can only come from the agent
        home.mkdir()
        monkeypatch.setenv("HOME", str(home))
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        config = write_config(sshd, tmp_path / "config", IdentityFile="", IdentitiesOnly="")
        with connect(sshd, bridge_dir, ssh_config=config) as b:
            assert b.send("via the agent").id.startswith("tester-")
        monkeypatch.delenv("SSH_AUTH_SOCK")
        with pytest.raises(AuthenticationFailed, match="no key at all"):
            connect(sshd, bridge_dir, ssh_config=config)
    finally:
        agent.terminate()
        agent.wait(10)


def test_cli_errors_are_one_line_with_their_exit_codes(sshd: SSHD, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = sshd.home(home)
    cli = CLI(tmp_path / "unused", home)
    url = sshd.url(tmp_path / "b")
    assert cli.run("--url", url, "send", "hi", env=env).returncode == 0
    missing = cli.run("--url", url, "status",
                      env={**env, "BRIDGE_REMOTE_COMMAND": "/nonexistent/bridge"})
    assert missing.returncode == 11
    (home / ".ssh" / "known_hosts").write_text("")
    unknown = cli.run("--url", url, "status", env=env)
    assert unknown.returncode == 9
    for result in (missing, unknown):
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    closed = cli.run("--url", f"ssh://127.0.0.1:1{tmp_path}", "status", env=env)
    assert closed.returncode == 8 and closed.stderr.count("\n") == 1


def test_no_remote_process_outlives_its_client(sshd: SSHD, tmp_path: Path) -> None:
    """A client killed outright (no goodbye): sshd sees the TCP connection close, the
    server's stdin ends, and it exits."""
    script = tmp_path / "client.py"
    script.write_text(textwrap.dedent(f"""\
        import sys, time
        import bridge
        b = bridge.connect({sshd.url(tmp_path / 'b')!r}, ssh_config={str(sshd.ssh_config)!r},
                           remote_command={BRIDGE_COMMAND!r})
        f = b.follow(start="end")
        print("ready", flush=True)
        time.sleep(600)
        """))
    proc = subprocess.Popen([str(Path(BRIDGE_COMMAND).parent / "python"), str(script)],
                            stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        servers = [p for p in sshd.session_pids()
                   if "serve --stdio" in Path(f"/proc/{p}/cmdline").read_bytes()
                   .replace(b"\0", b" ").decode()]
        assert servers
        proc.kill()
        proc.wait(10)
        wait_gone(servers, timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
