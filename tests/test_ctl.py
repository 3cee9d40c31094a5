"""bridge ctl over a real sshd; the boundary is the systemctl command (a stand-in here:
no systemd runs in the tests)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from bridge import InvalidInput, UnknownHostKey
from bridge.runtime._ctl import ctl
from bridge.runtime._remote_exec import RemoteCommandFailed, RemoteHost
from tests.conftest import CLI
from tests.sshd import SSHD

# A systemctl stand-in on the "host": remembers each unit's state in a directory and
# logs every call, so the test sees exactly what was run there.
SYSTEMCTL = """#!/bin/sh
state="{state}"
echo "$*" >> "$state/calls"
unit=$(eval echo \\${{$#}})
case "$1" in
  start|restart) echo active > "$state/$unit"; n=$(cat "$state/$unit.n" 2>/dev/null || echo 0)
                 [ "$1" = restart ] && echo $((n+1)) > "$state/$unit.n"; exit 0 ;;
  stop) echo inactive > "$state/$unit"; exit 0 ;;
  show) s=$(cat "$state/$unit" 2>/dev/null || echo inactive)
        echo "ActiveState=$s"; echo "SubState=$([ "$s" = active ] && echo running || echo dead)"
        echo "NRestarts=$(cat "$state/$unit.n" 2>/dev/null || echo 0)"
        echo "ExecMainStatus=0"; echo "Result=success"; exit 0 ;;
  *) echo "Unknown command verb $1." >&2; exit 1 ;;
esac
"""


@pytest.fixture
def stub(tmp_path: Path) -> Path:
    state = tmp_path / "units"
    state.mkdir()
    script = tmp_path / "systemctl"
    script.write_text(SYSTEMCTL.format(state=state))
    script.chmod(0o755)
    return script


def host(sshd: SSHD) -> RemoteHost:
    return RemoteHost("bridgehost", ssh_config=sshd.ssh_config)


def test_start_status_restart_stop(sshd: SSHD, stub: Path) -> None:
    with host(sshd) as remote:
        assert not ctl(remote, "status", "kami", systemctl=str(stub)).running
        assert ctl(remote, "start", "kami", systemctl=str(stub)).running
        restarted = ctl(remote, "restart", "kami", systemctl=str(stub))
        assert restarted.running
        assert restarted.restarts == 1
        assert not ctl(remote, "stop", "kami", systemctl=str(stub)).running
    calls = (stub.parent / "units" / "calls").read_text().splitlines()
    assert calls[1] == "start kami-bridge@kami.service"
    assert "stop kami-bridge@kami.service" in calls


def test_bad_input_never_reaches_the_host(sshd: SSHD, stub: Path) -> None:
    with host(sshd) as remote:
        with pytest.raises(InvalidInput, match="action must be one of"):
            ctl(remote, "reboot", "kami", systemctl=str(stub))
        with pytest.raises(InvalidInput, match="not valid"):
            ctl(remote, "stop", "kami; rm -rf /", systemctl=str(stub))
    assert not (stub.parent / "units" / "calls").exists()


def test_a_refusing_systemctl_is_reported(sshd: SSHD, tmp_path: Path) -> None:
    refusing = tmp_path / "no-systemctl"
    refusing.write_text("#!/bin/sh\necho 'Failed to start: Access denied' >&2\nexit 4\n")
    refusing.chmod(0o755)
    with host(sshd) as remote, pytest.raises(RemoteCommandFailed, match="Access denied"):
        ctl(remote, "start", "kami", systemctl=str(refusing))


def test_unknown_host_key_is_refused(sshd: SSHD, stub: Path, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with RemoteHost("bridgehost", ssh_config=sshd.ssh_config, known_hosts=empty) as remote, \
            pytest.raises(UnknownHostKey):
        ctl(remote, "status", "kami", systemctl=str(stub))


def test_ctl_command(cli: CLI, sshd: SSHD, stub: Path) -> None:
    args = ["--ssh-config", str(sshd.ssh_config), "--systemctl", str(stub)]
    # Not running: 1 (a check found problems), never 3 (no such message).
    assert cli.run("ctl", "bridgehost", "status", "kaylee", *args).returncode == 1
    started = cli.run("ctl", "bridgehost", "start", "kaylee", "--json", *args)
    assert started.returncode == 0, started.stderr
    assert orjson.loads(started.stdout)["active"] == "active"
    assert "kaylee on bridgehost: active (running)" in cli.ok("ctl", "bridgehost", "status",
                                                               "kaylee", *args)
    assert cli.run("ctl", "bridgehost", "stop", "kaylee", *args).returncode == 0
    bad = cli.run("ctl", "bridgehost", "explode", "kaylee", *args)
    assert bad.returncode == 5
    assert "action must be one of" in bad.stderr
