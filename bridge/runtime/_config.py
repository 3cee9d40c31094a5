"""Typed agent configuration: a TOML file, environment overrides, secrets from credentials.

Precedence, lowest first: the dataclass defaults, the TOML file, then
environment variables ``<AGENT>_<SECTION>_<KEY>`` (``KAMI_HEALTH_PORT=8081``;
``KAMI_BRIDGE`` for a top-level key). Every problem raises ConfigError naming
the key (``health.port: expected an integer, got 'eighty'``).

Secrets (fields declared with :func:`secret`) are never read from the TOML file
or from argv: only from ``$CREDENTIALS_DIRECTORY/<name>`` (systemd
``LoadCredential=``) or the environment (``KAMI_HEALTH_TOKEN``). They are
:class:`Secret` strings whose repr hides the value, and every loaded secret is
registered with the log redactor.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .._errors import ConfigError
from ..format import AGENT_NAME_RE, parse_duration
from ._redact import register_secret

__all__ = [
    "AgentConfig",
    "HealthConfig",
    "LogConfig",
    "PeerConfig",
    "PeersConfig",
    "SSHConfig",
    "Secret",
    "duration",
    "load_config",
    "secret",
]

C = TypeVar("C")


class Secret(str):
    """A string that does not show itself in reprs, tracebacks or f-string debugging."""

    def __repr__(self) -> str:
        return "Secret('***')"

    def reveal(self) -> str:
        """The value, for the one place that needs it (an HTTP header, a URL)."""
        return str.__str__(self)


def secret(credential: str) -> Any:
    """Declare a secret field, loaded from ``$CREDENTIALS_DIRECTORY/<credential>`` or the env.

    ``credential`` may name other fields of the same table (``"peer-{name}-token"``);
    the environment variable is ``<AGENT>_`` plus the credential name in upper case
    with ``_`` for ``-`` (``KAMI_HEALTH_TOKEN``, ``KAMI_PEER_KAYLEE_TOKEN``).
    """
    return field(default=None, metadata={"secret": credential})


def duration(default: float) -> Any:
    """Declare a duration field: ``"5m"``, ``"30s"``, ``90`` (seconds) in TOML and env."""
    return field(default=default, metadata={"duration": True})


@dataclass(frozen=True)
class HealthConfig:
    """The ``/health`` endpoint."""

    bind: str = "127.0.0.1"
    port: int = 8080
    token: Secret | None = secret("health-token")

    def validate(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError("health.port", f"{self.port} is not a TCP port")
        loopback = self.bind in ("127.0.0.1", "::1", "localhost")
        if not loopback and not self.token:
            raise ConfigError(
                "health.token",
                f"/health binds {self.bind}, off loopback, so it needs a bearer token: "
                "LoadCredential=health-token:... or the <AGENT>_HEALTH_TOKEN environment variable",
            )


@dataclass(frozen=True)
class LogConfig:
    """Structured logs: JSON lines to stderr (journald) and optionally a file."""

    level: str = "info"
    file: Path | None = None

    def validate(self) -> None:
        if self.level not in ("debug", "info", "warning", "error"):
            raise ConfigError("log.level", f"must be debug, info, warning or error, not "
                                           f"{self.level!r}")


@dataclass(frozen=True)
class PeerConfig:
    """One peer whose ``/health`` the monitor polls."""

    name: str
    url: str
    token: Secret | None = secret("peer-{name}-token")


@dataclass(frozen=True)
class PeersConfig:
    """The peer monitor."""

    interval: float = duration(300.0)
    failures: int = 2
    timeout: float = duration(5.0)
    slow: float = duration(2.0)
    alert_to: str | None = None
    state_file: Path | None = None
    peer: tuple[PeerConfig, ...] = ()

    def validate(self) -> None:
        if self.failures < 1:
            raise ConfigError("peers.failures", "must be at least 1")
        if self.interval <= 0 or self.timeout <= 0:
            raise ConfigError("peers.interval", "interval and timeout must be positive")
        for i, p in enumerate(self.peer):
            if not p.url.startswith(("http://", "https://")):
                raise ConfigError(f"peers.peer[{i}].url", f"{p.url!r} is not an http(s) URL")


@dataclass(frozen=True)
class SSHConfig:
    """How an agent reaches an ``ssh://`` bridge (OpenSSH rules: ~/.ssh/config, agent,
    known_hosts; host keys are always verified)."""

    config: Path | None = None
    known_hosts: Path | None = None
    identity_file: Path | None = None
    remote_command: str | None = None
    connect_timeout: float = duration(10.0)
    reconnect_timeout: float = duration(10.0)
    """How long one bridge call keeps reconnecting before it fails (the agent then runs
    degraded and retries): well inside systemd's WatchdogSec=30, since the loop that
    sends WATCHDOG=1 is the one waiting."""

    def identity(self, env: Mapping[str, str] | None = None) -> Path | None:
        """The key: ``identity_file``, else the ``ssh-key`` credential if systemd gave one."""
        if self.identity_file is not None:
            return self.identity_file
        creds = (os.environ if env is None else env).get("CREDENTIALS_DIRECTORY")
        if creds:
            path = Path(creds) / "ssh-key"
            try:
                if path.stat().st_size > 0:
                    return path
            except OSError:
                return None
        return None


@dataclass(frozen=True)
class AgentConfig:
    """What every agent shares. Agents subclass it and add their own section."""

    name: str = "agent"
    bridge: str = ""
    durability: str = "always"
    idle_wait: float = duration(30.0)
    health: HealthConfig = field(default_factory=HealthConfig)
    log: LogConfig = field(default_factory=LogConfig)
    peers: PeersConfig = field(default_factory=PeersConfig)
    ssh: SSHConfig = field(default_factory=SSHConfig)

    def validate(self) -> None:
        """Raise ConfigError for the first bad value (sections validate themselves)."""
        if not AGENT_NAME_RE.match(self.name):
            raise ConfigError("name", f"{self.name!r} is not a valid agent name")
        if self.durability not in ("always", "batch", "none"):
            raise ConfigError("durability", "must be always, batch or none")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            check = getattr(value, "validate", None)
            if dataclasses.is_dataclass(value) and callable(check):
                check()


# -- loading --------------------------------------------------------------------------------

def _describe(value: Any) -> str:
    return repr(value) if not isinstance(value, str) else f"'{value}'"


def _convert(value: Any, hint: Any, key: str, is_duration: bool) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _convert(value, args[0], key, is_duration)
    if is_duration:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ConfigError(key, f"expected a duration such as 30s or 5m, got {_describe(value)}")
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            raise ConfigError(key, str(exc)) from None
    if hint is bool:
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
        if isinstance(value, bool):
            return value
        raise ConfigError(key, f"expected true or false, got {_describe(value)}")
    if hint is int:
        if isinstance(value, bool):
            raise ConfigError(key, f"expected an integer, got {_describe(value)}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(key, f"expected an integer, got {_describe(value)}") from None
    if hint is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(key, f"expected a number, got {_describe(value)}") from None
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"expected text, got {_describe(value)}")
        return value
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(key, f"expected a path, got {_describe(value)}")
        return Path(value).expanduser()
    if origin is tuple:
        (item_hint, *_rest) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(key, f"expected a list, got {_describe(value)}")
        return tuple(_convert(v, item_hint, f"{key}[{i}]", False) for i, v in enumerate(value))
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(key, f"expected a table, got {_describe(value)}")
        return _build(hint, value, f"{key}.")
    if hint is typing.Any:
        return value
    raise ConfigError(key, f"unsupported setting type {hint!r}")  # pragma: no cover


def _build(cls: type[C], data: Mapping[str, Any], prefix: str) -> C:
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key not in known:
            near = [k for k in known if k.startswith(key[:3])]
            hint = f"; did you mean {near[0]}?" if near else ""
            raise ConfigError(f"{prefix}{key}", f"unknown setting{hint}")
    kwargs: dict[str, Any] = {}
    for name, f in known.items():
        key = f"{prefix}{name}"
        if "secret" in f.metadata:
            if name in data:
                raise ConfigError(key, "secrets are not read from the config file: use "
                                       f"LoadCredential={f.metadata['secret']}:... (systemd) or "
                                       "the environment")
            continue
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], key, "duration" in f.metadata)
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field (e.g. a peer's url) is missing
        raise ConfigError(prefix.rstrip(".") or "config", f"incomplete: {exc}") from None


def _nest_env(cls: type[Any], env: Mapping[str, str], prefix: str) -> dict[str, Any]:
    """Environment overrides as a dict shaped like the TOML (one level of sections)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        hint = typing.get_type_hints(cls)[f.name]
        var = f"{prefix}_{f.name.upper()}"
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            section = {}
            for sub in dataclasses.fields(hint):
                if "secret" in sub.metadata:
                    continue
                sub_hint = typing.get_type_hints(hint)[sub.name]
                if typing.get_origin(sub_hint) is tuple:
                    continue  # lists of tables only from the file
                value = env.get(f"{var}_{sub.name.upper()}")
                if value is not None:
                    section[sub.name] = value
            if section:
                out[f.name] = section
        elif "secret" not in f.metadata and var in env:
            out[f.name] = env[var]
    return out


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_secret(credential: str, env_var: str, env: Mapping[str, str]) -> Secret | None:
    creds = env.get("CREDENTIALS_DIRECTORY")
    if creds:
        path = Path(creds) / credential
        try:
            value = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            value = ""
        except OSError as exc:
            raise ConfigError(credential,
                              f"cannot read credential {path}: {exc.strerror}") from None
        if value:
            register_secret(value)
            return Secret(value)
    value = env.get(env_var, "").strip()
    if value:
        register_secret(value)
        return Secret(value)
    return None


