"""The line protocol between a remote client and ``bridge serve --stdio`` (docs/remote.md).

One JSON object per line, UTF-8, in both directions over one SSH exec channel.
The server speaks first (a banner naming the versions it speaks); the client
answers with ``hello`` naming the version it chose and the bridge to open.
After that:

- a request ``{"id": N, "op": NAME, "args": {...}}`` gets exactly one reply,
  ``{"id": N, "ok": RESULT}`` or ``{"id": N, "err": {"type", "message", "exit"}}``;
- a notification is a request without ``id``: no reply (``commit``, ``credit``);
- an event ``{"ev": NAME, "sub": K, ...}`` is pushed by the server for
  subscription K (``recs``, ``bad``, ``closed``).

This module holds what both sides share: the version, the limits, framing,
and the translation of errors and results to and from JSON.
"""

from __future__ import annotations

import re
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Final

import orjson

from .. import _errors
from .._views import VIEW_FIELDS, status_dict, view_dict
from ..format import PROTOCOL_VERSION, Entry, Message
from ..inspection import DoctorReport, Finding
from ..store import BridgeStatus, History, MessageState, MessageView, PauseInfo

__all__ = [
    "BANNER_EVENT",
    "MAX_REPLY",
    "MAX_REQUEST",
    "PROTOCOL_NAME",
    "PUSH_BYTES",
    "VERSIONS",
    "LineSplitter",
    "error_from_wire",
    "error_to_wire",
    "frame",
]

PROTOCOL_NAME: Final = "kami-bridge"
"""Named in the banner, so a client can tell the server from other output on the channel."""


VERSIONS: Final = (1, 2)
"""Every version this side can speak."""

BANNER_EVENT: Final = "hello"

MAX_REQUEST: Final = 8 << 20
"""The longest line the server accepts from a client (8 MiB: a 1 MiB record escaped, with
room). Clients are strangers: what they send is bounded tightly."""

MAX_REPLY: Final = 256 << 20
"""The longest line a client accepts from the server: a whole fold or a big inbox of a
large bridge is one reply. The host is known (its key was verified), yet bounded too."""

PUSH_BYTES: Final = 4 << 20
"""A ``recs`` event carries records up to about this many bytes (and at most 500 of them)."""

_ID_PREFIX = re.compile(rb'^\s*\{\s*"id"\s*:\s*(\d{1,18})\s*[,}]')


def frame(obj: Any) -> bytes:
    """One message as one line."""
    return orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE)


def request_id_of(line: bytes) -> int | None:
    """The ``id`` at the start of a line that could not be parsed (clients write it first)."""
    match = _ID_PREFIX.match(line[:64])
    return int(match.group(1)) if match else None


class LineSplitter:
    """Cuts a byte stream into lines, never holding more than ``limit`` bytes of one.

    :meth:`feed` returns the complete lines, newline removed; a line longer than
    the limit comes out as an :class:`Oversized` holding its first bytes only, and
    the rest of it is dropped as it arrives.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._buf = bytearray()
        self._dropping: Oversized | None = None

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        start = 0
        while start < len(data):
            nl = data.find(b"\n", start)
            piece = data[start:] if nl < 0 else data[start:nl]
            if self._dropping is not None:
                self._dropping.size += len(piece)
                if nl >= 0:
                    out.append(self._dropping)
                    self._dropping = None
            elif len(self._buf) + len(piece) > self.limit:
                self._dropping = Oversized(bytes(self._buf[:64]) if self._buf else piece[:64])
                self._dropping.size = len(self._buf) + len(piece)
                self._buf.clear()
                if nl >= 0:
                    out.append(self._dropping)
                    self._dropping = None
            elif nl < 0:
                self._buf += piece
            elif self._buf:
                self._buf += piece
                out.append(bytes(self._buf))
                self._buf.clear()
            else:
                out.append(piece)
            if nl < 0:
                break
            start = nl + 1
        return out

    @property
    def pending(self) -> int:
        """Bytes of an unfinished line held (or being dropped)."""
        return self._dropping.size if self._dropping is not None else len(self._buf)


class Oversized(bytes):
    """Stands in for a line over the limit: its first 64 bytes; ``size`` is its full length."""

    size: int = 0


# -- errors --------------------------------------------------------------------------------

_ERROR_TYPES: dict[str, type[_errors.BridgeError]] = {
    name: obj for name in _errors.__all__
    if isinstance(obj := getattr(_errors, name), type) and issubclass(obj, _errors.BridgeError)
}  # fmt: skip


def error_to_wire(exc: BaseException) -> dict[str, Any]:
    """An exception as ``{"type", "message", "exit"}`` (only bridge errors keep their type)."""
    if isinstance(exc, _errors.BridgeError):
        return {"type": type(exc).__name__, "message": str(exc), "exit": exc.exit_code}
    return {"type": "BridgeError", "message": f"{type(exc).__name__}: {exc}", "exit": 1}


def error_from_wire(payload: Any) -> _errors.BridgeError:
    """The exception a reply's ``err`` stands for, of the same class when this side knows it."""
    if not isinstance(payload, dict):
        return _errors.ProtocolError(f"malformed error reply from the bridge host: {payload!r}")
    message = str(payload.get("message") or "error on the bridge host")
    cls = _ERROR_TYPES.get(str(payload.get("type")), _errors.BridgeError)
    # Built without __init__: some classes (RecordTooLarge) take structured
    # arguments; the message already says everything.
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    code = payload.get("exit")
    if cls is _errors.BridgeError and isinstance(code, int):
        exc.exit_code = code
    return exc


