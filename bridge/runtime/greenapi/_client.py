"""A Green API client on httpx: the URL shape, the per-method rate limits, retries, errors.

Every call is ``{api_url}/waInstance{id}/{method}/{token}[/extra]``: the token is
part of the path, so no URL ever reaches an exception message or a log line
from here (httpx's own request log is kept off or redacted by the runtime's
logging; see bridge.runtime._redact).

Retries follow what the request did, not only what came back:

- refused before it was sent (connection refused, connect timeout), 429, 502
  and 503, an instance still starting: nothing happened, so it is repeated
  with capped exponential backoff and jitter (``retries`` times);
- a send (``sendMessage``) that went out and then timed out, broke off, or got
  500/504 may have been sent — Green API sends and answers late
  (green-api/issues#398) — so it is never repeated blindly:
  :class:`GreenApiSendUncertain` tells the caller to look it up first
  (:meth:`GreenApiClient.last_outgoing_messages`); reads are repeated;
- 401/403 (credentials), 466 (quota) and other 4xx are raised at once.

Requests are paced below Green API's documented per-method limits
(:data:`RATE_LIMITS`), so a backlog drains as fast as allowed and no faster.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from ..._errors import InvalidInput
from .._redact import redact
from ._errors import (
    GreenApiAuthError,
    GreenApiError,
    GreenApiQuotaExceeded,
    GreenApiRateLimited,
    GreenApiRejected,
    GreenApiSendUncertain,
    GreenApiUnavailable,
)

__all__ = [
    "RATE_LIMITS",
    "GreenApiClient",
    "OutgoingRecord",
    "RateLimiter",
    "Received",
]

log = logging.getLogger("bridge.greenapi")

RATE_LIMITS: Mapping[str, float] = {
    "sendmessage": 50, "sendfilebyurl": 50, "sendfilebyupload": 50,
    "receivenotification": 100, "deletenotification": 100,
    "readchat": 10, "sendtyping": 10,
    "getstateinstance": 1, "getsettings": 1, "setsettings": 1,
    "lastoutgoingmessages": 1, "lastincomingmessages": 1, "getchathistory": 1,
}  # fmt: skip
"""Requests per second per instance, from https://green-api.com/en/docs/api/ratelimiter
(method names in lower case; a method not listed gets :data:`DEFAULT_RATE`)."""

DEFAULT_RATE = 1.0
RATE_SAFETY = 0.9
"""Pace at 90 % of each documented limit: clocks and networks jitter, and a server
counting arrivals in a sliding second must never see one request too many."""

RECEIVE_MARGIN = 10.0
"""Seconds the HTTP read timeout of receiveNotification adds to ``receiveTimeout``."""

_TRANSIENT_400 = ("starting process", "try later")
"""400 answers that mean "not now" (the instance is restarting), not "never"."""

_SEND_RETRYABLE_5XX = frozenset({502, 503})
"""5xx answers to a send that come from in front of the service (it was not reached);
500 and 504 may follow the send itself, so they make the send uncertain."""


@dataclass(frozen=True, slots=True)
class Received:
    """One notification from ``receiveNotification``: delete it with ``receipt_id``."""

    receipt_id: int
    body: Any


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    """One entry of the journal of sent messages (``lastOutgoingMessages``)."""

    id_message: str
    chat_id: str
    text: str | None
    timestamp: int
    status: str | None
    send_by_api: bool


class RateLimiter:
    """Spaces requests per method at ``limit * safety`` per second; thread-safe.

    A caller reserves the next free slot under the lock and sleeps outside it,
    so concurrent callers queue up in order instead of bursting.
    """

    def __init__(self, limits: Mapping[str, float] = RATE_LIMITS, *,
                 default: float = DEFAULT_RATE, safety: float = RATE_SAFETY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = {k.lower(): v for k, v in limits.items()}
        self.default = default
        self.safety = safety
        self.clock = clock
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def interval(self, method: str) -> float:
        rate = self.limits.get(method.lower(), self.default)
        return 0.0 if rate <= 0 else 1.0 / (rate * self.safety)

    def reserve(self, method: str) -> float:
        """Take the method's next slot; return how long to wait for it."""
        key = method.lower()
        with self._lock:
            now = self.clock()
            at = max(now, self._next.get(key, now))
            self._next[key] = at + self.interval(key)
        return at - now


