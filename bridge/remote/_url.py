"""One way to name a bridge anywhere: a local path, or ``ssh://[user@]host[:port]/path``.

``bridge --url URL``, ``$BRIDGE_URL`` and :func:`connect` all take the same
string. A local path (or ``file:///path``) opens the directory itself; an
``ssh://`` URL reaches the toolkit on that host (``bridge serve --stdio``) over
one SSH connection resolved like ``ssh host`` would resolve it.

The path of an ``ssh://`` URL is absolute on the host (``ssh://vps1/var/lib/kami-bridge``);
``ssh://vps1/~/bridge`` is relative to the remote account's home, and
``ssh://vps1`` alone means the host's default (its ``$BRIDGE_DIR``, else
``~/.claude/kami-bridge``). Query options: ``command=`` the toolkit's command on
the host (default ``bridge``, or ``$BRIDGE_REMOTE_COMMAND``) and
``transport=sftp`` for a host without the toolkit (see docs/remote.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from .._errors import InvalidInput

if TYPE_CHECKING:
    from ..local._bridge import Bridge
    from ._remote import RemoteBridge

__all__ = ["BridgeURL", "connect", "parse_url"]

Transport = Literal["serve", "sftp"]

_QUERY_KEYS = frozenset({"command", "transport"})


@dataclass(frozen=True, slots=True)
class BridgeURL:
    """A parsed bridge name. ``host`` is None for a local bridge."""

    path: str | None
    """The directory: local, or as the host sees it (None: the default there)."""
    host: str | None = None
    user: str | None = None
    port: int | None = None
    command: str | None = None
    """The toolkit's command on the host, if the URL names one."""
    transport: Transport = "serve"

    @property
    def remote(self) -> bool:
        return self.host is not None

    def __str__(self) -> str:
        if self.host is None:
            return self.path or ""
        user = f"{quote(self.user, safe='')}@" if self.user else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port else ""
        path = self.path or ""
        if path.startswith("~"):
            path = "/" + path
        query = [f"{k}={quote(v, safe='/')}" for k, v in
                 (("command", self.command), ("transport", self.transport))
                 if v and not (k == "transport" and v == "serve")]
        return f"ssh://{user}{host}{port}{quote(path, safe='/~')}" + (
            "?" + "&".join(query) if query else "")


def parse_url(text: str | os.PathLike[str] | None) -> BridgeURL:
    """Parse a bridge name; raises InvalidInput saying what is wrong with it."""
    if text is None or str(text) == "":
        return BridgeURL(None)
    raw = os.fspath(text)
    if "://" not in raw:
        return BridgeURL(raw)
    scheme = raw.split("://", 1)[0].lower()
    if scheme == "file":
        parts = urlsplit(raw)
        if parts.netloc not in ("", "localhost"):
            raise InvalidInput(f"{raw}: a file:// URL names a local path (file:///dir)")
        return BridgeURL(unquote(parts.path) or None)
    if scheme != "ssh":
        raise InvalidInput(f"{raw}: unsupported scheme {scheme!r}; use a local path or "
                           "ssh://[user@]host[:port]/path")
    parts = urlsplit(raw)
    if parts.password is not None:
        raise InvalidInput(f"ssh://{parts.hostname}...: passwords in URLs are refused (they "
                           "would show in process lists and logs); use a key or ssh-agent")
    if not parts.hostname:
        raise InvalidInput(f"{raw}: no host; expected ssh://[user@]host[:port]/path")
    if parts.fragment:
        raise InvalidInput(f"{raw}: a bridge URL has no #fragment")
    try:
        port = parts.port
    except ValueError:
        raise InvalidInput(f"{raw}: the port must be a number from 1 to 65535") from None
    if port == 0:
        raise InvalidInput(f"{raw}: the port must be a number from 1 to 65535")
    options: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in _QUERY_KEYS:
            raise InvalidInput(f"{raw}: unknown option {key!r} (known: command, transport)")
        options[key] = value
    transport = options.get("transport", "serve")
    if transport not in ("serve", "sftp"):
        raise InvalidInput(f"{raw}: transport must be serve or sftp, not {transport!r}")
    path = unquote(parts.path)
    if path.startswith("/~"):
        path = path[1:]
    return BridgeURL(
        path=path if path not in ("", "/") else None,
        host=parts.hostname,
        user=unquote(parts.username) if parts.username else None,
        port=port,
        command=options.get("command") or None,
        transport=transport,  # type: ignore[arg-type]
    )


def connect(url: str | os.PathLike[str] | BridgeURL | None = None, *, agent: str = "cli",
            **options: Any) -> Bridge | RemoteBridge:
    """Open the bridge a URL names: a local :class:`Bridge` or a :class:`RemoteBridge`.

    Both have the same API. ``url`` defaults to ``$BRIDGE_URL``, else the local
    default directory. Keyword options go to the class opened: ``durability``,
    ``group``, ``lock_timeout``, ``create``, ``max_record_bytes`` for both;
    ``remote_command``, ``heartbeat_timeout``, ``ssh_config``, ``known_hosts``,
    ``identity_file``, ``connect_timeout``, ``reconnect_timeout`` for a remote one
    (see :class:`RemoteBridge`). A remote bridge connects at once, so that a bad
    host, key or toolkit is reported here.
    """
    if url is None:
        url = os.environ.get("BRIDGE_URL") or None
    parsed = url if isinstance(url, BridgeURL) else parse_url(url)
    if not parsed.remote:
        from ..local._bridge import Bridge

        local = {k: v for k, v in options.items() if k in _LOCAL_OPTIONS}
        unknown = set(options) - _LOCAL_OPTIONS - _REMOTE_OPTIONS
        if unknown:
            raise TypeError(f"connect() got unknown option(s): {', '.join(sorted(unknown))}")
        return Bridge(Path(parsed.path).expanduser() if parsed.path else None, agent=agent,
                      **local)
    if parsed.transport == "sftp":
        from ._sftp import SftpBridge

        return SftpBridge(parsed, agent=agent, **options)
    from ._remote import RemoteBridge

    return RemoteBridge(parsed, agent=agent, **options)


_LOCAL_OPTIONS = frozenset({"durability", "max_record_bytes", "group", "lock_timeout", "create",
                            "check_fs"})
_REMOTE_OPTIONS = frozenset({"remote_command", "heartbeat_timeout", "ssh_config", "known_hosts",
                             "identity_file", "connect_timeout", "reconnect_timeout"})
