"""Kaylee's configuration: the runtime's settings plus her own (docs/kaylee.md).

Everything here is checked when the file is loaded — a bad recipe is a config
error (exit 78) — except scheduled jobs: a job with a broken cron expression
or an unknown recipe is disabled and reported at start, and the other jobs run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bridge import ConfigError
from bridge.format import AGENT_NAME_RE
from bridge.runtime import AgentConfig, HealthConfig, ModelsConfig, PeersConfig, duration
from bridge.runtime.greenapi import GreenApiConfig

from ._params import ParamSpec, Template

__all__ = [
    "CodeReviewConfig",
    "DeployConfig",
    "DeployTarget",
    "HealthSweepConfig",
    "KayleeConfig",
    "OwnerConfig",
    "RecipeConfig",
    "ReportConfig",
    "ReviewRepo",
    "RotateConfig",
]

RECIPE_NAME = r"[a-z][a-z0-9-]{0,39}"
BUILTIN_NAMES = ("health-sweep", "rotate", "deploy", "code-review", "report")


@dataclass(frozen=True)
class RecipeConfig:
    """``[[recipe]]``: a named command (``argv``) or several (``steps``), never a shell line."""

    name: str
    description: str = ""
    argv: tuple[str, ...] = ()
    steps: tuple[Any, ...] = ()
    dry_run_argv: tuple[str, ...] = ()
    cwd: Path | None = None
    env: Any = None
    timeout: float = duration(600.0)
    idempotent: bool = False
    confirm: bool = False
    retries: int = 0
    retry_exit_codes: tuple[int, ...] = (75,)
    retry_on_timeout: bool = False
    param: tuple[ParamSpec, ...] = ()

    def commands(self, key: str) -> list[list[str]]:
        """The argv of each step."""
        if bool(self.argv) == bool(self.steps):
            raise ConfigError(key, "give either argv (one command) or steps (a list of "
                                   "commands), not both and not neither")
        if self.argv:
            return [list(self.argv)]
        out = []
        for i, step in enumerate(self.steps):
            if (not isinstance(step, list) or not step
                    or not all(isinstance(a, str) for a in step)):
                raise ConfigError(f"{key}.steps[{i}]", "expected a non-empty list of strings "
                                                        "(an argv)")
            out.append(step)
        return out

    def environment(self, key: str) -> dict[str, str]:
        if self.env is None:
            return {}
        if not isinstance(self.env, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in self.env.items()):
            raise ConfigError(f"{key}.env", "expected a table of text values")
        return dict(self.env)

    def check(self, key: str) -> list[ParamSpec]:
        """Validate the recipe; return its parameter specs."""
        if not _matches(RECIPE_NAME, self.name):
            raise ConfigError(f"{key}.name", f"{self.name!r} is not a recipe name (lower-case "
                                             "letters, digits and -, at most 40)")
        if self.name in BUILTIN_NAMES:
            raise ConfigError(f"{key}.name", f"{self.name!r} is a built-in recipe; configure "
                                             f"it in its own [{self.name.replace('-', '_')}] "
                                             "section")
        if self.timeout <= 0 or self.retries < 0:
            raise ConfigError(key, "timeout must be positive and retries at least 0")
        for i, spec in enumerate(self.param):
            spec.check_declaration(f"{key}.param[{i}]")
        specs = list(self.param)
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ConfigError(f"{key}.param", "parameter names must be unique")
        used: set[str] = set()
        elements = [a for cmd in self.commands(key) for a in cmd] + list(self.dry_run_argv)
        for text in [*elements, *self.environment(key).values()]:
            try:
                used |= Template(text).names()
            except ConfigError as exc:
                raise ConfigError(key, exc.problem) from None
        unknown = used - set(names)
        if unknown:
            raise ConfigError(key, f"uses undeclared parameter(s) {', '.join(sorted(unknown))}")
        for cmd in self.commands(key):
            if Template(cmd[0]).names():
                raise ConfigError(key, "the program (first argv element) cannot come from a "
                                       "parameter")
        return specs


@dataclass(frozen=True)
class OwnerConfig:
    """``[owner]``: who is told about failures, and how to reach them."""

    agent: str = "kami"
    chat: str | None = None
    """The owner's WhatsApp chat, written as ``whatsapp_sender`` on what Kaylee sends Kami
    for the owner (default: the first of ``[whatsapp] owners``)."""
    command: tuple[str, ...] = ()
    """A direct channel for when Kami is down and ``[whatsapp]`` is not configured: a
    program given ``{"chat", "text", "kind"}`` as JSON on its stdin."""


@dataclass(frozen=True)
class DeployTarget:
    """``[[deploy.target]]``: one repository and the service that runs it."""

    name: str
    repo: Path
    service: str
    remote: str = "origin"
    branch: str = "main"
    systemctl: tuple[str, ...] = ("systemctl",)
    health_url: str | None = None
    health_timeout: float = duration(60.0)
    command_timeout: float = duration(300.0)


@dataclass(frozen=True)
class DeployConfig:
    """``[deploy]``: pull, restart, check health, roll back on failure."""

    confirm: bool = True
    retries: int = 0
    timeout: float = duration(1800.0)
    target: tuple[DeployTarget, ...] = ()

    def validate(self) -> None:
        names = [t.name for t in self.target]
        if len(set(names)) != len(names):
            raise ConfigError("deploy.target", "target names must be unique")
        for i, t in enumerate(self.target):
            if not t.systemctl:
                raise ConfigError(f"deploy.target[{i}].systemctl", "must name a program")
            if t.health_url is not None and not t.health_url.startswith(("http://", "https://")):
                raise ConfigError(f"deploy.target[{i}].health_url", "is not an http(s) URL")


@dataclass(frozen=True)
class ReviewRepo:
    """``[[code_review.repo]]``: a repository whose new commits are reviewed."""

    name: str
    path: Path
    ref: str = "HEAD"


@dataclass(frozen=True)
class CodeReviewConfig:
    """``[code_review]``: diffs since the last review, reviewed through the model routes."""

    confirm: bool = False
    retries: int = 2
    timeout: float = duration(600.0)
    routes: tuple[str, ...] = ()
    max_diff_bytes: int = 200_000
    max_tokens: int = 2048
    repo: tuple[ReviewRepo, ...] = ()


@dataclass(frozen=True)
class ReportConfig:
    """``[report]``: the daily digest of bridge activity."""

    confirm: bool = False
    retries: int = 1
    timeout: float = duration(300.0)
    window: float = duration(86400.0)
    stale: float = duration(86400.0)


@dataclass(frozen=True)
class RotateConfig:
    """``[rotate]``: bridge rotation (docs/protocol.md §9)."""

    confirm: bool = False
    retries: int = 1
    timeout: float = duration(1800.0)
    older_than: float = duration(30 * 86400.0)
    compress: bool = False


@dataclass(frozen=True)
class HealthSweepConfig:
    """``[health_sweep]``: one round of the ``[peers]`` checks, alerts on the edges."""

    confirm: bool = False
    retries: int = 0
    timeout: float = duration(120.0)


@dataclass(frozen=True)
class KayleeConfig(AgentConfig):
    """All of ``/etc/kami-bridge/kaylee.toml``."""

    name: str = "kaylee"
    health: HealthConfig = field(default_factory=lambda: HealthConfig(port=8082))
    peers: PeersConfig = field(default_factory=lambda: PeersConfig(alert_to="kami"))
    models: ModelsConfig = field(default_factory=ModelsConfig)
    whatsapp: GreenApiConfig = field(default_factory=GreenApiConfig)
    state_dir: Path | None = None
    concurrency: int = 1
    lease: float = duration(60.0)
    dry_run: bool = False
    stop_grace: float = duration(15.0)
    confirm_timeout: float = duration(3600.0)
    backoff: float = duration(30.0)
    max_backoff: float = duration(1800.0)
    schedule_grace: float = duration(120.0)
    timezone: str = "UTC"
    output_limit: int = 16384
    output_file_limit: int = 64 << 20
    output_keep: float = duration(14 * 86400.0)
    owner: OwnerConfig = field(default_factory=OwnerConfig)
    recipe: tuple[RecipeConfig, ...] = ()
    deploy: DeployConfig = field(default_factory=DeployConfig)
    code_review: CodeReviewConfig = field(default_factory=CodeReviewConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    rotate: RotateConfig = field(default_factory=RotateConfig)
    health_sweep: HealthSweepConfig = field(default_factory=HealthSweepConfig)
    # Raw tables on purpose: a broken job disables that job, not Kaylee (kaylee/_schedule.py).
    job: tuple[Any, ...] = ()

    def validate(self) -> None:
        super().validate()
        if not 1 <= self.concurrency <= 16:
            raise ConfigError("concurrency", "must be between 1 and 16")
        if self.lease < 5:
            raise ConfigError("lease", "must be at least 5s (it is renewed every third of it)")
        if self.output_limit < 256 or self.output_file_limit < self.output_limit:
            raise ConfigError("output_limit", "must be at least 256 bytes, and "
                                              "output_file_limit at least as much")
        if not AGENT_NAME_RE.match(self.owner.agent):
            raise ConfigError("owner.agent", f"{self.owner.agent!r} is not an agent name")
        self.zone()
        names: set[str] = set()
        for i, recipe in enumerate(self.recipe):
            recipe.check(f"recipe[{i}]")
            if recipe.name in names:
                raise ConfigError(f"recipe[{i}].name", f"recipe {recipe.name!r} is defined twice")
            names.add(recipe.name)
        routes = {r.name for r in self.models.route}
        missing = [r for r in self.code_review.routes if r not in routes]
        if missing:
            raise ConfigError("code_review.routes", f"no [[models.route]] named "
                                                    f"{', '.join(missing)}")

    def owner_chat(self) -> str | None:
        """The owner's chat: ``[owner] chat``, else the first of ``[whatsapp] owners``."""
        return self.owner.chat or (self.whatsapp.owners[0] if self.whatsapp.owners else None)

    def zone(self) -> ZoneInfo:
        """The time zone of cron expressions."""
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError("timezone", f"unknown time zone {self.timezone!r} "
                                          "(e.g. UTC, Europe/Berlin)") from None

    def state_path(self) -> Path:
        """Where Kaylee keeps what must survive restarts: ``state_dir``, else
        ``$STATE_DIRECTORY`` (systemd), else ``~/.local/state/kaylee``."""
        if self.state_dir is not None:
            return self.state_dir
        env = os.environ.get("STATE_DIRECTORY")
        if env:
            return Path(env.split(":")[0])
        return Path.home() / ".local" / "state" / "kaylee"


def _matches(pattern: str, text: str) -> bool:
    import re

    return re.fullmatch(pattern, text) is not None