def _backoff(first: float, cap: float) -> Iterator[float]:
    delay = first
    while True:
        yield delay * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not security
        delay = min(delay * 2, cap)


def _server_says(response: httpx.Response, token: str) -> str:
    """What the body says, for an error message: JSON ``message``/``reason``, or the text
    (the server may echo the request path, token included: it is masked)."""
    try:
        doc = orjson.loads(response.content) if response.content else None
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict):
        text = str(doc.get("message") or doc.get("reason") or doc.get("error") or
                   orjson.dumps(doc).decode())
    elif response.content:
        text = response.content.decode("utf-8", "replace")
    else:
        text = "(empty body)"
    return redact(" ".join(text.replace(token, "***").split()))[:200]


class _Retry:
    """A failed attempt that may be repeated."""

    def __init__(self, error: GreenApiError) -> None:
        self.error = error


def _quota_error(method: str, response: httpx.Response, token: str) -> GreenApiQuotaExceeded:
    try:
        doc = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        doc = None
    kind, part = "method", None
    if isinstance(doc, dict):
        corr = doc.get("correspondentsStatus")
        if isinstance(corr, dict) and "EXCEEDED" in str(corr.get("status", "")):
            kind, part = "correspondents", corr
        elif isinstance(doc.get("invokeStatus"), dict):
            part = doc["invokeStatus"]
    used = part.get("used") if part else None
    total = part.get("total") if part else None
    desc = str(part.get("description")) if part and part.get("description") else None
    what = ("the limit of chats on this plan is reached" if kind == "correspondents"
            else f"the monthly quota of {part.get('method', method) if part else method} is spent")
    counts = f" ({used}/{total})" if isinstance(used, int) and isinstance(total, int) else ""
    return GreenApiQuotaExceeded(
        f"Green API {method}: HTTP 466, {what}{counts}", method=method, kind=kind,
        used=used if isinstance(used, int) else None,
        total=total if isinstance(total, int) else None,
        description=redact(desc.replace(token, "***"))[:300] if desc else None, body=doc)


