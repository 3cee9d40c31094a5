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

import getpass
import logging
import os
import shlex
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from .._errors import (
    AuthenticationFailed,
    ConfigError,
    HostKeyChanged,
    HostUnreachable,
    RemoteError,
    UnknownHostKey,
)

if TYPE_CHECKING:
    import paramiko

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "SSHTarget",
    "exec_channel",
    "open_client",
    "resolve_target",
]

log = logging.getLogger("bridge.ssh")

DEFAULT_CONNECT_TIMEOUT = 10.0
"""Seconds for each step of connecting: TCP, the SSH banner and key exchange, authentication."""

USER_CONFIG = "~/.ssh/config"
SYSTEM_CONFIG = "/etc/ssh/ssh_config"
DEFAULT_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
GLOBAL_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")
DEFAULT_IDENTITIES = ("~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa")

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


def _fingerprint(key: Any) -> str:
    return f"{key.get_name()} {key.fingerprint}"


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
                f"use; check that {_fingerprint(key)} is the host's key (on the host: "
                f"ssh-keygen -lf /etc/ssh/ssh_host_{keytype}_key.pub), then add it: "
                f"ssh-keyscan {port}{target.hostname} >> ~/.ssh/known_hosts")

    return RejectUnknownHost()


def _describe_offered(target: SSHTarget, allow_agent: bool) -> str:
    offered = []
    if allow_agent and os.environ.get("SSH_AUTH_SOCK"):
        offered.append("keys in ssh-agent")
    files = [str(p) for p in target.identity_files if p.exists()] or (
        [] if target.identity_files else
        [p for p in DEFAULT_IDENTITIES if Path(os.path.expanduser(p)).exists()])
    offered.extend(files)
    return ", ".join(offered) if offered else "no key at all: no ssh-agent and no key file"


@contextmanager
def _translated(target: SSHTarget, allow_agent: bool) -> Iterator[None]:
    """paramiko's and the socket's exceptions, as one-line RemoteErrors saying what to do."""
    import paramiko

    try:
        yield
    except RemoteError:
        raise
    except paramiko.BadHostKeyException as exc:
        raise HostKeyChanged(
            f"the host key of {target.host_key_name} CHANGED: known_hosts has "
            f"{_fingerprint(exc.expected_key)}, the host presented {_fingerprint(exc.key)}; "
            "someone may be intercepting the connection. If the host was reinstalled, check "
            f"the new key out of band, then run ssh-keygen -R '{target.host_key_name}' and "
            "add it") from None
    except paramiko.PasswordRequiredException:
        raise AuthenticationFailed(
            f"{target}: a key file is protected by a passphrase; load it into ssh-agent "
            "(ssh-add KEYFILE) so that no passphrase has to pass through this program"
        ) from None
    except paramiko.BadAuthenticationType as exc:
        raise AuthenticationFailed(
            f"{target} accepts only {', '.join(exc.allowed_types)} authentication; kami-bridge "
            "uses keys only: allow publickey for this account") from None
    except paramiko.AuthenticationException:
        raise AuthenticationFailed(
            f"{target} refused every key offered ({_describe_offered(target, allow_agent)}); "
            f"add the public key to ~{target.user}/.ssh/authorized_keys on the host, or name "
            "the right key with IdentityFile in ~/.ssh/config") from None
    except paramiko.SSHException as exc:
        text = str(exc)
        if "No authentication methods available" in text:
            raise AuthenticationFailed(
                f"{target}: {_describe_offered(target, allow_agent)} to offer; start "
                "ssh-agent and ssh-add a key, or set IdentityFile in ~/.ssh/config") from None
        raise HostUnreachable(
            f"SSH with {target} failed: {text or type(exc).__name__}; check that "
            f"{target.hostname}:{target.port} is an OpenSSH server") from None
    except (EOFError, OSError) as exc:
        reason = (exc.strerror if isinstance(exc, OSError) else None) or str(exc) \
            or type(exc).__name__
        raise HostUnreachable(f"the connection to {target} broke while connecting: "
                              f"{reason}; check the host and retry") from None


def open_client(target: SSHTarget) -> paramiko.SSHClient:
    """A connected, authenticated SSHClient for ``target`` (close it when done).

    Raises:
        HostUnreachable, UnknownHostKey, HostKeyChanged, AuthenticationFailed.
    """
    import paramiko

    quiet = logging.getLogger("paramiko")
    if not quiet.handlers:
        # Its transport thread logs socket errors that the caller gets as one clear
        # error anyway; without any handler Python would print them on stderr too.
        quiet.addHandler(logging.NullHandler())
    client = paramiko.SSHClient()
    files = [f for f in target.known_hosts if f.is_file()]
    allow_agent = not target.identities_only or not target.identity_files
    try:
        with _translated(target, allow_agent):
            for path in files:
                client.load_system_host_keys(str(path))
            client.set_missing_host_key_policy(_reject_unknown(target, files))
            sock = _open_socket(target)
            keys = [str(p) for p in target.identity_files if p.exists()]
            client.connect(
                # With ``sock`` given, the name is used only to look the key up.
                target.host_key_alias or target.hostname,
                port=target.port,
                username=target.user,
                key_filename=keys or None,  # type: ignore[arg-type]  # a list works too
                allow_agent=allow_agent,
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


def exec_channel(client: paramiko.SSHClient, command: str, *, timeout: float
                 ) -> paramiko.Channel:
    """Run ``command`` on the host in a new exec channel (no PTY)."""
    import paramiko

    transport = client.get_transport()
    if transport is None or not transport.is_active():
        raise HostUnreachable("the SSH connection closed before the command could start")
    try:
        channel = transport.open_session(timeout=timeout)
        channel.exec_command(command)
    except (paramiko.SSHException, EOFError, OSError) as exc:
        raise HostUnreachable(f"the host refused to run a command: {exc}; check that the "
                              "account may run commands (no-exec, ForceCommand)") from None
    return channel
