"""The one way in: a bridge URL (or path) to an open backend, and the environment contract.

:func:`connect` looks the URL's scheme up in :data:`BACKENDS` and imports that
backend only then, so opening a local bridge never loads paramiko. Every program
of the toolkit — the CLI, the agents, ``bridge serve``, the Claude Code hooks —
opens its bridge here, so the variables below mean the same everywhere:

===================== =====================================================
``BRIDGE_URL``        the bridge, when no URL is given (wins over BRIDGE_DIR)
``BRIDGE_DIR``        a local bridge directory (default ``~/.claude/kami-bridge``)
``BRIDGE_DURABILITY`` ``always``, ``batch`` or ``none`` (default ``always``)
``BRIDGE_GROUP``      share new files with this Unix group
``BRIDGE_AGENT``      the name written as ``from`` (default ``cli``)
===================== =====================================================
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ._errors import ConfigError, InvalidInput
from ._url import BridgeURL, parse_url

if TYPE_CHECKING:
    from ._api import Backend
    from .store import Durability

__all__ = ["BACKENDS", "Environment", "connect"]

BACKENDS: dict[str, str] = {
    "file": "bridge.local._bridge:Bridge",
    "ssh": "bridge.remote._remote:RemoteBridge",
    "ssh+sftp": "bridge.remote._sftp:SftpBridge",
    "memory": "bridge.memory._backend:MemoryBridge",
}
"""Scheme (``ssh+sftp``: ``ssh://…?transport=sftp``) → ``module:class`` of its backend.

Each class takes the URL (a path for ``file``) as its first argument, then
``agent=`` and its own keyword options.
"""

_DURABILITIES = ("always", "batch", "none")


@dataclass(frozen=True, slots=True)
class Environment:
    """The toolkit's environment variables, read and checked once (see the module doc)."""

    url: str | None = None
    directory: Path | None = None
    durability: Durability | None = None
    group: str | None = None
    agent: str | None = None

    @classmethod
    def read(cls, environ: Mapping[str, str] | None = None) -> Environment:
        """Read the variables (empty ones count as unset); a bad value is a ConfigError."""
        env = os.environ if environ is None else environ
        durability = env.get("BRIDGE_DURABILITY") or None
        if durability is not None and durability not in _DURABILITIES:
            raise ConfigError("BRIDGE_DURABILITY", "must be always, batch or none")
        directory = env.get("BRIDGE_DIR") or None
        return cls(url=env.get("BRIDGE_URL") or None,
                   directory=Path(directory).expanduser() if directory else None,
                   durability=cast("Durability | None", durability),
                   group=env.get("BRIDGE_GROUP") or None,
                   agent=env.get("BRIDGE_AGENT") or None)

    def bridge_url(self) -> BridgeURL:
        """The bridge these variables name: BRIDGE_URL, else BRIDGE_DIR, else the default."""
        if self.url is not None:
            return parse_url(self.url)
        from .store import default_directory

        return BridgeURL(str(self.directory or default_directory()))


def _backend_class(parsed: BridgeURL) -> type[Any]:
    key = "ssh+sftp" if parsed.scheme == "ssh" and parsed.transport == "sftp" else parsed.scheme
    target = BACKENDS.get(key)
    if target is None:  # pragma: no cover - parse_url only returns registered schemes
        raise InvalidInput(f"{parsed}: no backend for scheme {parsed.scheme!r}")
    module, _, name = target.partition(":")
    cls: type[Any] = getattr(importlib.import_module(module), name)
    return cls


def connect(url: str | os.PathLike[str] | BridgeURL | None = None, *,
            agent: str | None = None, **options: Any) -> Backend:
    """Open the bridge ``url`` names, on whichever backend its scheme says.

    ``url``: a local path or ``file:///path``, ``ssh://[user@]host[:port]/path``
    (``?transport=sftp`` for a host without the toolkit), or ``memory://NAME``;
    None: ``$BRIDGE_URL``, else ``$BRIDGE_DIR``, else the default directory.
    ``agent``: None means ``$BRIDGE_AGENT``, else ``cli``. ``durability`` and
    ``group`` default to ``$BRIDGE_DURABILITY`` and ``$BRIDGE_GROUP``.

    Other keyword options go to the backend (``create``, ``lock_timeout``,
    ``max_record_bytes``, ``check_fs`` for any; ``ssh_config``, ``known_hosts``,
    ``identity_file``, ``connect_timeout``, ``reconnect_timeout``,
    ``heartbeat_timeout``, ``remote_command`` for ``ssh://``). An option another
    backend takes but this one does not is ignored, so a program can pass its SSH
    settings whatever its bridge turns out to be; an option no backend takes is a
    TypeError. A remote bridge connects at once, so that a bad host, key or toolkit
    is reported here.
    """
    env = Environment.read()
    if url is None:
        parsed = env.bridge_url()
    else:
        parsed = url if isinstance(url, BridgeURL) else parse_url(url)
    cls = _backend_class(parsed)
    if "durability" not in options or options["durability"] is None:
        options["durability"] = env.durability or "always"
    if "group" not in options or options["group"] is None:
        options["group"] = env.group
    accepted = _options_of(cls)
    extra = set(options) - accepted
    if extra and extra - _all_options():
        unknown = ", ".join(sorted(extra - _all_options()))
        raise TypeError(f"connect() got unknown option(s): {unknown}")
    chosen = {k: v for k, v in options.items() if k in accepted}
    who = agent if agent is not None else env.agent or "cli"
    if parsed.scheme == "file":
        if parsed.path:
            return cast("Backend", cls(Path(parsed.path).expanduser(), agent=who, **chosen))
        return cast("Backend", cls(env.directory, agent=who, **chosen))
    return cast("Backend", cls(parsed, agent=who, **chosen))


def _options_of(cls: type[Any]) -> frozenset[str]:
    params = inspect.signature(cls).parameters.values()
    return frozenset(p.name for p in params if p.kind is p.KEYWORD_ONLY and p.name != "agent")


_ALL: frozenset[str] | None = None


def _all_options() -> frozenset[str]:
    # The union over every backend, for telling a typo from another backend's option.
    # It imports every backend's module (paramiko's too), so it is asked only when an
    # option is not the chosen backend's own: a plain local connect never pays it.
    global _ALL
    if _ALL is None:
        names: set[str] = set()
        for target in BACKENDS.values():
            module, _, name = target.partition(":")
            try:
                names |= _options_of(getattr(importlib.import_module(module), name))
            except ImportError:  # pragma: no cover - a backend whose library is missing
                continue
        _ALL = frozenset(names)
    return _ALL

