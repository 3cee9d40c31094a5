"""Structured logs: one JSON object per line, the same schema for every agent.

``{"ts": ..., "level": "info", "agent": "kami", "event": "message.received", ...fields}``

Lines go to stderr (where systemd hands them to journald; with ``<N>`` syslog
priority prefixes when journald is listening, so ``journalctl -p err`` works)
and, optionally, to a file that ``bridge logs`` reads. Third-party libraries'
records (httpx logs every request URL at INFO) come out in the same shape, as
``event: "log"`` with the logger name and message. Every string is passed
through the redactor first: a secret never reaches a log line.

Usage in an agent::

    log = get_logger("kami")
    log.info("message.received", chat="972501234567@c.us", id=mid)
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from ..format import format_ts
from ._redact import redact

__all__ = ["AgentLogger", "JsonFormatter", "get_logger", "setup_logging"]

# journald's priorities (syslog(3)): what `journalctl -p` filters on.
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
             logging.CRITICAL: 2}
_LEVEL_NAME = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning",
               logging.ERROR: "error", logging.CRITICAL: "critical"}
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR, "critical": logging.CRITICAL}

_RESERVED = frozenset({"ts", "level", "agent", "event"})


def _clean(value: Any) -> Any:
    """Redact strings (recursively) and make the value JSON-safe."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line (optionally with a journald priority prefix)."""

    def __init__(self, agent: str, *, priority_prefix: bool = False) -> None:
        super().__init__()
        self.agent = agent
        self.priority_prefix = priority_prefix

    def format(self, record: logging.LogRecord) -> str:
        event = getattr(record, "event", None)
        fields: dict[str, Any] = dict(getattr(record, "fields", None) or {})
        if event is None:
            # A record from another library: keep its logger name and message.
            event = "log"
            fields = {"logger": record.name, "message": record.getMessage()}
        obj: dict[str, Any] = {
            "ts": format_ts(record.created),
            "level": _LEVEL_NAME.get(record.levelno, record.levelname.lower()),
            "agent": self.agent,
            "event": str(event),
        }
        for key, value in fields.items():
            obj[key if key not in _RESERVED else f"field_{key}"] = value
        if record.exc_info and record.exc_info[0] is not None:
            exc = record.exc_info[1]
            obj["error"] = f"{type(exc).__name__}: {exc}"
            obj["traceback"] = "".join(traceback.format_exception(*record.exc_info))
        line = orjson.dumps(_clean(obj), option=orjson.OPT_NON_STR_KEYS).decode()
        if self.priority_prefix:
            return f"<{_PRIORITY.get(record.levelno, 6)}>{line}"
        return line


class AgentLogger:
    """``log.info("event.name", key=value, ...)``: structured fields, not format strings."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger

    def _log(self, level: int, event: str, fields: dict[str, Any],
             exc_info: bool = False) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, event, extra={"event": event, "fields": fields},
                             exc_info=exc_info, stacklevel=3)

    def debug(self, event: str, **fields: Any) -> None:
        self._log(logging.DEBUG, event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log(logging.INFO, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log(logging.WARNING, event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._log(logging.ERROR, event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        """An error with the current exception's type, message and traceback."""
        self._log(logging.ERROR, event, fields, exc_info=True)


def get_logger(agent: str) -> AgentLogger:
    """The structured logger of an agent (configure output with :func:`setup_logging`)."""
    return AgentLogger(logging.getLogger(f"agent.{agent}"))


class _PrivateFileHandler(logging.FileHandler):
    """Appends to a 0600 file (logs hold chat ids and message ids, if never secrets)."""

    def _open(self):  # type: ignore[no-untyped-def]
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                     0o600)
        return os.fdopen(fd, "a", encoding="utf-8")


def setup_logging(agent: str, *, level: str = "info", file: Path | None = None,
                  stream: Any = None) -> list[logging.Handler]:
    """Send every log record (the agent's and libraries') through the JSON formatter.

    Called once by the runtime at start, never at import. Returns the handlers
    (so tests and the runtime can remove them).
    """
    root = logging.getLogger()
    root.setLevel(LEVELS[level])
    handlers: list[logging.Handler] = []
    # journald sets $JOURNAL_STREAM when stderr is connected to it.
    err = logging.StreamHandler(stream or sys.stderr)
    err.setFormatter(JsonFormatter(agent, priority_prefix=bool(os.environ.get("JOURNAL_STREAM"))))
    handlers.append(err)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        fh = _PrivateFileHandler(file, encoding="utf-8")
        fh.setFormatter(JsonFormatter(agent))
        handlers.append(fh)
    for h in handlers:
        root.addHandler(h)
    # httpx logs each request line at INFO; keep it (redacted) only at debug.
    logging.getLogger("httpx").setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
    return handlers
