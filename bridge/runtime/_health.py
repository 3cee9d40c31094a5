"""``GET /health``: what a peer, a timer or a person asks an agent about itself.

The handler only serialises a snapshot that the agent's loop keeps up to date,
so it answers in microseconds however busy the agent is, and never touches the
bridge or the network. It binds 127.0.0.1 unless configured otherwise; off
loopback every request needs ``Authorization: Bearer <token>``. The body never
holds a secret or message content: names, counts, times and error summaries.

Status codes: 200 when ``ok`` or ``paused`` (a paused agent is healthy, and
says so), 503 when ``degraded`` or ``stopping``.
"""

from __future__ import annotations

import hmac
import ipaddress
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from .._errors import BridgeUnavailable

__all__ = ["HealthServer"]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


class HealthServer:
    """Serves ``snapshot()`` as JSON on ``/health`` from a background thread.

    Args:
        snapshot: returns the current body (must be cheap and thread-safe).
        bind, port: where to listen (port 0 picks a free one; see :attr:`port`).
        token: required as a bearer token; mandatory when ``bind`` is not loopback.
        on_reject: called with (client address, reason) for a refused request (for logs).
    """

    def __init__(
        self,
        snapshot: Callable[[], dict[str, Any]],
        *,
        bind: str = "127.0.0.1",
        port: int = 8080,
        token: str | None = None,
        on_reject: Callable[[str, str], None] | None = None,
    ) -> None:
        if not _is_loopback(bind) and not token:
            raise BridgeUnavailable(f"/health on {bind} (off loopback) needs a bearer token")
        self._snapshot = snapshot
        self._token = token.encode() if token else None
        self._on_reject = on_reject or (lambda addr, why: None)
        handler = self._handler_class()
        try:
            self._server = _Server((bind, port), handler)
        except OSError as exc:
            raise BridgeUnavailable(
                f"cannot listen on {bind}:{port} for /health: {exc.strerror} "
                "(another process has the port? set health.port)"
            ) from exc
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def address(self) -> str:
        host = self._server.server_address[0]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{self.port}/health"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "kami-bridge"
            sys_version = ""
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; with Nagle on, the second waits
            # for the client's delayed ACK: 40 ms per keep-alive request (measured).
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                # The agent's JSON logs record refusals; access lines are noise.
                return

            def _send(self, status: int, body: bytes, extra: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                for key, value in (extra or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path not in ("/health", "/health/"):
                    self._send(HTTPStatus.NOT_FOUND, b'{"error":"not found"}\n')
                    return
                if outer._token is not None:
                    got = self.headers.get("Authorization", "")
                    want = b"Bearer " + outer._token
                    if not hmac.compare_digest(got.encode("utf-8", "replace"), want):
                        outer._on_reject(self.client_address[0],
                                         "missing token" if not got else "wrong token")
                        self._send(HTTPStatus.UNAUTHORIZED, b'{"error":"unauthorized"}\n',
                                   {"WWW-Authenticate": 'Bearer realm="health"'})
                        return
                body = outer._snapshot()
                status = HTTPStatus.OK if body.get("status") in ("ok", "paused") \
                    else HTTPStatus.SERVICE_UNAVAILABLE
                self._send(status, orjson.dumps(body) + b"\n")

            do_HEAD = do_GET

        return Handler

    def start(self) -> None:
        """Serve from a daemon thread (the socket is already bound by the constructor)."""
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.5},
                                        name="health", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket (also for a server never started)."""
        if self._thread is not None:
            self._server.shutdown()  # waits for serve_forever: only if it runs
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()
