"""Green API (WhatsApp over HTTP), for every agent that needs it.

- :class:`GreenApiClient`: the methods (``sendMessage``, ``receiveNotification``,
  ``deleteNotification``, ``getStateInstance``, ``lastOutgoingMessages``...) over
  httpx, paced below the documented per-method limits, with retries that never
  repeat a send blindly, and errors mapped by status (one branch of the bridge's
  exception tree, rooted at :class:`GreenApiError`).
- :func:`parse_notification`: typed notifications.
- :class:`GreenApiConfig` and :class:`GreenApiSink`: an agent's ``[whatsapp]``
  section and the peer-alert sink that writes to the owners.
- :func:`for_whatsapp`, :func:`split_message`: Markdown to WhatsApp formatting,
  right-to-left lines, the 20,000-character limit.

Importing it does nothing (httpx is imported with the client module, here: the
runtime package itself does not import this one). A local simulator of the API
is in :mod:`bridge.testing.greenapi`.
"""

# The names below are imported from their modules on first use (PEP 562), so
# importing this package costs nothing until one of them is asked for.

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..._lazy import lazy_attribute

if TYPE_CHECKING:
    from ._client import (
        RATE_LIMITS,
        GreenApiClient,
        OutgoingRecord,
        RateLimiter,
        Received,
    )
    from ._errors import (
        GreenApiAuthError,
        GreenApiError,
        GreenApiQuotaExceeded,
        GreenApiRateLimited,
        GreenApiRejected,
        GreenApiSendUncertain,
        GreenApiUnavailable,
        MalformedNotification,
    )
    from ._notifications import (
        FAILED_STATUSES,
        Ignored,
        IncomingMessage,
        Media,
        Notification,
        OutgoingStatus,
        QuotaNotice,
        Quoted,
        StateChanged,
        parse_notification,
    )
    from ._sink import (
        GreenApiConfig,
        GreenApiSink,
    )
    from ._text import (
        CHAT_ID_RE,
        MESSAGE_LIMIT,
        RLM,
        SAFE_LIMIT,
        fix_bidi,
        for_whatsapp,
        is_chat_id,
        is_group,
        markdown_to_whatsapp,
        split_message,
        utf16_len,
    )

_EXPORTS: dict[str, str] = {
    "CHAT_ID_RE": "._text",
    "FAILED_STATUSES": "._notifications",
    "GreenApiAuthError": "._errors",
    "GreenApiClient": "._client",
    "GreenApiConfig": "._sink",
    "GreenApiError": "._errors",
    "GreenApiQuotaExceeded": "._errors",
    "GreenApiRateLimited": "._errors",
    "GreenApiRejected": "._errors",
    "GreenApiSendUncertain": "._errors",
    "GreenApiSink": "._sink",
    "GreenApiUnavailable": "._errors",
    "Ignored": "._notifications",
    "IncomingMessage": "._notifications",
    "MESSAGE_LIMIT": "._text",
    "MalformedNotification": "._errors",
    "Media": "._notifications",
    "Notification": "._notifications",
    "OutgoingRecord": "._client",
    "OutgoingStatus": "._notifications",
    "QuotaNotice": "._notifications",
    "Quoted": "._notifications",
    "RATE_LIMITS": "._client",
    "RLM": "._text",
    "RateLimiter": "._client",
    "Received": "._client",
    "SAFE_LIMIT": "._text",
    "StateChanged": "._notifications",
    "fix_bidi": "._text",
    "for_whatsapp": "._text",
    "is_chat_id": "._text",
    "is_group": "._text",
    "markdown_to_whatsapp": "._text",
    "parse_notification": "._notifications",
    "split_message": "._text",
    "utf16_len": "._text",
}


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _EXPORTS, name)


__all__ = [
    "CHAT_ID_RE",
    "FAILED_STATUSES",
    "MESSAGE_LIMIT",
    "RATE_LIMITS",
    "RLM",
    "SAFE_LIMIT",
    "GreenApiAuthError",
    "GreenApiClient",
    "GreenApiConfig",
    "GreenApiError",
    "GreenApiQuotaExceeded",
    "GreenApiRateLimited",
    "GreenApiRejected",
    "GreenApiSendUncertain",
    "GreenApiSink",
    "GreenApiUnavailable",
    "Ignored",
    "IncomingMessage",
    "MalformedNotification",
    "Media",
    "Notification",
    "OutgoingRecord",
    "OutgoingStatus",
    "QuotaNotice",
    "Quoted",
    "RateLimiter",
    "Received",
    "StateChanged",
    "fix_bidi",
    "for_whatsapp",
    "is_chat_id",
    "is_group",
    "markdown_to_whatsapp",
    "parse_notification",
    "split_message",
    "utf16_len",
]
