"""kami-bridge: agents on different machines talking through one append-only JSONL file.

Importing this package does no I/O and pulls in no CLI, HTTP or SSH libraries; open a
bridge explicitly, here or on another host::

    from bridge import Bridge, connect
    with Bridge("~/.claude/kami-bridge", agent="kami") as b:
        mid = b.send("deploy the site", to="kaylee").id
    with connect("ssh://vps1/var/lib/kami-bridge", agent="kami") as b:
        mid = b.send("deploy the site", to="kaylee").id
"""

from ._bridge import (
    DEFAULT_MAX_RECORD_BYTES,
    LOG_NAME,
    Bridge,
    BridgeStatus,
    History,
    MessageView,
    SendResult,
    default_directory,
    parse_meta,
)
from ._doctor import DoctorReport, Finding, run_doctor
from ._errors import (
    AuthenticationFailed,
    BridgeError,
    BridgeIOError,
    BridgeUnavailable,
    ConfigError,
    ConnectionLost,
    DurabilityError,
    HostKeyChanged,
    HostKeyError,
    HostUnreachable,
    InvalidInput,
    LockTimeout,
    NotFound,
    ProtocolError,
    ProtocolMismatch,
    RecordTooLarge,
    RemoteError,
    RemoteUnsupported,
    StateConflict,
    UnknownHostKey,
    UnsupportedFilesystem,
)
from ._fold import Fold, FoldIssue, MessageState
from ._follow import Follower
from ._ids import new_id
from ._pause import PauseInfo
from ._records import PROTOCOL_VERSION, BadLine, Entry, Message
from ._remote import PingResult, RemoteBridge, ping
from ._remote_follow import RemoteFollower
from ._rotate import DEFAULT_OLDER_THAN, RotationResult, repair_rotation, rotate
from ._search import Hit, search
from ._sftp import SftpBridge
from ._stats import compute_stats
from ._time import parse_duration, parse_ts
from ._url import BridgeURL, connect, parse_url

AnyBridge = Bridge | RemoteBridge
"""What :func:`connect` returns: a local or a remote bridge, with the same API."""

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MAX_RECORD_BYTES",
    "DEFAULT_OLDER_THAN",
    "LOG_NAME",
    "PROTOCOL_VERSION",
    "AnyBridge",
    "AuthenticationFailed",
    "BadLine",
    "Bridge",
    "BridgeError",
    "BridgeIOError",
    "BridgeStatus",
    "BridgeURL",
    "BridgeUnavailable",
    "ConfigError",
    "ConnectionLost",
    "DoctorReport",
    "DurabilityError",
    "Entry",
    "Finding",
    "Fold",
    "FoldIssue",
    "Follower",
    "History",
    "Hit",
    "HostKeyChanged",
    "HostKeyError",
    "HostUnreachable",
    "InvalidInput",
    "LockTimeout",
    "Message",
    "MessageState",
    "MessageView",
    "NotFound",
    "PauseInfo",
    "PingResult",
    "ProtocolError",
    "ProtocolMismatch",
    "RecordTooLarge",
    "RemoteBridge",
    "RemoteError",
    "RemoteFollower",
    "RemoteUnsupported",
    "RotationResult",
    "SendResult",
    "SftpBridge",
    "StateConflict",
    "UnknownHostKey",
    "UnsupportedFilesystem",
    "__version__",
    "compute_stats",
    "connect",
    "default_directory",
    "new_id",
    "parse_duration",
    "parse_meta",
    "parse_ts",
    "parse_url",
    "ping",
    "repair_rotation",
    "rotate",
    "run_doctor",
    "search",
]
