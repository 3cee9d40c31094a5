"""The Claude worker's configuration: the runtime's settings plus ``[claude_worker]``.

::

    bridge = "/var/lib/kami-bridge/bridge"
    [health]
    port = 8083

    [claude_worker]
    claude = "/opt/claude-code/bin/claude"     # the Claude Code CLI
    delay = "60s"                              # interactive sessions get this long first
    max_turns = 30
    timeout = "15m"
    daily_budget_usd = 5.0
    allowed_tools = ["Read", "Grep", "Glob"]
    default_project = "site"
    [claude_worker.projects]
    site = "/srv/site"
    # the API key: LoadCredential=anthropic-api-key (or $CLAUDE_WORKER_ANTHROPIC_API_KEY)

Every setting is described in docs/claude-worker.md.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from bridge import ConfigError
from bridge.format import AGENT_NAME_RE
from bridge.runtime import AgentConfig, HealthConfig, Secret, duration, secret

__all__ = ["PERMISSION_MODES", "ClaudeWorkerConfig", "WorkerSettings"]

PERMISSION_MODES = ("default", "acceptEdits", "plan", "dontAsk")
"""What ``permission_mode`` may be. Never ``bypassPermissions`` (nor ``auto``): the worker
runs unattended, so what it may do is exactly ``allowed_tools``."""

PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class WorkerSettings:
    """The ``[claude_worker]`` section."""

    section: ClassVar[str] = "claude_worker"

    agent: str = "claude"
    """Whose requests the worker takes (and whom its answers speak for: ``on_behalf``)."""
    identity: str = "claude.worker"
    """The name it claims and answers under; the bridge MCP server it starts uses it too."""
    delay: float = duration(60.0)
    """A request is taken only once it is this old (interactive sessions come first)."""
    claude: str = "claude"
    """The Claude Code CLI: a path, or a name looked up in ``path``."""
    path: str = "/usr/local/bin:/usr/bin:/bin"
    """PATH of the CLI's environment (and of the tools it runs)."""
    model: str | None = None
    max_turns: int = 30
    timeout: float = duration(900.0)
    """Wall-clock limit of one run; past it the run's whole process group is killed."""
    lease: float = duration(60.0)
    stop_grace: float = duration(10.0)
    """On SIGTERM, how long a running request may go on before it is killed and handed back."""
    daily_budget_usd: float = 5.0
    """What the runs of one UTC day may cost (the CLI's ``total_cost_usd``); 0 stops all runs."""
    allowed_tools: tuple[str, ...] = ()
    """Tools the model may use besides the bridge's (``mcp__bridge``), e.g. ``Read``,
    ``Bash(git log:*)``."""
    disallowed_tools: tuple[str, ...] = ()
    permission_mode: str = "default"
    projects: Any = None
    """A table: project name → working directory. A request picks one with metadata
    ``project``; otherwise ``default_project`` (or, with no projects, ``<state>/work``)."""
    default_project: str | None = None
    base_url: str | None = None
    """ANTHROPIC_BASE_URL for the CLI (a gateway or proxy); unset: Anthropic's API."""
    api_key: Secret | None = secret("anthropic-api-key")
    state_dir: Path | None = None
    mcp_bridge: str | None = None
    """The bridge the MCP server opens (a path or ssh:// URL); default: ``bridge``."""
    owner_agent: str = "kami"
    """Who hears once a day that the budget is spent (Kami passes it to WhatsApp)."""
    owner_chat: str | None = None
    """The owner's WhatsApp chat for that notice (default: Kami's notify chats)."""
    progress: bool = True
    """Send the requester a "working on it" line when a run starts."""
    max_attempts: int = 3
    """Takes of one request (restarts, hand-backs included) after which it is failed."""

    def validate(self) -> None:
        s = self.section
        for key in ("agent", "identity", "owner_agent"):
            if not AGENT_NAME_RE.match(getattr(self, key)):
                raise ConfigError(f"{s}.{key}", f"{getattr(self, key)!r} is not an agent name")
        if self.identity == self.agent:
            raise ConfigError(f"{s}.identity", f"must differ from agent ({self.agent!r}), e.g. "
                                               f"{self.agent}.worker: interactive sessions "
                                               f"claim as {self.agent}.<session>")
        if self.delay < 0:
            raise ConfigError(f"{s}.delay", "must not be negative")
        if self.timeout <= 0 or self.stop_grace < 0:
            raise ConfigError(f"{s}.timeout", "must be positive (and stop_grace not negative)")
        if self.lease < 5:
            raise ConfigError(f"{s}.lease", "must be at least 5s (it is renewed every third "
                                            "of it)")
        if not 1 <= self.max_turns <= 1000:
            raise ConfigError(f"{s}.max_turns", "must be between 1 and 1000")
        if not 1 <= self.max_attempts <= 20:
            raise ConfigError(f"{s}.max_attempts", "must be between 1 and 20")
        if not math.isfinite(self.daily_budget_usd) or self.daily_budget_usd < 0:
            raise ConfigError(f"{s}.daily_budget_usd", "must be a number of US dollars, 0 or "
                                                       "more")
        if self.permission_mode not in PERMISSION_MODES:
            raise ConfigError(f"{s}.permission_mode",
                              f"must be {', '.join(PERMISSION_MODES)}, not "
                              f"{self.permission_mode!r} (the worker never bypasses "
                              "permissions: list what it may do in allowed_tools)")
        if not self.claude:
            raise ConfigError(f"{s}.claude", "must name the Claude Code CLI")
        for key in ("allowed_tools", "disallowed_tools"):
            for i, tool in enumerate(getattr(self, key)):
                if not tool or tool != tool.strip() or "," in tool or "\n" in tool:
                    raise ConfigError(f"{s}.{key}[{i}]", f"{tool!r} is not a tool name or "
                                                         "pattern")
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"{s}.base_url", f"{self.base_url!r} is not an http(s) URL")
        projects = self.project_dirs()
        if self.default_project is None and len(projects) > 1:
            raise ConfigError(f"{s}.default_project", "several projects are configured: name "
                                                      "the one for requests that name none")
        if self.default_project is not None and self.default_project not in projects:
            raise ConfigError(f"{s}.default_project", f"no project {self.default_project!r} in "
                                                      f"[{s}.projects]")

    def project_dirs(self) -> dict[str, Path]:
        """``projects`` as names → absolute directories (ConfigError when malformed)."""
        s = self.section
        if self.projects is None:
            return {}
        if not isinstance(self.projects, dict):
            raise ConfigError(f"{s}.projects", "expected a table: name = \"/directory\"")
        out: dict[str, Path] = {}
        for name, value in self.projects.items():
            if not PROJECT_NAME.match(name):
                raise ConfigError(f"{s}.projects.{name}", "is not a project name (lower-case "
                                                          "letters, digits, . _ -)")
            if not isinstance(value, str) or not Path(value).expanduser().is_absolute():
                raise ConfigError(f"{s}.projects.{name}", f"expected an absolute directory, "
                                                          f"got {value!r}")
            out[name] = Path(value).expanduser()
        return out


@dataclass(frozen=True)
class ClaudeWorkerConfig(AgentConfig):
    """All of ``/etc/kami-bridge/claude-worker.toml``."""

    name: str = "claude-worker"
    health: HealthConfig = field(default_factory=lambda: HealthConfig(port=8083))
    claude_worker: WorkerSettings = field(default_factory=WorkerSettings)

    def state_path(self) -> Path:
        """``[claude_worker] state_dir``, else ``$STATE_DIRECTORY`` (systemd), else
        ``~/.local/state/claude-worker``."""
        if self.claude_worker.state_dir is not None:
            return self.claude_worker.state_dir
        env = os.environ.get("STATE_DIRECTORY")
        if env:
            return Path(env.split(":")[0])
        return Path.home() / ".local" / "state" / "claude-worker"
