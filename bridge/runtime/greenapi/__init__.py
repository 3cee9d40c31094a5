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

from ._client import RATE_LIMITS, GreenApiClient, OutgoingRecord, RateLimiter, Received
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
from ._sink import GreenApiConfig, GreenApiSink
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
