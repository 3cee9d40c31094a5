"""Reading ``claude -p --output-format stream-json --verbose``: one JSON object per line.

Only two lines matter to the worker: the first, ``{"type": "system", "subtype": "init",
"session_id": …, "mcp_servers": […]}``, and the last, ``{"type": "result", "subtype":
"success" | "error_max_turns" | "error_during_execution" | …, "is_error": …, "result":
<the final text>, "session_id": …, "total_cost_usd": …, "usage": {…}, "num_turns": …}``.
Everything between (assistant and user turns, tool calls) is counted, not kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["MAX_LINE", "Transcript"]

MAX_LINE = 16 << 20
"""A longer line (a huge tool result) is skipped, not buffered without end."""


@dataclass
class Transcript:
    """What a run printed, fed in chunks as they arrive."""

    session_id: str | None = None
    init: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    turns: int = 0
    bad_lines: int = 0
    _partial: bytearray = field(default_factory=bytearray)
    _skipping: bool = False

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """Take a chunk of stdout; return the objects of the lines it completed."""
        out: list[dict[str, Any]] = []
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                if not self._skipping:
                    self._partial += data[start:]
                    if len(self._partial) > MAX_LINE:
                        self._partial.clear()
                        self._skipping = True
                return out
            if self._skipping:
                self._skipping = False
                self.bad_lines += 1
            else:
                self._partial += data[start:end]
                obj = self._line(bytes(self._partial))
                if obj is not None:
                    out.append(obj)
            self._partial.clear()
            start = end + 1

    def close(self) -> list[dict[str, Any]]:
        """End of output: a last line without a newline still counts."""
        if self._partial and not self._skipping:
            obj = self._line(bytes(self._partial))
            self._partial.clear()
            return [obj] if obj is not None else []
        return []

    def _line(self, line: bytes) -> dict[str, Any] | None:
        if not line.strip():
            return None
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            self.bad_lines += 1
            return None
        if not isinstance(obj, dict):
            self.bad_lines += 1
            return None
        kind = obj.get("type")
        sid = obj.get("session_id")
        if kind == "system" and obj.get("subtype") == "init":
            self.init = obj
            if isinstance(sid, str) and sid:
                self.session_id = sid
        elif kind == "result":
            self.result = obj
            if isinstance(sid, str) and sid and self.init is not None:
                self.session_id = sid
        elif kind == "assistant":
            self.turns += 1
        return obj

    # -- the result, read safely ---------------------------------------------------------------

    @property
    def text(self) -> str:
        value = (self.result or {}).get("result")
        return value if isinstance(value, str) else ""

    @property
    def subtype(self) -> str | None:
        value = (self.result or {}).get("subtype")
        return value if isinstance(value, str) else None

    @property
    def is_error(self) -> bool:
        return bool((self.result or {}).get("is_error"))

    @property
    def cost_usd(self) -> float:
        value = (self.result or {}).get("total_cost_usd")
        return float(value) if isinstance(value, int | float) and value >= 0 else 0.0

    @property
    def usage(self) -> dict[str, int]:
        usage = (self.result or {}).get("usage")
        if not isinstance(usage, dict):
            return {}
        return {k: int(v) for k, v in usage.items()
                if k.endswith("_tokens") and isinstance(v, int) and not isinstance(v, bool)}

    @property
    def errors(self) -> list[str]:
        value = (self.result or {}).get("errors")
        return [str(e) for e in value] if isinstance(value, list) else []

    def mcp_status(self, name: str) -> str | None:
        """How the MCP server ``name`` came up (``connected``, ``failed``…), per init."""
        for server in (self.init or {}).get("mcp_servers") or []:
            if isinstance(server, dict) and server.get("name") == name:
                return str(server.get("status"))
        return None
