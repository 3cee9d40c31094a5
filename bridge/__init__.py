"""kami-bridge: agents on different machines talking through one append-only JSONL file.

Importing this package does no I/O and pulls in no CLI, HTTP or SSH libraries; open a
bridge explicitly, here or on another host::

    from bridge import Bridge, connect
    with Bridge("~/.claude/kami-bridge", agent="kami") as b:
        mid = b.send("deploy the site", to="kaylee").id
    with connect("ssh://vps1/var/lib/kami-bridge", agent="kami") as b:
        mid = b.send("deploy the site", to="kaylee").id
"""

# Importing the package does nothing: each name is imported from its module on first
# use (PEP 562), so `import bridge` (and every `bridge.x` submodule, whose import runs
# this file first) costs no more than the module it asks for. A Claude Code hook runs on
# every prompt and pays for each module it loads.

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from ._api import Backend, Subscription
    from ._capabilities import Capabilities
    from ._connect import Environment, connect
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
    from ._url import BridgeURL, parse_url
    from .archive._rotate import (
        DEFAULT_OLDER_THAN,
        RotationResult,
        repair_rotation,
        rotate,
    )
    from .archive._search import (
        Hit,
        search,
    )
    from .delivery._follow import (
        Follower,
    )
    from .format._ids import (
        new_id,
    )
    from .format._records import (
        PROTOCOL_VERSION,
        BadLine,
        Entry,
        Message,
    )
    from .format._time import (
        parse_duration,
        parse_ts,
    )
    from .inspection._doctor import (
        DoctorReport,
        Finding,
        run_doctor,
    )
    from .inspection._ping import PingResult
    from .inspection._stats import (
        compute_stats,
    )
    from .local._bridge import (
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
    from .remote._remote import (
        RemoteBridge,
        ping,
    )
    from .remote._remote_follow import (
        RemoteFollower,
    )
    from .remote._sftp import (
        SftpBridge,
    )
    from .store._fold import (
        Fold,
        FoldIssue,
        MessageState,
    )
    from .store._pause import (
        PauseInfo,
    )
    from .store._results import DEFAULT_LEASE
    from .store._writer import Durability

    AnyBridge: TypeAlias = Backend
    """Another name for :class:`Backend` (what :func:`connect` returns), kept from 0.1."""

from ._version import __version__

_EXPORTS: dict[str, str] = {
    "Backend": "._api",
    "Subscription": "._api",
    "Capabilities": "._capabilities",
    "DEFAULT_LEASE": ".store._results",
    "Durability": ".store._writer",
    "DEFAULT_MAX_RECORD_BYTES": ".local._bridge",
    "LOG_NAME": ".local._bridge",
    "Bridge": ".local._bridge",
    "BridgeStatus": ".store._results",
    "History": ".store._results",
    "MessageView": ".store._results",
    "SendResult": ".store._results",
    "default_directory": ".local._bridge",
    "parse_meta": ".local._bridge",
    "DoctorReport": ".inspection._doctor",
    "Finding": ".inspection._doctor",
    "run_doctor": ".inspection._doctor",
    "AuthenticationFailed": "._errors",
    "BridgeError": "._errors",
    "BridgeIOError": "._errors",
    "BridgeUnavailable": "._errors",
    "ConfigError": "._errors",
    "ConnectionLost": "._errors",
    "DurabilityError": "._errors",
    "HostKeyChanged": "._errors",
    "HostKeyError": "._errors",
    "HostUnreachable": "._errors",
    "InvalidInput": "._errors",
    "LockTimeout": "._errors",
    "NotFound": "._errors",
    "ProtocolError": "._errors",
    "ProtocolMismatch": "._errors",
    "RecordTooLarge": "._errors",
    "RemoteError": "._errors",
    "RemoteUnsupported": "._errors",
    "StateConflict": "._errors",
    "UnknownHostKey": "._errors",
    "UnsupportedFilesystem": "._errors",
    "Fold": ".store._fold",
    "FoldIssue": ".store._fold",
    "MessageState": ".store._fold",
    "Follower": ".delivery._follow",
    "new_id": ".format._ids",
    "PauseInfo": ".store._pause",
    "PROTOCOL_VERSION": ".format._records",
    "BadLine": ".format._records",
    "Entry": ".format._records",
    "Message": ".format._records",
    "PingResult": ".inspection._ping",
    "RemoteBridge": ".remote._remote",
    "ping": ".remote._remote",
    "RemoteFollower": ".remote._remote_follow",
    "DEFAULT_OLDER_THAN": ".store._results",
    "RotationResult": ".archive._rotate",
    "repair_rotation": ".archive._rotate",
    "rotate": ".archive._rotate",
    "Hit": ".archive._search",
    "search": ".archive._search",
    "SftpBridge": ".remote._sftp",
    "compute_stats": ".inspection._stats",
    "parse_duration": ".format._time",
    "parse_ts": ".format._time",
    "BridgeURL": "._url",
    "Environment": "._connect",
    "connect": "._connect",
    "parse_url": "._url",
}


def __getattr__(name: str) -> Any:
    if name == "AnyBridge":
        value: Any = __getattr__("Backend")
    else:
        module = _EXPORTS.get(name)
        if module is None:
            raise AttributeError(f"module 'bridge' has no attribute {name!r}")
        value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    # The public names, not the helpers this file imports for itself (typing's).
    import types

    return sorted(
        {
            *__all__,
            *(
                k
                for k, v in globals().items()
                if k.startswith("_") or isinstance(v, types.ModuleType)
            ),
        }
    )


__all__ = [
    "DEFAULT_LEASE",
    "DEFAULT_MAX_RECORD_BYTES",
    "DEFAULT_OLDER_THAN",
    "LOG_NAME",
    "PROTOCOL_VERSION",
    "AnyBridge",
    "AuthenticationFailed",
    "Backend",
    "BadLine",
    "Bridge",
    "BridgeError",
    "BridgeIOError",
    "BridgeStatus",
    "BridgeURL",
    "BridgeUnavailable",
    "Capabilities",
    "ConfigError",
    "ConnectionLost",
    "DoctorReport",
    "Durability",
    "DurabilityError",
    "Entry",
    "Environment",
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
    "Subscription",
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
