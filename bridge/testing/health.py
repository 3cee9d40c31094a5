"""A stand-in for an agent's ``/health`` endpoint, for tests and the demo.

It answers like the runtime (``{"status": "ok", "agent": NAME}``, HTTP 200) until
told to break (``ok = False``: HTTP 500 with a body that is not JSON, which a
peer check reports as down), on 127.0.0.1 and a free port.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson

__all__ = ["FakeHealth"]


class FakeHealth:
    """Serves ``/health`` for ``name`` (use as a context manager, or call :meth:`close`)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ok = True
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def do_GET(self) -> None:
                if outer.ok:
                    body, code = orjson.dumps({"status": "ok", "agent": outer.name}), 200
                else:
                    body, code = b"Internal Server Error", 500
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/health"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> FakeHealth:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
