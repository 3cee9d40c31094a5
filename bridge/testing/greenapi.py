"""A local Green API (WhatsApp over HTTP) for tests, the demo and trying Kami out.

It speaks the real wire format of the methods the agents use (see
../shared/reference/green-api.md §6): ``/waInstance{id}/{method}/{token}`` routes
(method names in any case; a wrong token is 401, a wrong instance 403, an
unknown method 404), ``sendMessage`` validation with the real 400 body, a FIFO
notification queue whose head ``receiveNotification`` long-polls and returns
until ``deleteNotification`` removes it (JSON ``null`` on timeout),
``getStateInstance``, ``getSettings``/``setSettings`` with ``"yes"``/``"no"``
flags, ``readChat``, ``sendTyping``, ``sendFileByUrl``, ``lastOutgoingMessages``,
and webhook pushes with ``Authorization: Bearer`` re-sent until answered 200.

The *phone* side injects what people send (:meth:`GreenApiSimulator.send_text`
and friends build real notification bodies) and reads what the instance sent
(:attr:`GreenApiSimulator.sent`). Faults: any status for the next calls of a
method (429, 466 with both bodies, 500/502, 400 "instance in starting
process", non-JSON bodies), slow answers, answers held past the client's
timeout after the send was made, an outage, a refused connection, chats
whose messages fail later (``noAccount``/``failed``), per-method rate limits.

Run it by hand (then point Kami at it, docs/kami.md)::

    python -m bridge.testing.greenapi --port 8095 --owner 972501234567@c.us
"""

from __future__ import annotations

import argparse
import collections
import itertools
import re
import secrets
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

__all__ = ["Call", "GreenApiSimulator", "SentMessage", "incoming_body", "main"]

CHAT_ID = re.compile(r"^(?:\d+@c\.us|[\d-]+@g\.us|\d+@lid)$")
PATH = re.compile(r"^/waInstance(\d+)/([A-Za-z]+)/([^/?]+)(?:/([^/?]*))?/?$")
LIMITS = {"sendmessage": 50, "sendfilebyurl": 50, "receivenotification": 100,
          "deletenotification": 100, "readchat": 10, "getstateinstance": 1,
          "getsettings": 1, "setsettings": 1, "lastoutgoingmessages": 1}
"""The documented per-second limits, enforced when ``rate_limits=True``."""

VERBS = {"sendmessage": "POST", "sendfilebyurl": "POST", "receivenotification": "GET",
         "deletenotification": "DELETE", "getstateinstance": "GET", "getsettings": "GET",
         "setsettings": "POST", "readchat": "POST", "sendtyping": "POST",
         "lastoutgoingmessages": "GET"}

DEFAULT_SETTINGS: dict[str, Any] = {
    "webhookUrl": "", "webhookUrlToken": "", "delaySendMessagesMilliseconds": 500,
    "markIncomingMessagesReaded": "no", "markIncomingMessagesReadedOnReply": "no",
    "outgoingWebhook": "yes", "outgoingMessageWebhook": "no", "outgoingAPIMessageWebhook": "no",
    "incomingWebhook": "yes", "deviceWebhook": "no", "stateWebhook": "yes",
    "keepOnlineStatus": "no", "pollMessageWebhook": "no", "incomingBlockWebhook": "no",
    "incomingCallWebhook": "no", "editedMessageWebhook": "no", "deletedMessageWebhook": "no",
}

_PLAIN = {401: b"Unauthorized", 403: b"Forbidden", 404: b"Not Found",
          429: b"Too Many Requests", 500: b"Internal Server Error",
          502: b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad "
               b"Gateway</h1></center><hr><center>nginx</center></body></html>",
          503: b"Service Unavailable", 504: b"Gateway Timeout"}


def _message_id() -> str:
    return "3EB0" + secrets.token_hex(8).upper()


def _utf16(text: str) -> int:
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def quota_body(kind: str = "method", method: str = "sendMessage") -> dict[str, Any]:
    """A 466 body as Green API documents it: a method's monthly quota, or the chat limit."""
    if kind == "correspondents":
        return {"invokeStatus": {"method": method.lower(), "used": 12, "total": 1000,
                                 "status": "QUOTE_ALLOWED", "description": ""},
                "correspondentsStatus": {
                    "method": "correspondents", "used": 3, "total": 3,
                    "status": "CORRESPONDENTS_QUOTE_EXCEEDED",
                    "description": "Monthly quota has been exceeded. You can only send or "
                                   "receive messages from these numbers: 972500000001, "
                                   "972500000002, 972500000003"}}
    return {"invokeStatus": {"method": method.lower(), "used": 100, "total": 100,
                             "status": "QUOTE_EXCEEDED",
                             "description": "Monthly quota has been exceeded. To increase "
                                            "the quota, upgrade to a business plan"}}


