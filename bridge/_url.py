"""One way to name a bridge anywhere: a local path, ``ssh://[user@]host[:port]/path``,
or ``memory://NAME``.

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

``memory://NAME`` is a bridge held in this process (tests and fakes: every
:func:`bridge.connect` to the same NAME in one process shares it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from ._errors import InvalidInput

__all__ = ["SCHEMES", "BridgeURL", "parse_url"]

SCHEMES = ("file", "ssh", "memory")
"""The URL schemes :func:`bridge.connect` opens (a plain path is ``file``)."""

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
    scheme: str = ""
    """Which backend opens it: ``file`` (a local directory), ``ssh`` or ``memory``
    (left empty: ``ssh`` when there is a host, else ``file``)."""

    def __post_init__(self) -> None:
        if not self.scheme:
            object.__setattr__(self, "scheme", "ssh" if self.host is not None else "file")

    @property
    def remote(self) -> bool:
        """Whether the bridge is on another host (reached over SSH)."""
        return self.scheme == "ssh"

    def __str__(self) -> str:
        if self.scheme == "memory":
            return f"memory://{self.host or ''}"
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
    if scheme == "memory":
        parts = urlsplit(raw)
        if not parts.netloc or parts.path not in ("", "/") or parts.query:
            raise InvalidInput(f"{raw}: expected memory://NAME")
        return BridgeURL(None, host=unquote(parts.netloc), scheme="memory")
    if scheme != "ssh":
        raise InvalidInput(f"{raw}: unsupported scheme {scheme!r}; use a local path, "
                           "ssh://[user@]host[:port]/path or memory://NAME")
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
        scheme="ssh",
    )
