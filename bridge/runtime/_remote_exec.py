"""Running a command on another host over SSH: the piece ``ctl`` and ``deploy`` share.

The connection follows the bridge's SSH rules (bridge.remote._ssh): ~/.ssh/config,
the agent, known_hosts with unknown or changed host keys refused. Commands are
argv lists joined with shell quoting, so no value ever becomes shell syntax.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import BridgeError, HostUnreachable

__all__ = ["CommandResult", "RemoteCommandFailed", "RemoteHost"]

OUTPUT_CAP = 256 * 1024
"""Bytes of a command's stdout (and of its stderr) kept; the rest is dropped."""


class RemoteCommandFailed(BridgeError):
    """A command on the host exited with a failure status."""

    exit_code = 1


@dataclass(frozen=True)
class CommandResult:
    """What a remote command did."""

    argv: tuple[str, ...]
    status: int
    stdout: str
    stderr: str

    def check(self, what: str) -> CommandResult:
        """Raise RemoteCommandFailed with the command's own last line if it failed."""
        if self.status != 0:
            last = (self.stderr.strip() or self.stdout.strip()).splitlines()[-1:] or [""]
            raise RemoteCommandFailed(f"{what} failed on the host (exit {self.status}): "
                                      f"{last[0][:300]}")
        return self


@dataclass
class RemoteHost:
    """An SSH connection to ``host`` (a name ``ssh`` would accept), opened on first use.

    Args:
        host: ``[user@]host[:port]`` or a ``Host`` alias from ssh_config.
        ssh_config, known_hosts, identity_file: as for ``ssh``; None means the defaults.
    """

    host: str
    ssh_config: Path | None = None
    known_hosts: Path | None = None
    identity_file: Path | None = None
    connect_timeout: float = 10.0
    _client: Any = field(default=None, repr=False)

    def _target(self) -> Any:
        from ..remote._ssh import resolve_target

        name, user, port = self.host, None, None
        if "@" in name:
            user, name = name.rsplit("@", 1)
        if name.count(":") == 1:
            name, port_text = name.split(":")
            try:
                port = int(port_text)
            except ValueError:
                raise BridgeError(f"{self.host!r}: the port must be a number") from None
        return resolve_target(name, user=user, port=port, config_path=self.ssh_config,
                              identity_file=self.identity_file, known_hosts=self.known_hosts,
                              connect_timeout=self.connect_timeout)

    def _connected(self) -> Any:
        if self._client is None:
            from ..remote._ssh import open_client

            self._client = open_client(self._target())
        return self._client

    def run(self, argv: Sequence[str], *, timeout: float = 120.0, stdin: bytes | None = None
            ) -> CommandResult:
        """Run ``argv`` on the host and wait for it (at most ``timeout`` seconds)."""
        from ..remote._ssh import exec_channel

        command = shlex.join(argv)
        channel = exec_channel(self._connected(), command, timeout=self.connect_timeout)
        deadline = time.monotonic() + timeout
        out, err = bytearray(), bytearray()
        try:
            channel.settimeout(0.2)
            if stdin is not None:
                channel.sendall(stdin)
            channel.shutdown_write()
            while True:
                if channel.recv_ready():
                    chunk = channel.recv(65536)
                    if len(out) < OUTPUT_CAP:
                        out += chunk
                if channel.recv_stderr_ready():
                    chunk = channel.recv_stderr(65536)
                    if len(err) < OUTPUT_CAP:
                        err += chunk
                if channel.exit_status_ready() and not channel.recv_ready() \
                        and not channel.recv_stderr_ready():
                    break
                if time.monotonic() > deadline:
                    raise HostUnreachable(f"{argv[0]} on {self.host} did not finish within "
                                          f"{timeout:g}s")
                time.sleep(0.01)
            status = channel.recv_exit_status()
        finally:
            channel.close()
        return CommandResult(tuple(argv), status, out.decode("utf-8", "replace"),
                             err.decode("utf-8", "replace"))

    def put(self, data: bytes, path: str, mode: int = 0o600) -> None:
        """Write ``data`` to ``path`` on the host (SFTP: a temporary name, then rename)."""
        sftp = self._connected().open_sftp()
        try:
            tmp = f"{path}.tmp-{os.getpid()}"
            with sftp.open(tmp, "wb") as f:
                f.write(data)
            sftp.chmod(tmp, mode)
            sftp.posix_rename(tmp, path)
        finally:
            sftp.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> RemoteHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