def incoming_body(
    id_instance: int,
    wid: str,
    chat_id: str,
    text: str | None,
    *,
    id_message: str | None = None,
    sender: str | None = None,
    sender_name: str = "",
    chat_name: str = "",
    kind: str = "text",
    quoted_id: str | None = None,
    quoted_text: str = "",
    timestamp: int | None = None,
) -> dict[str, Any]:
    """An ``incomingMessageReceived`` body as Green API sends it.

    ``kind``: ``text``, ``extended`` (extendedTextMessage, also used for plain
    text), ``quoted`` (a reply: extendedTextMessage plus ``quotedMessage``),
    ``quoted-legacy`` (``typeMessage: quotedMessage``), ``image`` (a caption),
    ``sticker`` (no text).
    """
    sender = sender or chat_id
    quoted = {"stanzaId": quoted_id or _message_id(), "participant": wid,
              "typeMessage": "textMessage", "textMessage": quoted_text}
    if kind == "text":
        data: dict[str, Any] = {"typeMessage": "textMessage",
                                "textMessageData": {"textMessage": text}}
    elif kind in ("extended", "quoted"):
        data = {"typeMessage": "extendedTextMessage", "extendedTextMessageData": {
            "text": text, "description": "", "title": "", "previewType": "None",
            "jpegThumbnail": "", "forwardingScore": 0, "isForwarded": False}}
        if kind == "quoted":
            data["quotedMessage"] = quoted
    elif kind == "quoted-legacy":
        data = {"typeMessage": "quotedMessage", "extendedTextMessageData": {
            "text": text, "stanzaId": quoted["stanzaId"], "participant": wid},
            "quotedMessage": quoted}
    elif kind == "image":
        data = {"typeMessage": "imageMessage", "fileMessageData": {
            "downloadUrl": "https://sw-media.storage.greenapi.net/1101/img.jpg",
            "caption": text or "", "fileName": "img.jpg", "jpegThumbnail": "",
            "mimeType": "image/jpeg", "isForwarded": False, "forwardingScore": 0}}
    elif kind == "sticker":
        data = {"typeMessage": "stickerMessage", "fileMessageData": {
            "downloadUrl": "https://sw-media.storage.greenapi.net/1101/s.webp",
            "mimeType": "image/webp", "isAnimated": False}}
    else:
        raise ValueError(f"unknown message kind {kind!r}")
    sender_data = {"chatId": chat_id, "chatName": chat_name, "sender": sender,
                   "senderName": sender_name}
    if sender_name:
        sender_data["senderContactName"] = sender_name
    return {"typeWebhook": "incomingMessageReceived",
            "instanceData": {"idInstance": id_instance, "wid": wid, "typeInstance": "whatsapp"},
            "timestamp": int(time.time()) if timestamp is None else timestamp,
            "idMessage": id_message or _message_id(), "senderData": sender_data,
            "messageData": data}


@dataclass(frozen=True)
class SentMessage:
    """What the instance sent, as the phone sees it."""

    chat_id: str
    message: str
    id_message: str
    at: float
    quoted_message_id: str | None = None
    body: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Call:
    """One API request the simulator answered."""

    method: str
    verb: str
    at: float
    status: int


