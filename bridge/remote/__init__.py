"""The remote backends: URLs, SSH, the wire, `bridge serve` and its client, the SFTP fallback."""

# The names below are imported from their modules on first use (PEP 562), so
# importing this package costs nothing until one of them is asked for.

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._lazy import lazy_attribute

if TYPE_CHECKING:
    from ._errors import (
        link_alive,
        map_paramiko_errors,
    )
    from ._remote import (
        RemoteBridge,
        ping,
    )
    from ._remote_follow import (
        RemoteFollower,
    )
    from ._serve import (
        serve_command,
    )
    from ._sftp import (
        SftpBridge,
    )
    from ._ssh import (
        open_client,
        open_sftp,
        put_file,
        resolve_target,
        run_command,
    )

_EXPORTS: dict[str, str] = {
    "RemoteBridge": "._remote",
    "RemoteFollower": "._remote_follow",
    "SftpBridge": "._sftp",
    "link_alive": "._errors",
    "map_paramiko_errors": "._errors",
    "open_client": "._ssh",
    "open_sftp": "._ssh",
    "ping": "._remote",
    "put_file": "._ssh",
    "resolve_target": "._ssh",
    "run_command": "._ssh",
    "serve_command": "._serve",
}


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _EXPORTS, name)


__all__ = [
    "RemoteBridge",
    "RemoteFollower",
    "SftpBridge",
    "link_alive",
    "map_paramiko_errors",
    "open_client",
    "open_sftp",
    "ping",
    "put_file",
    "resolve_target",
    "run_command",
    "serve_command",
]
