"""SSH connections made the way OpenSSH makes them: ~/.ssh/config, ssh-agent, known_hosts.

A standalone piece: it knows nothing about bridges. It resolves a host name the
way ``ssh NAME`` would (``Host`` aliases, ``HostName``, ``User``, ``Port``,
``IdentityFile``, ``IdentitiesOnly``, ``UserKnownHostsFile``, ``HostKeyAlias``,
``ConnectTimeout``, ``ProxyCommand``), connects with ``TCP_NODELAY`` (paramiko
leaves Nagle on, and small request/reply exchanges then stall on delayed ACKs),
verifies the host key against known_hosts and refuses anything else (a
``RejectPolicy``: never trust on first use, whatever ``StrictHostKeyChecking``
says), and authenticates with the agent or key files only. Every failure
becomes one :class:`~bridge.RemoteError` subclass whose message says what to do.

paramiko is imported inside the functions: ``import bridge`` must stay light.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import shlex
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, NoReturn

from .._errors import (
    BridgeError,
    ConfigError,
    ConnectionLost,
    HostUnreachable,
    RemoteUnsupported,
    UnknownHostKey,
)
from ._errors import allow_agent, fingerprint, link_alive, map_paramiko_errors

if TYPE_CHECKING:
    import paramiko

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "CommandOutput",
    "SSHTarget",
    "exec_channel",
    "open_client",
    "open_sftp",
    "put_file",
    "resolve_target",
    "run_command",
]

log = logging.getLogger("bridge.ssh")

DEFAULT_CONNECT_TIMEOUT = 10.0
"""Seconds for each step of connecting: TCP, the SSH banner and key exchange, authentication."""

USER_CONFIG = "~/.ssh/config"
SYSTEM_CONFIG = "/etc/ssh/ssh_config"
DEFAULT_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
GLOBAL_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")

_KEEPALIVE_IDLE = 15
"""TCP keepalive after this many idle seconds: a second line of defence under the
application heartbeat, so that the kernel eventually drops a connection to a
vanished peer even when nothing is being sent."""


@dataclass(frozen=True)
class SSHTarget:
    """Where and how to connect, resolved from a name, ~/.ssh/config and explicit overrides."""

    name: str
    """The name as given (perhaps a ``Host`` alias)."""
    hostname: str
    port: int
    user: str
    identity_files: tuple[Path, ...] = ()
    """Key files named by ``IdentityFile`` (or given); empty means the default ~/.ssh/id_*."""
    identities_only: bool = False
    known_hosts: tuple[Path, ...] = ()
    host_key_alias: str | None = None
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    proxy_command: str | None = None

    @property
    def host_key_name(self) -> str:
        """The name known_hosts lists the key under (``[host]:port`` off port 22)."""
        host = self.host_key_alias or self.hostname
        return host if self.port == 22 else f"[{host}]:{self.port}"

    def __str__(self) -> str:
        port = "" if self.port == 22 else f":{self.port}"
        return f"{self.user}@{self.hostname}{port}"


def _split_paths(value: str | list[str] | None, default: tuple[str, ...]) -> tuple[Path, ...]:
    if value is None:
        items: list[str] = list(default)
    elif isinstance(value, list):
        items = [p for v in value for p in shlex.split(v)]
    else:
        items = shlex.split(value)
    return tuple(Path(os.path.expanduser(p)) for p in items if p.lower() != "none")


def _load_config(config_path: Path | None) -> Any:
    import paramiko

    config = paramiko.SSHConfig()
    paths = [config_path] if config_path is not None else [
        Path(os.path.expanduser(USER_CONFIG)), Path(SYSTEM_CONFIG)]
    for path in paths:
        # The user's file first: the first value obtained for a key wins, as in OpenSSH.
        try:
            with open(path, encoding="utf-8") as f:
                config.parse(f)
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError, paramiko.ConfigParseError) as exc:
            raise ConfigError(str(path), f"cannot be read as an ssh_config file: {exc}") from exc
    return config


def resolve_target(
    host: str,
    *,
    user: str | None = None,
    port: int | None = None,
    config_path: str | os.PathLike[str] | None = None,
    identity_file: str | os.PathLike[str] | None = None,
    known_hosts: str | os.PathLike[str] | None = None,
    connect_timeout: float | None = None,
) -> SSHTarget:
    """Resolve ``host`` as ``ssh host`` would; explicit arguments override the config.

    ``config_path`` replaces both ~/.ssh/config and /etc/ssh/ssh_config (tests
    and services use their own); ``known_hosts`` replaces every known_hosts file.
    """
    if not host:
        raise ConfigError("host", "is empty")
    config = _load_config(Path(config_path) if config_path is not None else None)
    entry = config.lookup(host)
    if entry.get("proxyjump"):
        raise ConfigError(
            f"ProxyJump for {host}",
            "is not supported; use the equivalent ProxyCommand ssh -W %h:%p JUMPHOST",
        )
    try:
        cfg_port = int(entry.get("port", 22))
        timeout = float(entry["connecttimeout"]) if "connecttimeout" in entry else None
    except ValueError as exc:
        raise ConfigError(f"ssh config for {host}", str(exc)) from exc
    idents = (identity_file,) if identity_file is not None else entry.get("identityfile") or ()
    proxy = entry.get("proxycommand")
    return SSHTarget(
        name=host,
        hostname=entry.get("hostname", host),
        port=port or cfg_port,
        user=user or entry.get("user") or getpass.getuser(),
        identity_files=tuple(Path(os.path.expanduser(str(p))) for p in idents),
        identities_only=str(entry.get("identitiesonly", "no")).lower() == "yes",
        known_hosts=(Path(known_hosts),) if known_hosts is not None else (
            _split_paths(entry.get("userknownhostsfile"), DEFAULT_KNOWN_HOSTS)
            + _split_paths(entry.get("globalknownhostsfile"), GLOBAL_KNOWN_HOSTS)),
        host_key_alias=entry.get("hostkeyalias"),
        connect_timeout=connect_timeout or timeout or DEFAULT_CONNECT_TIMEOUT,
        proxy_command=proxy if proxy and proxy.lower() != "none" else None,
    )


def _open_socket(target: SSHTarget) -> Any:
    if target.proxy_command is not None:
        import paramiko

        return paramiko.ProxyCommand(target.proxy_command)
    where = f"{target.hostname}:{target.port}"
    try:
        sock = socket.create_connection((target.hostname, target.port),
                                        timeout=target.connect_timeout)
    except socket.gaierror as exc:
        raise HostUnreachable(
            f"cannot resolve host name {target.hostname!r} ({exc.strerror}); check the URL "
            "and HostName in ~/.ssh/config") from None
    except ConnectionRefusedError:
        raise HostUnreachable(
            f"connection to {where} refused: no sshd listening there; check the port "
            "(URL or Port in ~/.ssh/config) and that sshd runs on the host") from None
    except TimeoutError:
        raise HostUnreachable(
            f"no answer from {where} within {target.connect_timeout:g} s; check the host "
            "is up and that no firewall drops the port") from None
    except OSError as exc:
        raise HostUnreachable(f"cannot connect to {where}: {exc.strerror or exc}; check "
                              "the network and the host") from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if hasattr(socket, "TCP_KEEPIDLE"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, _KEEPALIVE_IDLE)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
    return sock


def _reject_unknown(target: SSHTarget, files: list[Path]) -> Any:
    import paramiko

    class RejectUnknownHost(paramiko.RejectPolicy):
        """RejectPolicy, raising an error that says how to add the key after checking it."""

        def missing_host_key(self, client: Any, hostname: str, key: Any) -> NoReturn:
            where = ", ".join(str(f) for f in files) or "no known_hosts file exists"
            keytype = key.get_name().removeprefix("ssh-")
            port = "" if target.port == 22 else f"-p {target.port} "
            raise UnknownHostKey(
                f"{hostname} is not in known_hosts ({where}) and is never trusted on first "
                f"use; check that {fingerprint(key)} is the host's key (on the host: "
                f"ssh-keygen -lf /etc/ssh/ssh_host_{keytype}_key.pub), then add it: "
                f"ssh-keyscan {port}{target.hostname} >> ~/.ssh/known_hosts")

    return RejectUnknownHost()


def _load_known_hosts(client: paramiko.SSHClient, files: list[Path]) -> None:
    for path in files:
        try:
            client.load_system_host_keys(str(path))
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ConfigError(str(path), f"cannot be read as a known_hosts file: {reason}"
                              ) from None


def open_client(target: SSHTarget) -> paramiko.SSHClient:
    """A connected, authenticated SSHClient for ``target`` (close it when done).

    Raises:
        HostUnreachable, UnknownHostKey, HostKeyChanged, AuthenticationFailed,
        ConfigError (a known_hosts file that cannot be read).
    """
    import paramiko

    quiet = logging.getLogger("paramiko")
    if not quiet.handlers:
        # Its transport thread logs socket errors that the caller gets as one clear
        # error anyway; without any handler Python would print them on stderr too.
        quiet.addHandler(logging.NullHandler())
    client = paramiko.SSHClient()
    files = [f for f in target.known_hosts if f.is_file()]
    try:
        _load_known_hosts(client, files)
        with map_paramiko_errors(str(target), "connecting", connecting=target):
            client.set_missing_host_key_policy(_reject_unknown(target, files))
            sock = _open_socket(target)
            keys = [str(p) for p in target.identity_files if p.exists()]
            client.connect(
                # With ``sock`` given, the name is used only to look the key up.
                target.host_key_alias or target.hostname,
                port=target.port,
                username=target.user,
                key_filename=keys or None,  # type: ignore[arg-type]  # a list works too
                allow_agent=allow_agent(target),
                look_for_keys=not target.identity_files,
                sock=sock,
                timeout=target.connect_timeout,
                banner_timeout=target.connect_timeout,
                auth_timeout=target.connect_timeout,
                channel_timeout=target.connect_timeout,
            )
    except BaseException:
        client.close()
        raise
    return client


def _refused_command(reason: str) -> HostUnreachable:
    return HostUnreachable(f"the host refused to run a command: {reason}; check that the "
                           "account may run commands (no-exec, ForceCommand)")


def exec_channel(client: paramiko.SSHClient, command: str, *, timeout: float,
                 where: str | None = None) -> paramiko.Channel:
    """Run ``command`` on the host in a new exec channel (no PTY).

    ``where`` names the host in messages (default: the peer's address).
    Raises ConnectionLost (the connection is down), HostUnreachable (the host
    refused the channel or the command).
    """
    transport = client.get_transport()
    where = where or _where(client)
    if transport is None or not transport.is_active():
        raise ConnectionLost(f"the SSH connection to {where} closed before the command "
                             "could start; the next call reconnects")
    with map_paramiko_errors(where, "starting a command", link=client,
                             refused=_refused_command):
        channel = transport.open_session(timeout=timeout)
        try:
            channel.exec_command(command)
        except BaseException:
            channel.close()
            raise
    return channel


def _where(client: paramiko.SSHClient) -> str:
    """The host a client is connected to, as messages name it."""
    transport = client.get_transport()
    peer = getattr(transport, "getpeername", None)
    try:
        return str(peer()[0]) if peer is not None else "the host"
    except (OSError, IndexError, TypeError):
        return "the host"


def open_sftp(client: paramiko.SSHClient, *, timeout: float | None = None,
              where: str | None = None) -> paramiko.SFTPClient:
    """An SFTP session on ``client``'s connection; each request waits at most ``timeout``.

    Raises ConnectionLost, or RemoteUnsupported when the host offers no SFTP.
    """
    where = where or _where(client)

    def refused(reason: str) -> RemoteUnsupported:
        return RemoteUnsupported(f"{where} refused an SFTP session ({reason}); the host's "
                                 "sshd must offer the sftp subsystem (Subsystem sftp in "
                                 "sshd_config)")

    with map_paramiko_errors(where, "opening an SFTP session", link=client, refused=refused):
        sftp = client.open_sftp()
        channel = sftp.get_channel()
        if timeout is not None and channel is not None:
            # paramiko's keepalive never notices a dead peer: every request has a deadline.
            channel.settimeout(timeout)
    return sftp


@dataclass(frozen=True)
class CommandOutput:
    """What a command run by :func:`run_command` did (``status`` -1: no exit status)."""

    status: int
    stdout: bytes
    stderr: bytes


def run_command(client: paramiko.SSHClient, command: str, *, stdin: bytes | None = None,
                timeout: float, start_timeout: float = DEFAULT_CONNECT_TIMEOUT,
                cap: int | None = None, what: str = "a command", where: str | None = None,
                on_lost: Callable[[], None] | None = None) -> CommandOutput:
    """Run ``command`` in an exec channel, feed it ``stdin``, collect stdout and stderr.

    Waits until the command's output ends and its exit status arrives, at most
    ``timeout`` seconds once ``stdin`` is sent (sending it may wait ``timeout`` for
    each window); ``cap`` bytes of each stream are kept (None: all).

    Raises ConnectionLost (the connection dropped, or no end within ``timeout``; then
    ``on_lost`` is called first), HostUnreachable (the host refused the command).
    """
    import select

    where = where or _where(client)
    channel = exec_channel(client, command, timeout=start_timeout, where=where)
    out, err = bytearray(), bytearray()

    def keep(buf: bytearray, chunk: bytes) -> None:
        if cap is None or len(buf) < cap:
            buf += chunk if cap is None else chunk[:cap - len(buf)]

    doing = f"running {what}"
    try:
        with map_paramiko_errors(where, doing, link=client, on_lost=on_lost):
            channel.settimeout(timeout)
            try:
                if stdin:
                    channel.sendall(stdin)
                channel.shutdown_write()
            except OSError:
                if not link_alive(client):
                    raise
                # The command ended (or closed its stdin) before reading it all: its
                # status and stderr say why.
            deadline = time.monotonic() + timeout
            while True:
                ended = channel.eof_received or channel.closed
                while channel.recv_ready():
                    keep(out, channel.recv(1 << 16))
                while channel.recv_stderr_ready():
                    keep(err, channel.recv_stderr(1 << 16))
                if ended:  # nothing arrives after EOF: what was drained is everything
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    if on_lost is not None:
                        on_lost()
                    raise ConnectionLost(f"{what} on {where} did not finish within "
                                         f"{timeout:g} s")
                select.select([channel], [], [], min(left, 1.0))
            if not channel.status_event.wait(max(0.0, deadline - time.monotonic())):
                if on_lost is not None:
                    on_lost()
                raise ConnectionLost(f"{what} on {where} sent no exit status within "
                                     f"{timeout:g} s")
            status = channel.exit_status
            if status == -1 and not link_alive(client):
                raise EOFError("closed before the exit status")
    finally:
        # Over a broken connection even the close can raise: it must not hide the cause.
        with contextlib.suppress(BridgeError), map_paramiko_errors(where, "closing a channel"):
            channel.close()
    return CommandOutput(status, bytes(out), bytes(err))


def put_file(sftp: paramiko.SFTPClient, path: str, data: bytes, *, mode: int = 0o600,
             make_parent: bool = False, where: str | None = None,
             on_lost: Callable[[], None] | None = None) -> None:
    """Replace ``path`` on the host atomically: a temporary file created with ``mode``
    (before any data is in it), then posix-rename. ``make_parent``: create a missing
    parent directory (0700).

    Raises BridgeIOError (the host refused the write, with the path), BridgeUnavailable
    (the directory is missing), ConnectionLost.
    """
    where = where or _sftp_where(sftp)
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    with map_paramiko_errors(where, "writing", path=path, writing=True, link=sftp,
                             on_lost=on_lost):
        if make_parent:
            parent = str(PurePosixPath(path).parent)
            try:
                sftp.stat(parent)
            except FileNotFoundError:
                sftp.mkdir(parent, 0o700)
        try:
            with sftp.open(tmp, "wb") as f:
                f.chmod(mode)
                f.write(data)
            sftp.posix_rename(tmp, path)
        except BaseException:
            with contextlib.suppress(Exception):  # best effort: the failure is what counts
                if link_alive(sftp):
                    sftp.remove(tmp)
            raise


def _sftp_where(sftp: paramiko.SFTPClient) -> str:
    channel = sftp.get_channel()
    transport = channel.get_transport() if channel is not None else None
    try:
        return str(transport.getpeername()[0]) if transport is not None else "the host"
    except (OSError, IndexError, TypeError):
        return "the host"
