"""The bridge's exceptions: one tree, rooted at :class:`BridgeError`.

::

    BridgeError                               exit 1
    ├── InvalidInput (ValueError)             exit 5   bad argument, record, duration, id
    │   ├── RecordTooLarge                             a message over the size limit
    │   └── ConfigError                                a bad setting (names the key)
    ├── NotFound (LookupError)                exit 3   no message with that id
    ├── StateConflict                         exit 4   e.g. "done" on a cancelled message
    ├── BridgeUnavailable (OSError)           exit 6   directory missing/unusable
    │   ├── UnsupportedFilesystem                      NFS, CIFS, FUSE/sshfs
    │   └── LockTimeout (TimeoutError)                 another process held the lock too long
    ├── BridgeIOError (OSError)               exit 7   a write or fsync failed
    │   └── DurabilityError                            fsync failed: the record may not persist
    └── RemoteError (ConnectionError)         exit 8   a bridge reached over SSH
        ├── HostUnreachable                   exit 8   DNS, refused, timed out
        ├── ConnectionLost                    exit 8   dropped, or silent past the deadline
        ├── ProtocolError                     exit 8   the remote side sent garbage
        ├── HostKeyError                      exit 9   host key not verified by known_hosts
        │   ├── UnknownHostKey                         no entry: never trusted on first use
        │   └── HostKeyChanged                         a different key: reinstalled, or intercepted
        ├── AuthenticationFailed              exit 10  the host refused every key offered
        └── RemoteUnsupported                 exit 11  no toolkit on the host, or another version
            └── ProtocolMismatch                       both sides speak different protocol versions

Every class carries an ``exit_code``: the CLI maps any ``BridgeError`` to one
line on stderr and that code (documented in docs/cli.md). Errors that subclass a
builtin can be caught by meaning (``except LookupError``) by code that does not
know the bridge.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationFailed",
    "BridgeError",
    "BridgeIOError",
    "BridgeUnavailable",
    "ConfigError",
    "ConnectionLost",
    "DurabilityError",
    "HostKeyChanged",
    "HostKeyError",
    "HostUnreachable",
    "InvalidInput",
    "LockTimeout",
    "NotFound",
    "ProtocolError",
    "ProtocolMismatch",
    "RecordTooLarge",
    "RemoteError",
    "RemoteUnsupported",
    "StateConflict",
    "UnknownHostKey",
    "UnsupportedFilesystem",
]


class BridgeError(Exception):
    """Root of every error the bridge raises on purpose."""

    exit_code: int = 1


class InvalidInput(BridgeError, ValueError):
    """Input that can never succeed as given: fix it and retry."""

    exit_code = 5


class RecordTooLarge(InvalidInput):
    """A record whose encoded line exceeds the bridge's size limit."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"message is {size} bytes encoded, over the {limit}-byte limit "
            "(put large payloads in a file and send its path)"
        )
        self.size = size
        self.limit = limit


class ConfigError(InvalidInput):
    """A setting that is missing or malformed; ``key`` names it."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"config {key}: {problem}")
        self.key = key
        self.problem = problem


class NotFound(BridgeError, LookupError):
    """No message with the given id (in the live file, or the archives when searched)."""

    exit_code = 3

    def __str__(self) -> str:
        # LookupError's str() would quote the argument like a dict key.
        return str(self.args[0]) if self.args else "not found"


class StateConflict(BridgeError):
    """A status change the message's current state does not allow."""

    exit_code = 4


class BridgeUnavailable(BridgeError, OSError):
    """The bridge directory cannot be used (missing, unreadable, unsuitable, locked)."""

    exit_code = 6


class UnsupportedFilesystem(BridgeUnavailable):
    """The directory is on a filesystem where appends are not atomic."""


class LockTimeout(BridgeUnavailable, TimeoutError):
    """The bridge lock was held by another process for longer than the timeout."""


class BridgeIOError(BridgeError, OSError):
    """Writing to the bridge failed; nothing was appended (a short write is cut back)."""

    exit_code = 7


class DurabilityError(BridgeIOError):
    """fsync failed: the record is in the file but may not survive a power loss.

    After this the writer refuses further appends until it is reopened, because
    Linux may report a later fsync as successful although the data is gone.
    """


class RemoteError(BridgeError, ConnectionError):
    """A bridge reached over SSH could not be used; the message says what to do."""

    exit_code = 8


class HostUnreachable(RemoteError):
    """The host could not be reached: name not resolved, connection refused or timed out."""


class ConnectionLost(RemoteError):
    """An established connection dropped, or the host stopped answering within the deadline.

    A request that was in flight has an unknown outcome unless it was idempotent
    (reads, pause/resume, sends with an idempotency key), which are retried.
    """


class ProtocolError(RemoteError):
    """The remote side sent a line that is not the bridge line protocol; the link is reset."""


class HostKeyError(RemoteError):
    """The host's key could not be verified against known_hosts (never trusted on first use)."""

    exit_code = 9


class UnknownHostKey(HostKeyError):
    """known_hosts has no key for the host."""


class HostKeyChanged(HostKeyError):
    """known_hosts has a different key for the host: reinstalled, or someone in between."""


class AuthenticationFailed(RemoteError):
    """The host refused every key offered (agent and key files)."""

    exit_code = 10


class RemoteUnsupported(RemoteError):
    """The host has no kami-bridge toolkit where the remote command points, or an unusable one."""

    exit_code = 11


class ProtocolMismatch(RemoteUnsupported):
    """The two sides share no version of the line protocol."""