@dataclass
class _Fault:
    status: int
    body: bytes | None
    perform: bool
    content_type: str


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        with self._connections_lock:
            self.connections.add(sock)
        return sock, address

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Cut every open connection, kept-alive ones included (a host that went away)."""
        with self._connections_lock:
            connections = list(self.connections)
        for sock in connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                continue

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (a timeout test, a killed agent) is not the server's error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class GreenApiSimulator:
    """Serves one Green API instance on ``host`` (127.0.0.1 unless told otherwise).

    Args:
        id_instance, token: the credentials clients must use (a random token by default).
        port: 0 picks a free port (kept across :meth:`refuse`/:meth:`accept`).
        rate_limits: answer 429 when a method goes over its documented limit.
        webhook_retry: seconds before a webhook that was not answered 200 is re-sent
            (the real service waits 60).
    """

    def __init__(self, *, id_instance: int = 1101000001, token: str | None = None,
                 host: str = "127.0.0.1", port: int = 0, wid: str = "972500000000@c.us",
                 rate_limits: bool = False, webhook_retry: float = 60.0) -> None:
        self.id_instance = id_instance
        self.token = token or secrets.token_hex(25)
        self.host = host
        self.port = port
        self.wid = wid
        self.rate_limits = rate_limits
        self.webhook_retry = webhook_retry
        self.settings: dict[str, Any] = {**DEFAULT_SETTINGS, "wid": wid}
        self.state_instance = "authorized"
        self.sent: list[SentMessage] = []
        self.queued: list[SentMessage] = []
        """Accepted while the instance was not authorised: sent once it is."""
        self.calls: list[Call] = []
        self.served: dict[int, float] = {}
        """receiptId -> when it was first handed to a client."""
        self.webhook_posts: list[dict[str, Any]] = []
        self.rate_limited = 0
        self.polling = 0
        """Long-polls waiting right now."""
        self._queue: collections.OrderedDict[int, dict[str, Any]] = collections.OrderedDict()
        self._receipts = itertools.count(1)
        self._cond = threading.Condition()
        self._faults: dict[str, list[_Fault]] = {}
        self._delays: dict[str, list[float]] = {}
        self._stalls: dict[str, list[float]] = {}
        self.stalled = 0
        """Requests being held by :meth:`stall` right now."""
        self._outage: int | None = None
        self._failing_chats: dict[str, tuple[str, str]] = {}
        self._windows: dict[str, collections.deque[float]] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._pusher: threading.Thread | None = None
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> GreenApiSimulator:
        self._stopping = False
        self._server = _Server((self.host, self.port), self._handler_class())
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True,
                                        name="greenapi-sim")
        self._thread.start()
        if self._pusher is None:
            self._pusher = threading.Thread(target=self._push_webhooks, daemon=True,
                                            name="greenapi-sim-webhooks")
            self._pusher.start()
        return self

    def _close_server(self) -> None:
        with self._cond:
            self._cond.notify_all()  # long-polls answer null at once
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server.drop_connections()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def stop(self) -> None:
        self._stopping = True
        self._close_server()
        if self._pusher is not None:
            with self._cond:
                self._cond.notify_all()
            self._pusher.join(timeout=5)
            self._pusher = None

    def refuse(self) -> None:
        """Stop listening: connections are refused until :meth:`accept` (a total outage)."""
        self._stopping = True
        self._close_server()

    def accept(self) -> None:
        """Listen again, on the same port, with the queue and history intact."""
        self.start()

    def __enter__(self) -> GreenApiSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the phone ------------------------------------------------------------------------------

    def inject(self, body: dict[str, Any] | Any) -> int:
        """Queue any notification body as is; return its receiptId."""
        with self._cond:
            receipt = next(self._receipts)
            self._queue[receipt] = body
            self._cond.notify_all()
        return receipt

    def send_text(self, chat_id: str, text: str | None, **kw: Any) -> str:
        """Someone writes to the instance; returns the message's idMessage.

        Keywords as for :func:`incoming_body` (``sender``, ``kind``, ``quoted_id``...).
        """
        body = incoming_body(self.id_instance, self.wid, chat_id, text, **kw)
        self.inject(body)
        return str(body["idMessage"])

    def send_image(self, chat_id: str, caption: str, **kw: Any) -> str:
        return self.send_text(chat_id, caption, kind="image", **kw)

    def set_state(self, state: str) -> None:
        """Change the instance's state (and notify, if ``stateWebhook`` is on).
        Becoming ``authorized`` sends what was queued meanwhile."""
        with self._cond:
            self.state_instance = state
            if state == "authorized":
                for msg in self.queued:
                    self._deliver(msg)
                self.queued.clear()
        if self.settings.get("stateWebhook") == "yes":
            self.inject({"typeWebhook": "stateInstanceChanged", "instanceData": self._instance(),
                         "timestamp": int(time.time()), "stateInstance": state})

    def quota_notice(self) -> int:
        """Queue a ``quotaExceeded`` notification."""
        return self.inject({"typeWebhook": "quotaExceeded", "instanceData": self._instance(),
                            "timestamp": int(time.time()),
                            "quotaData": {"method": "sendMessage", "used": 100, "total": 100,
                                          "status": "QUOTA_EXCEEDED",
                                          "description": "Monthly quota has been exceeded"}})

    def fail_chat(self, chat_id: str, status: str = "noAccount",
                  description: str = "SWE004: 1000") -> None:
        """Messages to ``chat_id`` are accepted (200) and then fail with ``status``."""
        self._failing_chats[chat_id] = (status, description)

    def pending(self) -> list[dict[str, Any]]:
        """The notification bodies still in the queue, oldest first."""
        with self._cond:
            return list(self._queue.values())

    def texts(self, chat_id: str | None = None) -> list[str]:
        return [m.message for m in list(self.sent) if chat_id in (None, m.chat_id)]

    def wait_sent(self, count: int, timeout: float = 10.0,
                  chat_id: str | None = None) -> list[SentMessage]:
        """Wait until at least ``count`` messages were sent (to ``chat_id``); return them."""
        deadline = time.monotonic() + timeout
        while True:
            got = [m for m in list(self.sent) if chat_id in (None, m.chat_id)]
            if len(got) >= count:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(got)} messages sent within {timeout}s, expected "
                                     f"{count}: {[m.message[:60] for m in got]}")
            time.sleep(0.005)

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in list(self.calls) if c.method == method.lower()]

    # -- faults ----------------------------------------------------------------------------------

    def fail(self, method: str, status: int, *, times: int = 1, body: bytes | Any = None,
             perform: bool = False, content_type: str | None = None) -> None:
        """Answer the next ``times`` calls of ``method`` (``"*"``: any) with ``status``.

        ``body``: bytes as they are, anything else as JSON (default: what Green API
        answers with that status). ``perform``: do the work first (a send that
        happened, then a 500 or a garbled 200).
        """
        if body is None:
            raw = _PLAIN.get(status, b"")
            ctype = content_type or ("text/html" if status == 502 else "text/plain")
        elif isinstance(body, bytes):
            raw, ctype = body, content_type or "text/plain"
        else:
            raw, ctype = orjson.dumps(body), content_type or "application/json"
        with self._cond:
            self._faults.setdefault(method.lower(), []).extend(
                _Fault(status, raw, perform, ctype) for _ in range(times))

    def fail_quota(self, method: str = "sendMessage", kind: str = "method",
                   times: int = 1) -> None:
        """466 with the documented body for a spent method quota, or the chat limit."""
        self.fail(method, 466, times=times, body=quota_body(kind, method))

    def delay(self, method: str, seconds: float, *, times: int = 1) -> None:
        """Hold the next ``times`` answers of ``method`` for ``seconds``, *after* doing the
        work: a send that outlives the client's timeout has still been sent."""
        with self._cond:
            self._delays.setdefault(method.lower(), []).extend([seconds] * times)

    def stall(self, method: str, seconds: float, *, times: int = 1) -> None:
        """Hold the next ``times`` calls of ``method`` for ``seconds`` *before* doing anything
        (a hung server: a client that gives up or dies meanwhile changed nothing). The
        hold ends early when the simulator stops."""
        with self._cond:
            self._stalls.setdefault(method.lower(), []).extend([seconds] * times)

    def outage(self, status: int | None = 502) -> None:
        """Answer every request with ``status`` (a gateway error page) until
        ``outage(None)``."""
        self._outage = status

    # -- serving ---------------------------------------------------------------------------------

    def _instance(self) -> dict[str, Any]:
        return {"idInstance": self.id_instance, "wid": self.wid, "typeInstance": "whatsapp"}

    def _take(self, table: dict[str, list[Any]], method: str) -> Any:
        with self._cond:
            for key in (method, "*"):
                items = table.get(key)
                if items:
                    return items.pop(0)
        return None

    def _over_limit(self, method: str) -> bool:
        limit = LIMITS.get(method, 10)
        now = time.monotonic()
        with self._cond:
            window = self._windows.setdefault(method, collections.deque())
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= limit:
                self.rate_limited += 1
                return True
            window.append(now)
        return False

    def _validation(self, path: str, detail: str) -> tuple[int, bytes, str]:
        doc = {"statusCode": 400, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z",
                                                             time.gmtime()),
               "path": path, "message": f"Validation failed. Details: {detail}"}
        return 400, orjson.dumps(doc), "application/json"

    def _deliver(self, msg: SentMessage) -> None:
        """The message reaches WhatsApp: the phone sees it, statuses follow."""
        self.sent.append(msg)
        failing = self._failing_chats.get(msg.chat_id)
        statuses: list[tuple[str, str | None]] = []
        if failing is not None:
            statuses.append(failing)  # failed/noAccount cannot be switched off
        elif self.settings.get("outgoingWebhook") == "yes":
            statuses += [("sent", None), ("delivered", None)]
        for status, description in statuses:
            body: dict[str, Any] = {"typeWebhook": "outgoingMessageStatus",
                                    "chatId": msg.chat_id, "instanceData": self._instance(),
                                    "timestamp": int(time.time()), "idMessage": msg.id_message,
                                    "status": status, "sendByApi": True}
            if description:
                body["description"] = description
            self.inject(body)

    def _send(self, path: str, body: Any, at: float, *, caption_key: str = "message"
              ) -> tuple[int, bytes, str]:
        if not isinstance(body, dict):
            return self._validation(path, "body must be a JSON object")
        chat = body.get("chatId")
        if chat is None:
            return self._validation(path, "'chatId' is required")
        if not isinstance(chat, str) or not CHAT_ID.match(chat):
            return self._validation(path, "'chatId' must be a valid chat id")
        text = body.get(caption_key)
        if caption_key == "message":
            if not isinstance(text, str) or not text:
                return self._validation(path, "'message' is required")
            if _utf16(text) > 20000:
                return self._validation(path, "'message' length must be less than or equal "
                                              "to 20000 characters long")
        mid = _message_id()
        msg = SentMessage(chat, str(text or ""), mid, at, body.get("quotedMessageId"), body)
        with self._cond:
            if self.state_instance == "authorized":
                self._deliver(msg)
            else:
                self.queued.append(msg)  # 200 all the same: it waits up to 24 h
        return 200, orjson.dumps({"idMessage": mid}), "application/json"

    def _receive(self, params: dict[str, str]) -> tuple[int, bytes, str]:
        if self.settings.get("webhookUrl"):
            return 400, b"webhookUrl is set: notifications are sent to it", "text/plain"
        try:
            wait = int(params.get("receiveTimeout", "5"))
        except ValueError:
            wait = 5
        deadline = time.monotonic() + max(5, min(60, wait))
        with self._cond:
            self.polling += 1
            while not self._queue and not self._stopping:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            self.polling -= 1
            if not self._queue or self._stopping:
                return 200, b"null", "application/json"
            receipt, body = next(iter(self._queue.items()))
            self.served.setdefault(receipt, time.time())
        return 200, orjson.dumps({"receiptId": receipt, "body": body}), "application/json"

    def _outgoing_journal(self, params: dict[str, str]) -> bytes:
        try:
            minutes = int(params.get("minutes", "1440"))
        except ValueError:
            minutes = 1440
        since = time.time() - minutes * 60
        items = [{"type": "outgoing", "idMessage": m.id_message, "timestamp": int(m.at),
                  "typeMessage": "textMessage", "chatId": m.chat_id, "textMessage": m.message,
                  "statusMessage": "delivered", "sendByApi": True}
                 for m in reversed(list(self.sent)) if m.at >= since]
        return orjson.dumps(items)

    def _answer(self, verb: str, path: str, query: str, raw: bytes) -> tuple[int, bytes, str]:
        at = time.time()
        if self._outage is not None:  # a gateway in front answers before anything else
            return self._outage, _PLAIN.get(self._outage, b""), "text/html"
        match = PATH.match(path)
        if match is None:
            return 404, _PLAIN[404], "text/plain"
        instance, method_name, token, extra = match.groups()
        method = method_name.lower()
        if int(instance) != self.id_instance:
            return 403, _PLAIN[403], "text/plain"
        if token != self.token:
            return 401, _PLAIN[401], "text/plain"
        if VERBS.get(method) != verb:
            return 404, _PLAIN[404], "text/plain"
        if self.rate_limits and self._over_limit(method):
            return 429, _PLAIN[429], "text/plain"
        fault: _Fault | None = self._take(self._faults, method)
        if fault is not None and not fault.perform:
            return fault.status, fault.body or b"", fault.content_type
        params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
        body: Any = None
        if raw:
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                return 400, b"Unexpected token in JSON at position 0", "text/plain"
        result = self._method(method, path, params, extra, body, at)
        if fault is not None:
            return fault.status, fault.body or b"", fault.content_type
        return result

    def _method(self, method: str, path: str, params: dict[str, str], extra: str | None,
                body: Any, at: float) -> tuple[int, bytes, str]:
        json = "application/json"
        if method == "sendmessage":
            return self._send(path, body, at)
        if method == "sendfilebyurl":
            if not isinstance(body, dict) or not body.get("urlFile") or not body.get("fileName"):
                return self._validation(path, "'urlFile' and 'fileName' are required")
            return self._send(path, body, at, caption_key="caption")
        if method == "receivenotification":
            return self._receive(params)
        if method == "deletenotification":
            with self._cond:
                try:
                    found = self._queue.pop(int(extra or ""), None) is not None
                except ValueError:
                    found = False
            return 200, orjson.dumps({"result": found, "reason": "" if found else
                                      "notification not found"}), json
        if method == "getstateinstance":
            return 200, orjson.dumps({"stateInstance": self.state_instance}), json
        if method == "getsettings":
            return 200, orjson.dumps(self.settings), json
        if method == "setsettings":
            if not isinstance(body, dict) or not body:
                return self._validation(path, "at least one setting is required")
            self.settings.update(body)
            with self._cond:
                self._cond.notify_all()
            return 200, orjson.dumps({"saveSettings": True}), json
        if method == "readchat":
            if not isinstance(body, dict) or not isinstance(body.get("chatId"), str):
                return self._validation(path, "'chatId' is required")
            return 200, orjson.dumps({"setRead": True}), json
        if method == "sendtyping":
            return 200, b"", json
        if method == "lastoutgoingmessages":
            return 200, self._outgoing_journal(params), json
        return 404, _PLAIN[404], "text/plain"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: object) -> None:
                return

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                path, _, query = self.path.partition("?")
                match = PATH.match(path)
                method = match.group(2).lower() if match else path
                stall = outer._take(outer._stalls, method)
                if stall:
                    with outer._cond:
                        outer.stalled += 1
                        outer._cond.wait_for(lambda: outer._stopping, stall)
                        outer.stalled -= 1
                status, data, ctype = outer._answer(self.command, path, query, raw)
                outer.calls.append(Call(method, self.command, time.time(), status))
                hold = outer._take(outer._delays, method)
                if hold:
                    time.sleep(hold)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client gave up waiting (a timeout test)

            do_GET = do_POST = do_DELETE = _serve

        return Handler

    # -- webhook mode ------------------------------------------------------------------------------

    def _push_webhooks(self) -> None:
        import httpx

        with httpx.Client(timeout=180) as client:
            while not self._stopping:
                with self._cond:
                    url = self.settings.get("webhookUrl")
                    if not url or not self._queue:
                        self._cond.wait(0.1)
                        continue
                    receipt, body = next(iter(self._queue.items()))
                token = self.settings.get("webhookUrlToken") or ""
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                try:
                    status = client.post(url, content=orjson.dumps(body), headers={
                        **headers, "Content-Type": "application/json"}).status_code
                except httpx.HTTPError:
                    status = 0
                self.webhook_posts.append({"receipt": receipt, "status": status})
                if status == 200:
                    with self._cond:
                        self._queue.pop(receipt, None)
                    continue
                with self._cond:  # the real service waits 60 s, then sends the same again
                    self._cond.wait(self.webhook_retry)


