"""The configuration every agent that talks to Green API shares, and the alert sink.

An agent embeds :class:`GreenApiConfig` as a section of its config (Kaylee:
``[whatsapp]``; Kami extends it as ``[kami]``). The token is a credential,
``green-api-token``, never a setting. :class:`GreenApiSink` sends the runtime's
peer alerts to the owners' chats, so an agent can reach the owner on WhatsApp
even when Kami (the agent that usually does) is down.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from ..._errors import ConfigError
from .._config import Secret, duration, secret
from .._health import _is_loopback
from .._peers import Alert
from ._client import GreenApiClient
from ._errors import GreenApiError
from ._text import for_whatsapp, is_chat_id, split_message

__all__ = ["GreenApiConfig", "GreenApiSink"]


@dataclass(frozen=True)
class GreenApiConfig:
    """A Green API instance and the owners' chats.

    All empty means "not configured" (an agent may run without WhatsApp); a
    partial configuration is an error naming what is missing.
    """

    section: ClassVar[str] = "whatsapp"
    """The config section's name, for error messages (subclasses set theirs)."""

    api_url: str = ""
    id_instance: int = 0
    token: Secret | None = secret("green-api-token")
    owners: tuple[str, ...] = ()
    timeout: float = duration(30.0)
    retries: int = 4
    retry_delay: float = duration(0.5)
    retry_cap: float = duration(30.0)

    @property
    def configured(self) -> bool:
        return bool(self.api_url or self.id_instance or self.owners)

    def validate(self) -> None:
        s = self.section
        if not self.configured:
            return
        if not self.api_url:
            raise ConfigError(f"{s}.api_url", "required: the instance's apiUrl from the Green "
                                              "API console (e.g. https://7105.api.greenapi.com)")
        url = urllib.parse.urlsplit(self.api_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ConfigError(f"{s}.api_url", f"{self.api_url!r} is not an http(s) URL")
        if url.scheme == "http" and not _is_loopback(url.hostname):
            raise ConfigError(f"{s}.api_url", "must be https: the token travels in the URL "
                                              "(plain http only to 127.0.0.1, e.g. the simulator)")
        if self.id_instance <= 0:
            raise ConfigError(f"{s}.id_instance", "required: the instance id (idInstance) from "
                                                  "the Green API console")
        if not self.owners:
            raise ConfigError(f"{s}.owners", "at least one owner chat id is required, e.g. "
                                             "[\"972501234567@c.us\"]")
        for i, owner in enumerate(self.owners):
            if not is_chat_id(owner) or owner.endswith("@g.us"):
                raise ConfigError(f"{s}.owners[{i}]", f"{owner!r} is not a personal chat id "
                                                      "(digits@c.us or digits@lid)")
        if not self.token:
            raise ConfigError(f"{s}.token", "no Green API token: LoadCredential=green-api-token"
                                            ":... (systemd) or the <AGENT>_GREEN_API_TOKEN "
                                            "environment variable")
        if self.retries < 0 or self.timeout <= 0 or self.retry_delay <= 0:
            raise ConfigError(f"{s}.retries", "retries must be >= 0, timeout and retry_delay "
                                              "positive")

    def client(self, **overrides: Any) -> GreenApiClient:
        """A client for this instance (``overrides`` go to :class:`GreenApiClient`)."""
        if not self.token:
            raise ConfigError(f"{self.section}.token", "no Green API token is configured")
        options: dict[str, Any] = {"timeout": self.timeout, "retries": self.retries,
                                   "retry_delay": self.retry_delay, "retry_cap": self.retry_cap}
        options.update(overrides)
        return GreenApiClient(self.api_url, self.id_instance, self.token.reveal(), **options)


class GreenApiSink:
    """A peer-alert sink (``Agent.alert_sinks``): the alert's text to each chat.

    Every chat is tried; if any send failed, one :class:`GreenApiError` naming them
    is raised afterwards (the monitor logs it as a failed sink).
    """

    def __init__(self, client: GreenApiClient, chat_ids: Iterable[str], *,
                 prefix: str = "") -> None:
        self.client = client
        self.chat_ids = tuple(chat_ids)
        if not self.chat_ids:
            raise ConfigError("owners", "an alert sink needs at least one chat id")
        self.prefix = prefix

    def send_text(self, text: str) -> list[str]:
        """Send ``text`` (formatted, split if long) to every chat; return the message ids."""
        ids: list[str] = []
        failures: list[str] = []
        parts = split_message(for_whatsapp(text))
        for chat in self.chat_ids:
            try:
                for part in parts:
                    ids.append(self.client.send_message(chat, part, link_preview=False))
            except GreenApiError as exc:
                failures.append(f"{chat}: {exc}")
        if failures:
            raise GreenApiError("alert not delivered to " + "; ".join(failures))
        return ids

    def __call__(self, alert: Alert) -> None:
        self.send_text(f"{self.prefix}{alert.text}")