# -- results -------------------------------------------------------------------------------
#
# Views, histories and the status travel in one of two shapes. Version 1 (what every
# server sends today, and all an older client reads) nests the record and the fold's
# state: ``{"message": RECORD, "state": STATE}``. Version 2 is the flat view of
# bridge/_views.py (what ``--json`` prints and docs/view.schema.json describes) with the
# fold's exact state beside it under ``fold`` (offsets and the raw status, which the view
# leaves out); a history is that view with ``changes``, ``thread`` and ``archive``; a
# status has ``paused`` a boolean and ``pause`` the details. A server sends version 2
# only when told the session's client reads it (``version=``); the ``*_from_wire``
# functions read both, so a client works against old and new servers alike.

VIEW_V1: Final = 1
VIEW_V2: Final = 2

_STATE_FIELDS: Final = frozenset(f.name for f in fields(MessageState))


def view_to_wire(view: MessageView, version: int = VIEW_V1) -> dict[str, Any]:
    if version < VIEW_V2:
        return {"message": view.message.to_record(), "state": asdict(view.state)}
    fold = asdict(view.state)
    fold["record_v"], fold["record_status"] = view.message.v, view.message.status
    return {**view_dict(view), "fold": fold}


def view_from_wire(obj: dict[str, Any]) -> MessageView:
    if "message" in obj and "state" in obj:  # version 1
        return MessageView(Message.from_record(obj["message"]), MessageState(**obj["state"]))
    fold = dict(obj["fold"])
    message = Message(
        id=obj["id"], sender=obj["from"], type=obj["type"], content=obj["content"],
        ts=obj["ts"], to=obj.get("to"), reply_to=obj.get("reply_to"),
        status=str(fold.get("record_status") or "pending"),
        metadata=dict(obj.get("metadata") or {}), expires=obj.get("expires"),
        idempotency_key=obj.get("idem"), v=int(fold.get("record_v", PROTOCOL_VERSION)),
        extra={k: v for k, v in obj.items() if k not in _VIEW_KEYS})
    # A newer host's fold may know more than this side's MessageState: keep what fits.
    return MessageView(message, MessageState(**{k: v for k, v in fold.items()
                                                 if k in _STATE_FIELDS}))


_VIEW_KEYS: Final = frozenset((*VIEW_FIELDS, "fold", "v", "t"))


def history_to_wire(hist: History, version: int = VIEW_V1) -> dict[str, Any]:
    archive = None if hist.archive is None else str(hist.archive)
    if version < VIEW_V2:
        return {"view": view_to_wire(hist.view), "changes": hist.changes,
                "thread": [view_to_wire(v) for v in hist.thread], "archive": archive}
    return {**view_to_wire(hist.view, version), "changes": hist.changes,
            "thread": [view_to_wire(v, version) for v in hist.thread], "archive": archive}


def history_from_wire(obj: dict[str, Any]) -> History:
    archive = obj.get("archive")
    view = obj["view"] if "view" in obj else {k: v for k, v in obj.items()
                                               if k not in ("changes", "thread", "archive")}
    return History(view_from_wire(view), list(obj["changes"]),
                   [view_from_wire(v) for v in obj["thread"]],
                   None if archive is None else Path(archive))


def pause_from_wire(obj: dict[str, Any] | None) -> PauseInfo | None:
    return None if obj is None else PauseInfo(obj.get("by"), obj.get("reason"), obj.get("since"))


def status_to_wire(st: BridgeStatus, version: int = VIEW_V1) -> dict[str, Any]:
    if version >= VIEW_V2:
        return {**status_dict(st), "extra": st.extra}
    return {"directory": str(st.directory), "paused": st.paused.to_dict() if st.paused else None,
            "counts": st.counts, "size": st.size, "records": st.records,
            "bad_lines": st.bad_lines, "last_activity": st.last_activity, "epoch": st.epoch,
            "durability": st.durability, "filesystem": st.filesystem, "extra": st.extra}


def status_from_wire(obj: dict[str, Any]) -> BridgeStatus:
    # Version 2 names the details "pause" ("paused" is a boolean); version 1 "paused".
    pause = obj.get("pause") if "pause" in obj else obj["paused"]
    return BridgeStatus(
        directory=Path(obj["directory"]), paused=pause_from_wire(pause),
        counts=dict(obj["counts"]), size=obj["size"], records=obj["records"],
        bad_lines=obj["bad_lines"], last_activity=obj["last_activity"], epoch=obj["epoch"],
        durability=obj["durability"], filesystem=obj["filesystem"],
        extra=dict(obj.get("extra") or {}),
    )


def doctor_from_wire(obj: dict[str, Any]) -> DoctorReport:
    findings = [Finding(**f) for f in obj["findings"]]
    return DoctorReport(path=obj["path"], size=obj["size"], lines=obj["lines"],
                        records=obj["records"], messages=obj["messages"], findings=findings)


def entry_to_wire(entry: Entry) -> list[Any]:
    return [entry.offset, entry.end, entry.record]


def entry_from_wire(item: list[Any]) -> Entry:
    return Entry(item[0], item[1], item[2])
