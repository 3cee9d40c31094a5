"""A local Anthropic Messages API (``POST /v1/messages``) for tests and the demo.

It checks requests the way the real service does (the key, as ``x-api-key`` or a
bearer token,
``anthropic-version``, a model, ``max_tokens``, non-empty alternating messages
starting with the user) and answers in the real shape — ``content`` blocks of
``text`` or ``tool_use``, ``stop_reason``, ``usage`` — or with the real error
envelope (``{"type": "error", "error": {"type": ..., "message": ...}}``) and
status (400, 401, 429, 500, 529). The real ``anthropic`` SDK is pointed at it
with ``base_url``.

What it answers is up to a *responder*: a function from the request body to a
reply built with :func:`text` or :func:`tool_use`. Faults are queued with
:meth:`FakeMessagesAPI.fail` and :meth:`FakeMessagesAPI.delay`.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

__all__ = ["FakeMessagesAPI", "Reply", "echo", "text", "tool_use"]

_ids = itertools.count(1)


@dataclass
class Reply:
    """What the fake model says: content blocks and why it stopped."""

    content: list[dict[str, Any]]
    stop_reason: str = "end_turn"


def text(value: str) -> Reply:
    """A plain text answer."""
    return Reply([{"type": "text", "text": value}])


def tool_use(name: str, arguments: dict[str, Any], preface: str | None = None) -> Reply:
    """A call of tool ``name`` (optionally after a sentence of text)."""
    blocks: list[dict[str, Any]] = [{"type": "text", "text": preface}] if preface else []
    blocks.append({"type": "tool_use", "id": f"toolu_{next(_ids):020d}", "name": name,
                   "input": arguments})
    return Reply(blocks, "tool_use")


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        for block in content or []:
            if isinstance(block, dict) and block.get("type") == "text":
                return str(block.get("text", ""))
    return ""


def echo(body: dict[str, Any]) -> Reply:
    """The default responder: repeats the last user text."""
    return text(f"You said: {_last_user_text(body)}")


def _tokens(value: Any) -> int:
    return max(1, math.ceil(len(orjson.dumps(value)) / 4))


@dataclass
class _Fault:
    status: int
    kind: str
    message: str


@dataclass
class FakeMessagesAPI:
    """Serves the Messages API on 127.0.0.1 (use as a context manager)."""

    responder: Callable[[dict[str, Any]], Reply] = echo
    api_key: str = "test-anthropic-key"
    requests: list[dict[str, Any]] = field(default_factory=list)
    _faults: list[_Fault] = field(default_factory=list)
    _delays: list[float] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL to give the SDK (``anthropic.Anthropic(base_url=...)``)."""
        if self._server is None:
            raise RuntimeError("FakeMessagesAPI is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def fail(self, status: int, kind: str, message: str = "injected", times: int = 1) -> None:
        """Answer the next ``times`` requests with an API error (e.g. 529 overloaded_error)."""
        self._faults.extend(_Fault(status, kind, message) for _ in range(times))

    def delay(self, seconds: float, times: int = 1) -> None:
        """Hold the next ``times`` answers for ``seconds`` (to provoke client timeouts)."""
        self._delays.extend([seconds] * times)

    def _validate(self, headers: Any, body: Any) -> _Fault | None:
        # API keys travel as x-api-key; newer SDKs send them as a bearer token.
        given = headers.get("x-api-key") or headers.get("Authorization", "").removeprefix(
            "Bearer ")
        if given != self.api_key:
            return _Fault(401, "authentication_error", "invalid x-api-key")
        if not headers.get("anthropic-version"):
            return _Fault(400, "invalid_request_error", "anthropic-version header is required")
        if not isinstance(body, dict):
            return _Fault(400, "invalid_request_error", "body must be a JSON object")
        if not isinstance(body.get("model"), str) or not body["model"]:
            return _Fault(400, "invalid_request_error", "model: Field required")
        if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
            return _Fault(400, "invalid_request_error", "max_tokens: Field required")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _Fault(400, "invalid_request_error", "messages: at least one message is "
                                                        "required")
        if messages[0].get("role") != "user":
            return _Fault(400, "invalid_request_error", "messages: first message must use "
                                                        "the \"user\" role")
        for a, b in itertools.pairwise(messages):
            if a.get("role") == b.get("role"):
                return _Fault(400, "invalid_request_error", "messages: roles must alternate "
                                                            "between \"user\" and \"assistant\"")
        return None

    def _answer(self, headers: Any, raw: bytes) -> tuple[int, dict[str, Any]]:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        self.requests.append({"headers": dict(headers), "body": body})
        fault = self._validate(headers, body)
        if fault is None and self._faults:
            fault = self._faults.pop(0)
        if self._delays:
            time.sleep(self._delays.pop(0))
        if fault is not None:
            return fault.status, {"type": "error",
                                  "error": {"type": fault.kind, "message": fault.message}}
        reply = self.responder(body)
        output = reply.content
        return 200, {
            "id": f"msg_{next(_ids):024d}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": output,
            "stop_reason": reply.stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": _tokens(body.get("messages")) + _tokens(body.get("system")),
                      "output_tokens": _tokens(output)},
        }

    def start(self) -> FakeMessagesAPI:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: object) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.path.split("?", 1)[0] != "/v1/messages":
                    status, doc = 404, {"type": "error", "error": {
                        "type": "not_found_error", "message": f"no route {self.path}"}}
                else:
                    status, doc = outer._answer(self.headers, raw)
                data = orjson.dumps(doc)
                self.send_response(HTTPStatus(status))
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("request-id", f"req_{next(_ids):024d}")
                if status == 429:
                    self.send_header("retry-after", "0")
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeMessagesAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
