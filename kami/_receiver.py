"""Receiving from Green API: long-polling in a thread of its own, or a webhook endpoint.

Both hand each notification to the same :class:`~kami._journal.Journal` and
acknowledge it only after the journal returned (the notification's effects
are on the bridge):

- polling deletes it (``deleteNotification``); until then Green API hands out
  the same notification again, so while the bridge is unreachable nothing is
  received at all and everything waits in Green API's queue (kept 24 h);
- the webhook answers 200; a 503 (bridge unreachable) makes Green API send the
  same notification again a minute later, in order.

A notification whose handling fails for another reason three times in a row
is written to ``dead-letters.jsonl`` in Kami's state directory and deleted: the
queue is strictly FIFO, and one poison item must not hold back every message
behind it.
"""

from __future__ import annotations

import hmac
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from bridge import BridgeError, BridgeUnavailable
from bridge.format import format_ts
from bridge.runtime.greenapi import (
    GreenApiAuthError,
    GreenApiClient,
    GreenApiError,
    GreenApiRejected,
    Received,
)

from ._context import Context
from ._journal import Journal

__all__ = ["MAX_ATTEMPTS", "Poller", "WebhookServer"]

MAX_ATTEMPTS = 3
"""Failed attempts at one notification (for reasons other than the bridge) before it is
dead-lettered."""

MAX_WEBHOOK_BODY = 1 << 20


class _Backoff:
    def __init__(self, first: float, cap: float) -> None:
        self.first, self.cap, self.delay = first, cap, 0.0

    def next(self) -> float:
        self.delay = self.first if self.delay == 0 else min(self.delay * 2, self.cap)
        return self.delay

    def reset(self) -> None:
        self.delay = 0.0


class _Handling:
    """What both receivers share: handle one body under the agent's receive lock."""

    def __init__(self, agent: Context, journal: Journal, lock: threading.Lock) -> None:
        self.agent = agent
        self.journal = journal
        self.receive_lock = lock
        """Held while one notification is handled and acknowledged."""
        self.log = agent.log
        self.attempts: dict[str, int] = {}

    def handle(self, key: str, body: Any) -> str | None:
        """Journal ``body``; the outcome, or None when it must be offered again later.

        Raises nothing: a bridge problem returns None (keep it), and a repeated
        unexpected failure dead-letters it (returns "dead-letter").
        """
        try:
            outcome = self.journal.handle(body)
        except (BridgeError, OSError) as exc:
            self.agent.on_held(str(exc))
            return None
        except Exception as exc:  # a bug must not stop the queue for good: dead-letter
            n = self.attempts.get(key, 0) + 1
            self.attempts[key] = n
            self.log.exception("notification.failed", receipt=key, attempt=n)
            self.agent.record_error(f"handling a notification: {type(exc).__name__}: {exc}")
            if n < MAX_ATTEMPTS:
                return None
            self.dead_letter(key, body, f"{type(exc).__name__}: {exc}")
            outcome = "dead-letter"
        self.attempts.pop(key, None)
        self.agent.on_held(None)
        return outcome

    def dead_letter(self, key: str, body: Any, error: str) -> None:
        path = self.agent.settings.state_path("dead-letters.jsonl")
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, orjson.dumps({"ts": format_ts(time.time()), "receipt": key,
                                           "error": error, "body": body},
                                          option=orjson.OPT_APPEND_NEWLINE))
            finally:
                os.close(fd)
        self.log.error("notification.dead_letter", receipt=key, error=error,
                       file=str(path) if path else None)