def main(argv: list[str] | None = None, *, stdin: Any = None,
         echo: Callable[[str], None] | None = None) -> int:
    """A simulator on a fixed port with a phone on the terminal: each line typed is a
    message from the owner; what the instance sends is printed."""
    parser = argparse.ArgumentParser(prog="python -m bridge.testing.greenapi",
                                     description="A local Green API with a phone on stdin.")
    parser.add_argument("--port", type=int, default=8095)
    parser.add_argument("--id-instance", type=int, default=1101000001)
    parser.add_argument("--token", default=None,
                        help="the token clients must use (default: printed random)")
    parser.add_argument("--owner", default="972500000001@c.us",
                        help="the chat id the typed lines come from")
    args = parser.parse_args(argv)
    out = echo or (lambda line: print(line, flush=True))
    sim = GreenApiSimulator(id_instance=args.id_instance, token=args.token, port=args.port)
    sim.start()
    out(f"Green API simulator on {sim.api_url}: id_instance {sim.id_instance}, token "
        f"{sim.token}\nType a message from {args.owner}; Ctrl-D ends.")
    shown = 0
    stop = threading.Event()

    def show() -> None:
        nonlocal shown
        while not stop.wait(0.05):
            for msg in sim.sent[shown:]:
                out(f"<- {msg.chat_id}: {msg.message}")
                shown += 1

    printer = threading.Thread(target=show, daemon=True)
    printer.start()
    try:
        for line in stdin or sys.stdin:
            if line.strip():
                sim.send_text(args.owner, line.rstrip("\n"))
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        printer.join(timeout=1)
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
