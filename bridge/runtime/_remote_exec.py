"""Running a command on another host over SSH: the piece ``ctl`` and ``deploy`` share.

The connection follows the bridge's SSH rules (bridge.remote._ssh): ~/.ssh/config,
the agent, known_hosts with unknown or changed host keys refused. Commands are
argv lists joined with shell quoting, so no value ever becomes shell syntax.
"""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import BridgeError

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
        from ..remote import resolve_target

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
        from ..remote import link_alive

        if self._client is not None and not link_alive(self._client):
            self._drop()  # it dropped since the last call: connect again
        if self._client is None:
            from ..remote import open_client

            self._client = open_client(self._target())
        return self._client

    def _drop(self) -> None:
        """Forget a connection that failed: the next call opens a new one."""
        from ..remote import map_paramiko_errors

        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(BridgeError), map_paramiko_errors(self.host, "closing"):
                client.close()

    def run(self, argv: Sequence[str], *, timeout: float = 120.0, stdin: bytes | None = None
            ) -> CommandResult:
        """Run ``argv`` on the host and wait for it (at most ``timeout`` seconds).

        Raises ConnectionLost (the connection dropped, or the command did not end in
        time), HostUnreachable, or what connecting raises.
        """
        from ..remote import run_command

        client = self._connected()
        result = run_command(client, shlex.join(argv), stdin=stdin, timeout=timeout,
                             start_timeout=self.connect_timeout, cap=OUTPUT_CAP,
                             what=argv[0] if argv else "a command", where=self.host,
                             on_lost=self._drop)
        return CommandResult(tuple(argv), result.status,
                             result.stdout.decode("utf-8", "replace"),
                             result.stderr.decode("utf-8", "replace"))

    def put(self, data: bytes, path: str, mode: int = 0o600) -> None:
        """Write ``data`` to ``path`` on the host (SFTP: a temporary name, then rename).

        Raises BridgeIOError (the host refused the write), ConnectionLost, RemoteUnsupported
        (no SFTP on the host).
        """
        from ..remote import map_paramiko_errors, open_sftp, put_file

        client = self._connected()
        sftp = open_sftp(client, timeout=max(self.connect_timeout, 60.0), where=self.host)
        try:
            put_file(sftp, path, data, mode=mode, where=self.host, on_lost=self._drop)
        finally:
            # Over a broken connection even the close can raise: it must not hide the cause.
            with contextlib.suppress(BridgeError), \
                    map_paramiko_errors(self.host, "closing an SFTP session"):
                sftp.close()

    def close(self) -> None:
        self._drop()

    def __enter__(self) -> RemoteHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
