"""A local Anthropic Messages API (``POST /v1/messages``) for tests and the demo.

It checks requests the way the real service does (the key, as ``x-api-key`` or a
bearer token,
``anthropic-version``, a model, ``max_tokens``, non-empty alternating messages
starting with the user) and answers in the real shape — ``content`` blocks of
``text`` or ``tool_use``, ``stop_reason``, ``usage`` — or with the real error
envelope (``{"type": "error", "error": {"type": ..., "message": ...}}``) and
status (400, 401, 429, 500, 529). The real ``anthropic`` SDK is pointed at it
with ``base_url``.

The real Claude Code CLI is pointed at it too (``ANTHROPIC_BASE_URL``): it posts
to ``/v1/messages?beta=true``, always with ``"stream": true`` — answered here as
the service's server-sent events (``message_start``, ``content_block_*`` with
``text_delta``/``input_json_delta``, ``message_delta``, ``message_stop``) — and
puts hook output and MCP instructions in a mid-conversation
``{"role": "system"}`` message, which the alternation rule skips.

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

__all__ = ["FakeMessagesAPI", "Reply", "echo", "request_text", "text", "tool_results", "tool_use"]

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


def request_text(body: dict[str, Any]) -> str:
    """Every text a request carries (system, messages, tool results), joined by newlines.

    For tests asking "did the model see X?", wherever the client put it.
    """
    parts: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for key in ("text", "content"):
                if key in value:
                    walk(value[key])

    walk(body.get("system"))
    walk(body.get("messages"))
    return "\n".join(parts)


def tool_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``tool_result`` blocks of a request's last user message."""
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if not isinstance(content, list):
                return []
            return [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]
    return []


def echo(body: dict[str, Any]) -> Reply:
    """The default responder: repeats the last user text."""
    return text(f"You said: {_last_user_text(body)}")


def _tokens(value: Any) -> int:
    return max(1, math.ceil(len(orjson.dumps(value)) / 4))


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _events(message: dict[str, Any]) -> bytes:
    """A finished message as the stream of server-sent events the service sends."""
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None,
             "usage": {"input_tokens": usage["input_tokens"], "output_tokens": 1}}
    out = [_event("message_start", {"type": "message_start", "message": start}),
           _event("ping", {"type": "ping"})]
    for index, block in enumerate(message["content"]):
        if block["type"] == "tool_use":
            first = {**block, "input": {}}
            delta = {"type": "input_json_delta",
                     "partial_json": orjson.dumps(block["input"]).decode()}
        else:
            first = {"type": "text", "text": ""}
            delta = {"type": "text_delta", "text": block.get("text", "")}
        out += [_event("content_block_start", {"type": "content_block_start", "index": index,
                                               "content_block": first}),
                _event("content_block_delta", {"type": "content_block_delta", "index": index,
                                               "delta": delta}),
                _event("content_block_stop", {"type": "content_block_stop", "index": index})]
    out += [_event("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": message["stop_reason"],
                                               "stop_sequence": None},
                                     "usage": {"output_tokens": usage["output_tokens"]}}),
            _event("message_stop", {"type": "message_stop"})]
    return b"".join(out)


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
    _lock: threading.Lock = field(default_factory=threading.Lock)

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
        if not all(isinstance(m, dict) for m in messages):
            return _Fault(400, "invalid_request_error", "messages: each must be an object")
        if messages[0].get("role") != "user":
            return _Fault(400, "invalid_request_error", "messages: first message must use "
                                                        "the \"user\" role")
        for i, m in enumerate(messages):
            if m.get("role") not in ("user", "assistant", "system"):
                return _Fault(400, "invalid_request_error",
                              f"messages.{i}.role: Input should be 'user' or 'assistant'")
        # The mid-conversation system messages (a beta Claude Code uses) stand
        # outside the user/assistant alternation.
        turns = [m for m in messages if m.get("role") != "system"]
        for a, b in itertools.pairwise(turns):
            if a.get("role") == b.get("role"):
                return _Fault(400, "invalid_request_error", "messages: roles must alternate "
                                                            "between \"user\" and \"assistant\"")
        return None

    def _answer(self, headers: Any, raw: bytes, path: str = "/v1/messages"
                ) -> tuple[int, dict[str, Any]]:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        with self._lock:
            self.requests.append({"headers": dict(headers), "body": body, "path": path})
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
            # Not part of the answer: tells the handler to send it as events.
            "_stream": body.get("stream") is True,
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
                    status, doc = outer._answer(self.headers, raw, self.path)
                stream = status == 200 and doc.pop("_stream", False)
                data = _events(doc) if stream else orjson.dumps(doc)
                self.send_response(HTTPStatus(status))
                self.send_header("Content-Type",
                                 "text/event-stream" if stream else "application/json")
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
