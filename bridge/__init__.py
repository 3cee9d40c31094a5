"""kami-bridge: agents on different machines talking through one append-only JSONL file.

Importing this package does no I/O and pulls in no CLI or HTTP libraries; open a
bridge explicitly::

    from bridge import Bridge
    with Bridge("~/.claude/kami-bridge", agent="kami") as b:
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
    BridgeError,
    BridgeIOError,
    BridgeUnavailable,
    ConfigError,
    DurabilityError,
    InvalidInput,
    LockTimeout,
    NotFound,
    RecordTooLarge,
    StateConflict,
    UnsupportedFilesystem,
)
from ._fold import Fold, FoldIssue, MessageState
from ._follow import Follower
from ._ids import new_id
from ._pause import PauseInfo
from ._records import PROTOCOL_VERSION, BadLine, Entry, Message
from ._rotate import DEFAULT_OLDER_THAN, RotationResult, repair_rotation, rotate
from ._search import Hit, search
from ._stats import compute_stats
from ._time import parse_duration, parse_ts

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MAX_RECORD_BYTES",
    "DEFAULT_OLDER_THAN",
    "LOG_NAME",
    "PROTOCOL_VERSION",
    "BadLine",
    "Bridge",
    "BridgeError",
    "BridgeIOError",
    "BridgeStatus",
    "BridgeUnavailable",
    "ConfigError",
    "DoctorReport",
    "DurabilityError",
    "Entry",
    "Finding",
    "Fold",
    "FoldIssue",
    "Follower",
    "History",
    "Hit",
    "InvalidInput",
    "LockTimeout",
    "Message",
    "MessageState",
    "MessageView",
    "NotFound",
    "PauseInfo",
    "RecordTooLarge",
    "RotationResult",
    "SendResult",
    "StateConflict",
    "UnsupportedFilesystem",
    "__version__",
    "compute_stats",
    "default_directory",
    "new_id",
    "parse_duration",
    "parse_meta",
    "parse_ts",
    "repair_rotation",
    "rotate",
    "run_doctor",
    "search",
]
