"""paramiko's exceptions translated at the boundary: one context manager, every call.

Every call into paramiko in :mod:`bridge.remote` and :mod:`bridge.runtime` —
connecting, opening a channel or an SFTP session, an SFTP request, reading or
writing a channel — runs inside :func:`map_paramiko_errors`, so what leaves
those packages is always a :class:`bridge.BridgeError` with a one-line message
(httpx's ``map_httpcore_exceptions`` habit: one translator per foreign library,
instead of an ``except`` clause, or none, at each call).

paramiko reports very different things with the same classes: an OSError is a
socket that broke *and* an SFTP server's "permission denied"; an SSHException is
a refused channel *and* a dropped connection. What tells them apart is whether
the connection still stands, so the caller passes the object to ask (``link``)::

    raised below the edge                              becomes
    --------------------------------------------------  ---------------------------------
    a BridgeError (a host key policy, a check)          itself
    BadHostKeyException                                 HostKeyChanged          exit 9
    PasswordRequired / BadAuthenticationType /          AuthenticationFailed    exit 10
      AuthenticationException, "No authentication
      methods available" while connecting
    anything else while connecting (``connecting=``)   HostUnreachable         exit 8
    EOFError, a timeout, "Server connection dropped",   ConnectionLost          exit 8
      or anything once ``link`` is down (or with no
      ``link``: a stream on the connection itself)
    SFTPError (a packet that is not SFTP)               ProtocolError           exit 8
    SSHException on a live link (a channel or           ``refused(reason)``: HostUnreachable
      subsystem the host refused)                         for exec, RemoteUnsupported for
                                                          SFTP; else ProtocolError
    FileNotFoundError on a live link                    BridgeUnavailable       exit 6
    PermissionError, or another SFTP failure, on a      BridgeUnavailable (reading) or
      live link                                           BridgeIOError (``writing=True``),
                                                          exit 6 / 7, naming ``path``

A ConnectionLost or ProtocolError also calls ``on_lost`` (the owner drops the
connection, and its next call reconnects). The caller catches what it expects
(``FileNotFoundError`` for "no cursor yet") inside the block, before it gets here.

paramiko is imported only when an exception has to be classified.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from .._errors import (
    AuthenticationFailed,
    BridgeError,
    BridgeIOError,
    BridgeUnavailable,
    ConnectionLost,
    HostKeyChanged,
    HostUnreachable,
    ProtocolError,
)


class SSHTarget(Protocol):
    """What the messages need of :class:`bridge.remote._ssh.SSHTarget` (named by its shape:
    that module imports this one)."""

    @property
    def hostname(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def user(self) -> str: ...
    @property
    def identity_files(self) -> tuple[Path, ...]: ...
    @property
    def identities_only(self) -> bool: ...
    @property
    def host_key_name(self) -> str: ...


DEFAULT_IDENTITIES = ("~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa")
"""The key files ssh (and paramiko's look_for_keys) tries when none is named."""

__all__ = ["DEFAULT_IDENTITIES", "SSHTarget", "allow_agent", "describe_offered", "fingerprint",
           "link_alive", "map_paramiko_errors", "reason_of"]


def reason_of(exc: BaseException) -> str:
    """The words of an exception, without Python's ``[Errno 13]`` decoration."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def link_alive(link: Any) -> bool:
    """Whether the connection behind ``link`` (an SSHClient, Transport, Channel or
    SFTPClient) still stands. An SFTP session whose channel closed counts as down."""
    import paramiko

    if isinstance(link, paramiko.SFTPClient):
        channel = link.get_channel()
        if channel is None or channel.closed or channel.eof_received:
            return False
        link = channel.get_transport()
    elif isinstance(link, paramiko.Channel):
        link = link.get_transport()
    if isinstance(link, paramiko.SSHClient):
        link = link.get_transport()
    return link is not None and bool(link.is_active())


def describe_offered(target: SSHTarget) -> str:
    """The keys a connection to ``target`` offers (for "refused every key")."""
    offered = []
    if allow_agent(target) and os.environ.get("SSH_AUTH_SOCK"):
        offered.append("keys in ssh-agent")
    files = [str(p) for p in target.identity_files if p.exists()] or (
        [] if target.identity_files else
        [p for p in DEFAULT_IDENTITIES if Path(os.path.expanduser(p)).exists()])
    offered.extend(files)
    return ", ".join(offered) if offered else "no key at all: no ssh-agent and no key file"


def allow_agent(target: SSHTarget) -> bool:
    """ssh-agent is asked unless ``IdentitiesOnly`` names the keys to use."""
    return not target.identities_only or not target.identity_files


def fingerprint(key: Any) -> str:
    """A key as ssh-keygen -l names it: its type and SHA256 fingerprint."""
    return f"{key.get_name()} {key.fingerprint}"


@contextmanager
def map_paramiko_errors(
    where: str,
    doing: str,
    *,
    path: str | None = None,
    writing: bool = False,
    link: Any = None,
    refused: Callable[[str], BridgeError] | None = None,
    on_lost: Callable[[], None] | None = None,
    connecting: SSHTarget | None = None,
) -> Iterator[None]:
    """Translate what paramiko (and the socket under it) raises in the block.

    Args:
        where: the host, as messages name it.
        doing: what the block does, as a gerund ("reading", "opening an SFTP session").
        path: the file on the host the block works on (named in the message).
        writing: a failure of the host's file system is a BridgeIOError (exit 7)
            rather than a BridgeUnavailable (exit 6).
        link: the paramiko object whose connection decides between "the host said
            no" and "the connection is gone" (see the module docstring).
        refused: builds the error for an SSHException on a live link.
        on_lost: called before a ConnectionLost or ProtocolError is raised.
        connecting: the target being connected to: every failure is about reaching
            it (HostUnreachable, or the host key and authentication errors).
    """
    import paramiko

    try:
        yield
    except BridgeError:
        raise
    except paramiko.BadHostKeyException as exc:
        name = connecting.host_key_name if connecting is not None else where
        raise HostKeyChanged(
            f"the host key of {name} CHANGED: known_hosts has "
            f"{fingerprint(exc.expected_key)}, the host presented {fingerprint(exc.key)}; "
            "someone may be intercepting the connection. If the host was reinstalled, check "
            f"the new key out of band, then run ssh-keygen -R '{name}' and add it") from None
    except paramiko.PasswordRequiredException:
        raise AuthenticationFailed(
            f"{connecting or where}: a key file is protected by a passphrase; load it into "
            "ssh-agent (ssh-add KEYFILE) so that no passphrase has to pass through this "
            "program") from None
    except paramiko.BadAuthenticationType as exc:
        raise AuthenticationFailed(
            f"{connecting or where} accepts only {', '.join(exc.allowed_types)} "
            "authentication; kami-bridge uses keys only: allow publickey for this account"
        ) from None
    except paramiko.AuthenticationException:
        offered = describe_offered(connecting) if connecting is not None else "its keys"
        user = connecting.user if connecting is not None else "the account"
        raise AuthenticationFailed(
            f"{connecting or where} refused every key offered ({offered}); add the public "
            f"key to ~{user}/.ssh/authorized_keys on the host, or name the right key with "
            "IdentityFile in ~/.ssh/config") from None
    except (paramiko.SSHException, paramiko.SFTPError, EOFError, OSError) as exc:
        if connecting is not None:
            raise _connect_failure(connecting, exc) from None
        failure = _classify(exc, where, doing, path, writing, link, refused)
        if isinstance(failure, ConnectionLost | ProtocolError) and on_lost is not None:
            on_lost()
        raise failure from None


def _connect_failure(target: SSHTarget, exc: BaseException) -> BridgeError:
    import paramiko

    if isinstance(exc, paramiko.SSHException):
        text = str(exc)
        if "No authentication methods available" in text:
            return AuthenticationFailed(
                f"{target}: {describe_offered(target)} to offer; start ssh-agent and ssh-add "
                "a key, or set IdentityFile in ~/.ssh/config")
        return HostUnreachable(
            f"SSH with {target} failed: {text or type(exc).__name__}; check that "
            f"{target.hostname}:{target.port} is an OpenSSH server")
    return HostUnreachable(f"the connection to {target} broke while connecting: "
                           f"{reason_of(exc)}; check the host and retry")


def _classify(exc: BaseException, where: str, doing: str, path: str | None, writing: bool,
              link: Any, refused: Callable[[str], BridgeError] | None) -> BridgeError:
    import paramiko

    reason = reason_of(exc)
    subject = f"{doing} {path}" if path else doing
    lost = ConnectionLost(f"{subject} on {where} failed: the connection dropped ({reason}); "
                          "the next call reconnects")
    if isinstance(exc, TimeoutError):
        return ConnectionLost(f"{subject} on {where} failed: no answer in time ({reason}); "
                              "the host is frozen or unreachable; the next call reconnects")
    if isinstance(exc, EOFError) or link is None or not link_alive(link):
        return lost
    if isinstance(exc, paramiko.SFTPError):
        return ProtocolError(f"{subject} on {where} failed: the SFTP server sent {reason!r}; "
                             "connection reset")
    if isinstance(exc, paramiko.SSHException):
        if str(exc).startswith("Server connection dropped"):
            return lost
        if refused is not None:
            return refused(reason)
        return ProtocolError(f"{subject} on {where} failed: {reason}; connection reset")
    # An OSError from a live link: the host's file system answered (SFTP status codes).
    if isinstance(exc, FileNotFoundError):
        return BridgeUnavailable(f"{subject} on {where} failed: no such file or directory")
    kind = BridgeIOError if writing else BridgeUnavailable
    if isinstance(exc, PermissionError):
        return kind(f"{subject} on {where} failed: permission denied (check the owner, mode "
                    "and attributes of the file and its directory on the host)")
    return kind(f"{subject} on {where} failed: {reason}")