class GreenApiClient:
    """A synchronous Green API client; safe to share between threads.

    Args:
        api_url: the instance's host from the console, e.g. ``https://7105.api.greenapi.com``.
        id_instance: the instance id (digits).
        token: the ``apiTokenInstance``.
        timeout: seconds for a request (connect, read, write); receiveNotification adds
            its long-poll time.
        retries: how many times a repeatable failure is retried before it is raised.
        retry_delay, retry_cap: the first backoff delay and its cap, in seconds.
        rate_limits: requests per second per method (default: Green API's documented ones);
            ``{}`` with ``default_rate=0`` disables pacing.
        transport: an httpx transport (tests reach the simulator without it; a mock
            transport only below the network edge).
    """

    def __init__(
        self,
        api_url: str,
        id_instance: int | str,
        token: str,
        *,
        timeout: float = 30.0,
        retries: int = 4,
        retry_delay: float = 0.5,
        retry_cap: float = 30.0,
        rate_limits: Mapping[str, float] = RATE_LIMITS,
        default_rate: float = DEFAULT_RATE,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not str(id_instance).isdigit():
            raise InvalidInput(f"the Green API instance id must be digits, not {id_instance!r}")
        if not token:
            raise InvalidInput("the Green API token is empty")
        parsed = urllib.parse.urlsplit(api_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise InvalidInput(f"the Green API URL must be http(s)://host, not {api_url!r}")
        self.api_url = api_url.rstrip("/")
        self.id_instance = str(id_instance)
        self._token = token
        self.timeout = timeout
        self.retries = retries
        self.retry_delay = retry_delay
        self.retry_cap = retry_cap
        self.limiter = RateLimiter(rate_limits, default=default_rate)
        self._cancel = threading.Event()
        self._http = httpx.Client(
            transport=transport, timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            headers={"User-Agent": "kami-bridge", "Accept": "application/json"},
            follow_redirects=False)

    def __repr__(self) -> str:
        return f"GreenApiClient({self.api_url!r}, {self.id_instance})"

    # -- plumbing --------------------------------------------------------------------

    def _url(self, method: str, extra: tuple[str, ...] = ()) -> str:
        parts = [urllib.parse.quote(self._token, safe=""), *(urllib.parse.quote(p, safe="")
                                                            for p in extra)]
        return f"{self.api_url}/waInstance{self.id_instance}/{method}/{'/'.join(parts)}"

    def _wait(self, seconds: float) -> bool:
        """Sleep (for pacing or backoff); True if the client was closed meanwhile."""
        if seconds <= 0:
            return self._cancel.is_set()
        return self._cancel.wait(seconds)

    def call(
        self,
        verb: str,
        method: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        extra: tuple[str, ...] = (),
        read_timeout: float | None = None,
        send: bool = False,
    ) -> Any:
        """Make one API call with pacing and retries; return the decoded JSON (None for
        ``null`` or an empty body).

        ``send=True`` marks a call that must not be repeated once it may have been
        performed (see the module docstring).

        Raises:
            GreenApiAuthError, GreenApiQuotaExceeded, GreenApiRejected: at once.
            GreenApiUnavailable (GreenApiRateLimited): after ``retries`` repeats.
            GreenApiSendUncertain: for a send whose outcome is unknown.
        """
        url = self._url(method, extra)
        timeout = None
        if read_timeout is not None:
            timeout = httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0),
                                    read=read_timeout)
        delays = _backoff(self.retry_delay, self.retry_cap)
        attempt = 0
        while True:
            attempt += 1
            if self._wait(self.limiter.reserve(method)):
                raise GreenApiUnavailable(f"Green API {method}: the client was closed",
                                          method=method)
            outcome: Any
            try:
                kwargs: dict[str, Any] = {"json": json, "params": params}
                if timeout is not None:
                    kwargs["timeout"] = timeout
                response = self._http.request(verb, url, **kwargs)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                outcome = _Retry(GreenApiUnavailable(
                    f"Green API {method}: cannot connect ({type(exc).__name__}: "
                    f"{redact(str(exc)) or 'no detail'})", method=method))
            except httpx.TransportError as exc:
                # The request went out (or partly): a timeout or a broken connection now
                # says nothing about whether the server acted on it.
                why = f"{type(exc).__name__}: {redact(str(exc)) or 'no detail'}"
                if send:
                    raise GreenApiSendUncertain(
                        f"Green API {method}: no answer after the request was sent ({why}); "
                        "it may have been performed", method=method) from None
                outcome = _Retry(GreenApiUnavailable(f"Green API {method}: {why}",
                                                     method=method))
            except RuntimeError as exc:  # the client was closed from another thread
                raise GreenApiUnavailable(f"Green API {method}: {exc}", method=method) from None
            else:
                outcome = self._interpret(method, response, send)
            if not isinstance(outcome, _Retry):
                return outcome
            if attempt > self.retries:
                raise outcome.error
            delay = next(delays)
            log.debug("greenapi.retry method=%s attempt=%d delay=%.2fs error=%s", method,
                      attempt, delay, outcome.error)
            if self._wait(delay):
                raise outcome.error

    def _interpret(self, method: str, response: httpx.Response, send: bool) -> Any:
        status = response.status_code
        if status == 200:
            if not response.content.strip():
                return None
            try:
                return orjson.loads(response.content)
            except orjson.JSONDecodeError:
                why = f"Green API {method}: HTTP 200 with a body that is not JSON " \
                      f"({_server_says(response, self._token)})"
                if send:
                    raise GreenApiSendUncertain(why, method=method, status=status) from None
                return _Retry(GreenApiUnavailable(why, method=method, status=status))
        says = _server_says(response, self._token)
        if status == 401:
            raise GreenApiAuthError(
                f"Green API refused the token (HTTP 401 on {method}): check the "
                "green-api-token credential", method=method, status=status)
        if status == 403:
            raise GreenApiAuthError(
                f"Green API refused the instance (HTTP 403 on {method}): check the instance "
                "id and the API URL", method=method, status=status)
        if status == 466:
            raise _quota_error(method, response, self._token)
        if status == 429:
            return _Retry(GreenApiRateLimited(
                f"Green API {method}: HTTP 429, over the rate limit", method=method,
                status=status))
        if status == 400 and any(marker in says.lower() for marker in _TRANSIENT_400):
            return _Retry(GreenApiUnavailable(f"Green API {method}: HTTP 400, {says}",
                                              method=method, status=status))
        if status >= 500 or status == 499:
            error = f"Green API {method}: HTTP {status}, {says}"
            if send and status not in _SEND_RETRYABLE_5XX:
                raise GreenApiSendUncertain(f"{error}; the message may have been sent",
                                            method=method, status=status)
            return _Retry(GreenApiUnavailable(error, method=method, status=status))
        if status == 404:
            raise GreenApiRejected(f"Green API has no method {method} (HTTP 404): check the "
                                   "API URL", method=method, status=status)
        raise GreenApiRejected(f"Green API {method}: HTTP {status}, {says}", method=method,
                               status=status)

    def close(self) -> None:
        """Stop waiting (pacing, backoff) and close the connections."""
        self._cancel.set()
        self._http.close()

    def __enter__(self) -> GreenApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- methods -------------------------------------------------------------------------

    def send_message(self, chat_id: str, message: str, *, quoted_message_id: str | None = None,
                     link_preview: bool | None = None) -> str:
        """Send a text; return its ``idMessage``.

        A 200 only means Green API queued it: a chat without WhatsApp, or an
        instance that is not authorised, shows up later as an
        ``outgoingMessageStatus`` of ``noAccount``/``failed``.
        """
        body: dict[str, Any] = {"chatId": chat_id, "message": message}
        if quoted_message_id:
            body["quotedMessageId"] = quoted_message_id
        if link_preview is not None:
            body["linkPreview"] = link_preview
        doc = self.call("POST", "sendMessage", json=body, send=True)
        mid = doc.get("idMessage") if isinstance(doc, dict) else None
        if not isinstance(mid, str) or not mid:
            raise GreenApiSendUncertain("Green API sendMessage: answered 200 without an "
                                        "idMessage; the message may have been sent",
                                        method="sendMessage", status=200)
        return mid

    def receive_notification(self, receive_timeout: int = 5) -> Received | None:
        """The head of the notification queue, waiting up to ``receive_timeout`` (5 to 60) s.

        The same notification comes back until it is deleted. None: nothing arrived.
        """
        wait = max(5, min(60, int(receive_timeout)))
        doc = self.call("GET", "receiveNotification", params={"receiveTimeout": wait},
                        read_timeout=wait + RECEIVE_MARGIN)
        if doc is None or doc == {}:
            # `null` on timeout; an empty object was seen with items queued
            # (green-api/issues#1115): either way, ask again.
            return None
        receipt = doc.get("receiptId") if isinstance(doc, dict) else None
        if isinstance(receipt, bool) or not isinstance(receipt, int):
            raise GreenApiUnavailable("Green API receiveNotification: answered without a "
                                      "receiptId", method="receiveNotification", status=200)
        return Received(receipt, doc.get("body"))

    def delete_notification(self, receipt_id: int) -> bool:
        """Remove a notification from the queue; False if it was already gone."""
        doc = self.call("DELETE", "deleteNotification", extra=(str(int(receipt_id)),))
        return bool(doc.get("result")) if isinstance(doc, dict) else False

    def get_state_instance(self) -> str | None:
        """``authorized``, ``notAuthorized``, ``blocked``, ``sleepMode``, ``starting``,
        ``yellowCard``...; None while the instance is being created."""
        doc = self.call("GET", "getStateInstance")
        state = doc.get("stateInstance") if isinstance(doc, dict) else None
        return state if isinstance(state, str) else None

    def get_settings(self) -> dict[str, Any]:
        doc = self.call("GET", "getSettings")
        return doc if isinstance(doc, dict) else {}

    def last_outgoing_messages(self, minutes: int = 60) -> list[OutgoingRecord]:
        """The messages the instance sent in the last ``minutes`` (newest first)."""
        doc = self.call("GET", "lastOutgoingMessages", params={"minutes": max(1, int(minutes))})
        out: list[OutgoingRecord] = []
        for item in doc if isinstance(doc, list) else []:
            if not isinstance(item, dict) or not isinstance(item.get("idMessage"), str):
                continue
            text = item.get("textMessage")
            if not isinstance(text, str):
                ext = item.get("extendedTextMessage")
                text = ext.get("text") if isinstance(ext, dict) else None
            ts = item.get("timestamp")
            out.append(OutgoingRecord(item["idMessage"], str(item.get("chatId", "")),
                                      text if isinstance(text, str) else None,
                                      ts if isinstance(ts, int) else 0,
                                      item.get("statusMessage"), bool(item.get("sendByApi"))))
        return out