class Poller(_Handling):
    """Long-polls ``receiveNotification`` until stopped."""

    def __init__(self, agent: Context, *, journal: Journal, client: GreenApiClient,
                 lock: threading.Lock) -> None:
        super().__init__(agent, journal, lock)
        self.client = client
        self.settings = agent.settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="greenapi-receive", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 0.2) -> None:
        """Stop after the notification in hand (if any) is handled and deleted. A long-poll
        in flight is not waited for (the thread is a daemon; what it may still receive is
        not deleted, so it comes back after the restart)."""
        self._stop.set()
        self.client.close()  # ends backoff waits; a long-poll in flight is abandoned
        with self.receive_lock:
            pass
        self._thread.join(timeout)

    def _check_settings(self) -> None:
        """Once at start: the instance must not push to a webhook while we poll."""
        try:
            settings = self.client.get_settings()
        except GreenApiError as exc:
            self.log.warning("greenapi.settings_unknown", error=str(exc))
            return
        if settings.get("webhookUrl"):
            self.agent.set_condition("receive", "the instance sends notifications to a "
                                     "webhook (webhookUrl is set): clear it in the Green API "
                                     "console, or set kami.receive = \"webhook\"")
        if settings.get("incomingWebhook") == "no":
            self.log.warning("greenapi.incoming_off", hint="incomingWebhook is \"no\": "
                             "incoming messages will not arrive; turn it on in the console")

    def _run(self) -> None:
        agent = self.agent
        backoff = _Backoff(self.settings.retry_delay, self.settings.backoff_cap)
        next_state = 0.0
        checked = False
        while not self._stop.is_set():
            if agent.bridge is None:
                # Nothing can be persisted: receive nothing, so nothing is acknowledged.
                agent.on_held("the bridge is not reachable")
                self._stop.wait(1.0)
                continue
            try:
                if not checked:
                    self._check_settings()
                    checked = True
                if time.monotonic() >= next_state:
                    next_state = time.monotonic() + self.settings.state_poll
                    agent.on_instance_state(self.client.get_state_instance())
                got = self.client.receive_notification(self.settings.receive_timeout)
            except GreenApiAuthError as exc:
                agent.on_auth_error(exc)
                return
            except GreenApiRejected as exc:
                agent.on_green_down("receive", exc)
                self._stop.wait(self.settings.backoff_cap)
                continue
            except GreenApiError as exc:
                if self._stop.is_set():
                    return
                agent.on_green_down("receive", exc)
                self._stop.wait(backoff.next())
                continue
            backoff.reset()
            agent.on_green_ok("receive")
            if got is not None:
                self._process(got)

    def _process(self, got: Received) -> None:
        with self.receive_lock:
            if self._stop.is_set():
                return  # not deleted: it comes back after the restart
            outcome = self.handle(str(got.receipt_id), got.body)
            if outcome is None:
                self._stop.wait(1.0)  # kept in Green API's queue; offered again
                return
            try:
                self.client.delete_notification(got.receipt_id)
            except GreenApiAuthError as exc:
                self.agent.on_auth_error(exc)
                self._stop.set()  # credentials refused: nothing more to do until a restart
                return
            except GreenApiError as exc:
                # It comes back; the journal recognises it and it is deleted then.
                self.log.warning("notification.delete_failed", receipt=got.receipt_id,
                                 error=str(exc))
                return
        self.log.debug("notification.done", receipt=got.receipt_id, outcome=outcome)


class WebhookServer(_Handling):
    """``POST {webhook_path}`` with ``Authorization: Bearer <webhookUrlToken>``."""

    def __init__(self, agent: Context, *, journal: Journal, lock: threading.Lock) -> None:
        super().__init__(agent, journal, lock)
        settings = agent.settings
        token = settings.webhook_token.reveal() if settings.webhook_token else ""
        self._token = token.encode()
        self.path = settings.webhook_path
        handler = self._handler_class()
        try:
            self.server = ThreadingHTTPServer((settings.webhook_bind, settings.webhook_port),
                                              handler)
        except OSError as exc:
            raise BridgeUnavailable(f"cannot listen on {settings.webhook_bind}:"
                                    f"{settings.webhook_port} for the Green API webhook: "
                                    f"{exc.strerror} (set kami.webhook_port)") from exc
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        kwargs={"poll_interval": 0.2}, daemon=True,
                                        name="greenapi-webhook")
        self._seq = 0

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{port}{self.path}"

    def start(self) -> None:
        self._thread.start()
        self.log.info("webhook.listening", url=self.url)

    def stop(self, timeout: float = 2.0) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout)

    def authorised(self, header: str) -> bool:
        # Green API sends "Bearer <webhookUrlToken>"; some set the whole header as the token.
        given = header.strip()
        if given.lower().startswith("bearer "):
            given = given[7:].strip()
        return hmac.compare_digest(given.encode("utf-8", "replace"), self._token)

    def receive(self, raw: bytes) -> int:
        """The status to answer for one POSTed body."""
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self.log.warning("webhook.not_json", size=len(raw))
            return 400
        with self.receive_lock:
            self._seq += 1
            key = f"webhook-{body.get('idMessage') if isinstance(body, dict) else self._seq}"
            outcome = self.handle(key, body)
        return 503 if outcome is None else 200

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True
            server_version = "kami"
            sys_version = ""

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _answer(self, status: int) -> None:
                data = b'{"ok":true}\n' if status == 200 else b'{"ok":false}\n'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                if self.path.split("?", 1)[0] != outer.path:
                    self._answer(404)
                    return
                if not outer.authorised(self.headers.get("Authorization", "")):
                    outer.log.warning("webhook.rejected", client=self.client_address[0])
                    self._answer(401)
                    return
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_WEBHOOK_BODY:
                    self._answer(413)
                    return
                self._answer(outer.receive(self.rfile.read(length)))

            def do_GET(self) -> None:
                self._answer(405)

        return Handler

