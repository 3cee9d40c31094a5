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
    from ._api import (
        Backend,
        Subscription,
    )
    from ._capabilities import (
        Capabilities,
    )
    from ._connect import (
        Environment,
        connect,
    )
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
    from ._url import (
        BridgeURL,
        parse_url,
    )
    from ._views import (
        history_dict,
        status_dict,
        view_dict,
    )
    from .archive import (
        Hit,
        RotationResult,
        repair_rotation,
        rotate,
        search,
    )
    from .delivery import (
        Follower,
    )
    from .format import (
        PROTOCOL_VERSION,
        BadLine,
        Entry,
        Message,
        new_id,
        parse_duration,
        parse_ts,
    )
    from .inspection import (
        DoctorReport,
        Finding,
        PingResult,
        compute_stats,
        run_doctor,
    )
    from .local import (
        DEFAULT_MAX_RECORD_BYTES,
        Bridge,
        parse_meta,
    )
    from .remote import (
        RemoteBridge,
        RemoteFollower,
        SftpBridge,
        ping,
    )
    from .store import (
        DEFAULT_LEASE,
        DEFAULT_OLDER_THAN,
        LOG_NAME,
        BridgeStatus,
        Durability,
        Fold,
        FoldIssue,
        History,
        MessageState,
        MessageView,
        PauseInfo,
        SendResult,
        default_directory,
    )

    AnyBridge: TypeAlias = Backend
    """Another name for :class:`Backend` (what :func:`connect` returns), kept from 0.1."""

from ._version import __version__

_EXPORTS: dict[str, str] = {
    "AuthenticationFailed": "._errors",
    "Backend": "._api",
    "BadLine": ".format",
    "Bridge": ".local",
    "BridgeError": "._errors",
    "BridgeIOError": "._errors",
    "BridgeStatus": ".store",
    "BridgeURL": "._url",
    "BridgeUnavailable": "._errors",
    "Capabilities": "._capabilities",
    "ConfigError": "._errors",
    "ConnectionLost": "._errors",
    "DEFAULT_LEASE": ".store",
    "DEFAULT_MAX_RECORD_BYTES": ".local",
    "DEFAULT_OLDER_THAN": ".store",
    "DoctorReport": ".inspection",
    "Durability": ".store",
    "DurabilityError": "._errors",
    "Entry": ".format",
    "Environment": "._connect",
    "Finding": ".inspection",
    "Fold": ".store",
    "FoldIssue": ".store",
    "Follower": ".delivery",
    "History": ".store",
    "Hit": ".archive",
    "HostKeyChanged": "._errors",
    "HostKeyError": "._errors",
    "HostUnreachable": "._errors",
    "InvalidInput": "._errors",
    "LOG_NAME": ".store",
    "LockTimeout": "._errors",
    "Message": ".format",
    "MessageState": ".store",
    "MessageView": ".store",
    "NotFound": "._errors",
    "PROTOCOL_VERSION": ".format",
    "PauseInfo": ".store",
    "PingResult": ".inspection",
    "ProtocolError": "._errors",
    "ProtocolMismatch": "._errors",
    "RecordTooLarge": "._errors",
    "RemoteBridge": ".remote",
    "RemoteError": "._errors",
    "RemoteFollower": ".remote",
    "RemoteUnsupported": "._errors",
    "RotationResult": ".archive",
    "SendResult": ".store",
    "SftpBridge": ".remote",
    "StateConflict": "._errors",
    "Subscription": "._api",
    "UnknownHostKey": "._errors",
    "UnsupportedFilesystem": "._errors",
    "compute_stats": ".inspection",
    "connect": "._connect",
    "default_directory": ".store",
    "history_dict": "._views",
    "new_id": ".format",
    "parse_duration": ".format",
    "parse_meta": ".local",
    "parse_ts": ".format",
    "parse_url": "._url",
    "ping": ".remote",
    "repair_rotation": ".archive",
    "rotate": ".archive",
    "run_doctor": ".inspection",
    "search": ".archive",
    "status_dict": "._views",
    "view_dict": "._views",
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
    "history_dict",
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
    "status_dict",
    "view_dict",
]
