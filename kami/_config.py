"""Kami's configuration: the runtime's settings plus ``[kami]`` and ``[models]``.

::

    [kami]
    api_url = "https://7105.api.greenapi.com"
    id_instance = 7105123456
    owners = ["972501234567@c.us", "120650379300963@lid"]
    # the token: LoadCredential=green-api-token (or $KAMI_GREEN_API_TOKEN)

    [[kami.shutdown]]
    host = "vps2"
    agents = ["kaylee"]

    [[models.route]]
    name = "sonnet"
    model = "claude-sonnet-4-5"
    daily_tokens = 200000

See docs/kami.md for every setting.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from bridge import ConfigError
from bridge.format import AGENT_NAME_RE
from bridge.runtime import AgentConfig, ModelsConfig, Secret, duration, secret
from bridge.runtime.greenapi import GreenApiConfig, is_chat_id

__all__ = ["KamiConfig", "KamiSettings", "ShutdownTarget"]


@dataclass(frozen=True)
class ShutdownTarget:
    """Agents that ``shutdown all`` stops on one host (``bridge ctl HOST stop AGENT``)."""

    host: str
    agents: tuple[str, ...] = ()
    sudo: bool = False
    systemctl: str = "systemctl"


@dataclass(frozen=True)
class KamiSettings(GreenApiConfig):
    """The ``[kami]`` section: the Green API instance, who may talk to Kami, and how."""

    section: ClassVar[str] = "kami"

    receive: str = "poll"
    """``poll`` (receiveNotification) or ``webhook`` (Green API POSTs to Kami)."""
    receive_timeout: int = 20
    """Seconds one receiveNotification long-poll may wait (5 to 60)."""
    webhook_bind: str = "127.0.0.1"
    webhook_port: int = 8091
    webhook_path: str = "/green-api/webhook"
    webhook_token: Secret | None = secret("green-api-webhook-token")
    allow_groups: tuple[str, ...] = ()
    """Group chats where the owners' messages are acted on (others are ignored)."""
    notify: tuple[str, ...] = ()
    """Chats that get what has no chat of its own (peer alerts); default: the first owner."""
    stranger_reply: str = ""
    """Sent once a day to a chat that is not allowed (empty: nothing is sent)."""
    language: str = "he"
    """Replies' language when the owner's text has no letters (he or en)."""
    claude: str = "claude"
    kaylee: str = "kaylee"
    report_to: str = "claude"
    """Who gets a bridge notification when a WhatsApp delivery fails for good."""
    confirm_window: float = duration(120.0)
    shutdown: tuple[ShutdownTarget, ...] = ()
    state_poll: float = duration(60.0)
    """How often the instance's state is asked for (the state webhook can be missed)."""
    max_model_input: int = 4000
    """Characters of a message the model sees (the rest is forwarded untouched)."""
    resend_failed: int = 1
    """Times a message whose status came back ``failed`` is sent again."""
    verify_after: float = duration(3.0)
    """Wait before looking up a send whose outcome is unknown (lastOutgoingMessages)."""
    backoff_cap: float = duration(60.0)
    """Longest wait between attempts while Green API is unreachable."""
    quota_backoff: float = duration(900.0)
    """Wait before trying a send again after HTTP 466."""
    state_dir: Path | None = None
    """Where the model ledger and dead letters go (default: $STATE_DIRECTORY)."""

    def validate(self) -> None:
        s = self.section
        if not self.configured:
            raise ConfigError(f"{s}.api_url", "Kami needs its Green API instance: set api_url, "
                                              "id_instance and owners in [kami]")
        super().validate()
        if self.receive not in ("poll", "webhook"):
            raise ConfigError(f"{s}.receive", f"must be poll or webhook, not {self.receive!r}")
        if not 5 <= self.receive_timeout <= 60:
            raise ConfigError(f"{s}.receive_timeout", "must be 5 to 60 seconds (Green API's "
                                                      "range)")
        if self.receive == "webhook":
            if not self.webhook_token:
                raise ConfigError(f"{s}.webhook_token", "webhook mode needs a token: set it as "
                                  "webhookUrlToken in the Green API console and give it to "
                                  "Kami as LoadCredential=green-api-webhook-token (or "
                                  "$KAMI_GREEN_API_WEBHOOK_TOKEN)")
            if not self.webhook_path.startswith("/"):
                raise ConfigError(f"{s}.webhook_path", "must start with /")
            if not 0 <= self.webhook_port <= 65535:
                raise ConfigError(f"{s}.webhook_port", f"{self.webhook_port} is not a TCP port")
        for i, group in enumerate(self.allow_groups):
            if not is_chat_id(group) or not group.endswith("@g.us"):
                raise ConfigError(f"{s}.allow_groups[{i}]", f"{group!r} is not a group chat id")
        for i, chat in enumerate(self.notify):
            if not is_chat_id(chat):
                raise ConfigError(f"{s}.notify[{i}]", f"{chat!r} is not a chat id")
        if self.language not in ("he", "en"):
            raise ConfigError(f"{s}.language", "must be he or en")
        for key in ("claude", "kaylee", "report_to"):
            if not AGENT_NAME_RE.match(getattr(self, key)):
                raise ConfigError(f"{s}.{key}", f"{getattr(self, key)!r} is not an agent name")
        for i, target in enumerate(self.shutdown):
            if not target.host or target.host.startswith("-"):
                raise ConfigError(f"{s}.shutdown[{i}].host", "must name a host")
            for agent in target.agents:
                if not AGENT_NAME_RE.match(agent):
                    raise ConfigError(f"{s}.shutdown[{i}].agents", f"{agent!r} is not an agent "
                                                                   "name")
        if self.max_model_input < 100 or self.resend_failed < 0:
            raise ConfigError(f"{s}.max_model_input", "max_model_input must be >= 100 and "
                                                      "resend_failed >= 0")

    def state_path(self, name: str) -> Path | None:
        """A file in Kami's state directory, or None when there is none."""
        base = self.state_dir
        if base is None and os.environ.get("STATE_DIRECTORY"):
            base = Path(os.environ["STATE_DIRECTORY"].split(":")[0])
        return base / name if base is not None else None


@dataclass(frozen=True)
class KamiConfig(AgentConfig):
    """Everything Kami reads: the runtime's settings, ``[kami]`` and ``[models]``."""

    name: str = "kami"
    kami: KamiSettings = field(default_factory=KamiSettings)
    models: ModelsConfig = field(default_factory=ModelsConfig)