def _fill_secrets(obj: Any, env: Mapping[str, str], prefix: str) -> Any:
    """Return ``obj`` with every secret field loaded (recursing into sections and lists)."""
    changes: dict[str, Any] = {}
    values = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    for f in dataclasses.fields(obj):
        value = values[f.name]
        if "secret" in f.metadata:
            credential = f.metadata["secret"].format(**values)
            env_var = f"{prefix}_{credential.upper().replace('-', '_')}"
            changes[f.name] = _read_secret(credential, env_var, env)
        elif dataclasses.is_dataclass(value):
            changes[f.name] = _fill_secrets(value, env, prefix)
        elif isinstance(value, tuple) and value and dataclasses.is_dataclass(value[0]):
            changes[f.name] = tuple(_fill_secrets(v, env, prefix) for v in value)
    return dataclasses.replace(obj, **changes)


def load_config(
    cls: type[C],
    name: str,
    path: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> C:
    """Load ``cls`` (an :class:`AgentConfig` subclass) for agent ``name``.

    Args:
        cls: the config dataclass.
        name: the agent name; also the environment prefix (``kami`` -> ``KAMI_``).
        path: a TOML file; None means ``$<AGENT>_CONFIG`` if set, else defaults only.
        env: the environment (default: ``os.environ``).

    Raises:
        ConfigError: naming the key and the problem.
    """
    source = os.environ if env is None else env
    prefix = name.upper().replace("-", "_").replace(".", "_")
    if path is None and source.get(f"{prefix}_CONFIG"):
        path = Path(source[f"{prefix}_CONFIG"])
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError("config", f"{path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("config", f"{path} is not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError("config", f"cannot read {path}: {exc.strerror}") from None
    data.setdefault("name", name)
    data = _merge(data, _nest_env(cls, source, prefix))
    config = _build(cls, data, "")
    config = _fill_secrets(config, source, prefix)
    validate = getattr(config, "validate", None)
    if callable(validate):
        validate()
    return config
