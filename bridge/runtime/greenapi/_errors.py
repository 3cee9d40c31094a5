"""What can go wrong talking to Green API, as one branch of the bridge's exception tree.

::

    BridgeError
    └── GreenApiError                      exit 1
        ├── GreenApiAuthError                      401/403: wrong token or instance id
        ├── GreenApiQuotaExceeded                  466: a Developer-plan quota is spent
        ├── GreenApiRejected (ValueError)          400/404: the request itself is wrong
        │   └── MalformedNotification              a notification without a needed field
        ├── GreenApiUnavailable (ConnectionError)  429/5xx/network after the retries: the
        │   └── GreenApiRateLimited                request was not performed (or is safe to
        │                                          repeat)
        └── GreenApiSendUncertain                  a send whose outcome is unknown

Messages never contain the request URL (the token is part of its path); they
name the method, the HTTP status and what the server said, redacted.
"""

from __future__ import annotations

from typing import Any

from ..._errors import BridgeError

__all__ = [
    "GreenApiAuthError",
    "GreenApiError",
    "GreenApiQuotaExceeded",
    "GreenApiRateLimited",
    "GreenApiRejected",
    "GreenApiSendUncertain",
    "GreenApiUnavailable",
    "MalformedNotification",
]


class GreenApiError(BridgeError):
    """Root of every Green API failure. ``method`` and ``status`` say where it happened."""

    def __init__(self, message: str, *, method: str | None = None,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.method = method
        self.status = status


class GreenApiAuthError(GreenApiError):
    """Green API refused the credentials: the token (401) or the instance id / URL (403).

    Retrying cannot help; the configuration must change.
    """


class GreenApiQuotaExceeded(GreenApiError):
    """HTTP 466: a monthly method quota, or the limit of chats on the Developer plan.

    ``kind`` is ``"method"`` or ``"correspondents"``; ``used``/``total`` and the
    server's ``description`` come from the 466 body when it has them.
    """

    def __init__(self, message: str, *, method: str | None = None, kind: str = "method",
                 used: int | None = None, total: int | None = None,
                 description: str | None = None, body: Any = None) -> None:
        super().__init__(message, method=method, status=466)
        self.kind = kind
        self.used = used
        self.total = total
        self.description = description
        self.body = body


class GreenApiRejected(GreenApiError, ValueError):
    """The request was refused as it is (400 validation, 404 unknown method): do not retry it."""


class MalformedNotification(GreenApiRejected):
    """A notification that lacks a field its type requires (or has one of the wrong type)."""


class GreenApiUnavailable(GreenApiError, ConnectionError):
    """Green API could not be reached or kept failing (network, 5xx, instance starting),
    and the retries ran out. The request was not performed, or repeating it is harmless."""


class GreenApiRateLimited(GreenApiUnavailable):
    """HTTP 429 on every attempt: the per-second limit of the method was exceeded."""


class GreenApiSendUncertain(GreenApiError):
    """A send whose outcome is unknown: the request went out, and then the connection
    timed out or broke, or the server failed in a way that may follow the send.

    The message may or may not have been sent (Green API sends it and answers late,
    green-api/issues#398): look it up (``lastOutgoingMessages``) before sending again.
    """
