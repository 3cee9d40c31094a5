"""Records: what one line of ``messages.jsonl`` may hold, and how it is checked.

A line is one JSON object. ``t`` says what kind of record it is; a line without
``t`` is a message in the seed's own schema (protocol version 0). The checks
here are the reader's half of docs/protocol.md and docs/record.schema.json: a
line that fails them is skipped and reported, never fatal. Unknown fields are
kept; records with an unknown ``t`` are ignored by every reader.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, NamedTuple

import orjson

__all__ = [
    "KNOWN_KINDS",
    "MESSAGE_TYPES",
    "PRIORITIES",
    "PROTOCOL_VERSION",
    "STATUSES",
    "TERMINAL_STATUSES",
    "BadLine",
    "Entry",
    "Message",
    "check_record",
    "decode_line",
    "encode",
]

PROTOCOL_VERSION: Final = 1
"""Written in every record as ``v``. Readers skip records with a higher ``v``."""

MESSAGE_TYPES: Final = frozenset({"request", "response", "notification"})
PRIORITIES: Final = frozenset({"low", "normal", "high"})
TERMINAL_STATUSES: Final = frozenset({"done", "failed", "cancelled", "expired", "dead"})
STATUSES: Final = frozenset({"pending", "claimed"}) | TERMINAL_STATUSES
KNOWN_KINDS: Final = frozenset({"msg", "status", "repair", "epoch", "event"})

MAX_ID_LENGTH: Final = 256
MAX_NAME_LENGTH: Final = 64

# The shape of an ISO-8601 timestamp; parsing every one with datetime would
# double the cost of folding a large file, and the shape is what the schema says.
# The form our writers produce, tried first: matching it is cheaper than the
# general pattern below (which accepts it too), and it is nearly every line.
_CANONICAL_TS: Final = re.compile(r"\d\d\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\.\d\d\dZ").fullmatch
_TS_RE: Final = re.compile(
    r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?(?:Z|z|[+-]\d{2}:?\d{2})?$"
)


class Entry(NamedTuple):
    """A complete, valid line read from the log: its byte span and the parsed record."""

    # A NamedTuple rather than a frozen dataclass: one is made per line read,
    # and a frozen dataclass's __init__ costs several times more.
    offset: int
    end: int
    record: dict[str, Any]

    @property
    def kind(self) -> str:
        """``msg``, ``status``, ``repair``, ``epoch``, ``event`` or an unknown kind."""
        t = self.record.get("t")
        return "msg" if t is None else str(t)


class BadLine(NamedTuple):
    """A complete line that was skipped, with where it starts and why."""

    offset: int
    end: int
    reason: str
    line_no: int | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """A message record as the API hands it out (``from`` is ``sender`` here)."""

    id: str
    sender: str
    type: str
    content: str
    ts: str
    to: str | None = None
    reply_to: str | None = None
    status: str = "pending"
    metadata: dict[str, Any] = field(default_factory=dict)
    expires: str | None = None
    idempotency_key: str | None = None
    v: int = PROTOCOL_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    _FIELDS: ClassVar[frozenset[str]] = frozenset((
        "v", "t", "id", "ts", "from", "to", "type", "reply_to",
        "status", "content", "metadata", "expires", "idem",
    ))  # fmt: skip

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Message:
        """Build from a parsed message record (already checked by :func:`check_record`)."""
        extra = {k: v for k, v in record.items() if k not in cls._FIELDS}
        status = record.get("status")
        return cls(
            id=record["id"],
            sender=record["from"],
            type=record["type"],
            content=record["content"],
            ts=record["ts"],
            to=record.get("to"),
            reply_to=record.get("reply_to"),
            status=status if isinstance(status, str) else "pending",
            metadata=dict(record.get("metadata") or {}),
            expires=record.get("expires"),
            idempotency_key=record.get("idem"),
            v=int(record.get("v", 0)),
            extra=extra,
        )

    @property
    def priority(self) -> str:
        """The metadata priority, ``normal`` when unset."""
        value = self.metadata.get("priority")
        return value if value in PRIORITIES else "normal"

    def to_record(self) -> dict[str, Any]:
        """The JSON object as written to the log, fields in the protocol's order."""
        rec: dict[str, Any] = {"v": self.v, "t": "msg", "id": self.id, "ts": self.ts,
                               "from": self.sender}
        if self.to is not None:
            rec["to"] = self.to
        rec["type"] = self.type
        if self.reply_to is not None:
            rec["reply_to"] = self.reply_to
        rec["status"] = self.status
        rec["content"] = self.content
        if self.metadata:
            rec["metadata"] = self.metadata
        if self.expires is not None:
            rec["expires"] = self.expires
        if self.idempotency_key is not None:
            rec["idem"] = self.idempotency_key
        rec.update(self.extra)
        return rec


def encode(record: Mapping[str, Any]) -> bytes:
    """One record as one line: compact UTF-8 JSON and a newline."""
    return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)


def decode_line(line: bytes) -> dict[str, Any] | str:
    """Parse a line (without its newline): the object, or the reason it is unusable."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        if not line.strip():
            return "empty line"
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            return "not UTF-8"
        if b"\x00" in line:
            return "not JSON (contains NUL bytes, typical after a crash)"
        msg = str(exc).split(":", 1)[0]
        return f"not JSON ({msg})"
    if not isinstance(obj, dict):
        return f"not a JSON object ({json_kind(obj)})"
    return obj


def json_kind(value: Any) -> str:
    """What a parsed JSON value is, in JSON's words (``an array``, ``null``), not Python's."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object" if isinstance(value, dict) else "not JSON"


def _is_ts(value: Any) -> bool:
    return type(value) is str and (_CANONICAL_TS(value) is not None
                                   or _TS_RE.match(value) is not None)


def _is_name(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_NAME_LENGTH


def _is_id(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH


MessageFields = tuple[str, str, "str | None", str, str, "str | None", str, "str | None", str,
                      "str | None"]
"""(id, from, to, type, ts, reply_to, priority, expires, status, idem) of a valid message."""


def message_fields(rec: Mapping[str, Any]) -> MessageFields | str:
    """The fields the fold uses, if ``rec`` is a valid message; else the reason it is not.

    One function both validates and extracts, so that the fold reads each field
    once and the reader and the fold can never disagree on what is valid.
    """
    # Written flat, with subscripts and type() identity checks: it runs for every
    # message of every fold, and method calls here were most of the cost.
    try:
        mid = rec["id"]
        sender = rec["from"]
        mtype = rec["type"]
        content = rec["content"]
        ts = rec["ts"]
    except KeyError as exc:
        return f"message without {exc.args[0]!r}"
    if type(mid) is not str or not 0 < len(mid) <= MAX_ID_LENGTH:
        return "message without a valid 'id'"
    if type(sender) is not str or not 0 < len(sender) <= MAX_NAME_LENGTH:
        return "message without a valid 'from'"
    if mtype not in MESSAGE_TYPES:
        return f"message 'type' must be request, response or notification, not {mtype!r}"
    if type(content) is not str:
        return "message 'content' must be a string"
    if type(ts) is not str or (_CANONICAL_TS(ts) is None and _TS_RE.match(ts) is None):
        return "message 'ts' must be an ISO-8601 timestamp"
    to = rec["to"] if "to" in rec else None
    if to is not None and not _is_name(to):
        return "message 'to' must be an agent name"
    reply_to = rec["reply_to"] if "reply_to" in rec else None
    if reply_to is not None and not _is_id(reply_to):
        return "message 'reply_to' must be an id"
    status = rec["status"] if "status" in rec else None
    if status is None:
        status = "pending"
    elif status not in STATUSES:
        return f"message 'status' {status!r} is not a known status"
    priority = "normal"
    meta = rec["metadata"] if "metadata" in rec else None
    if meta is not None:
        if type(meta) is not dict:
            return "message 'metadata' must be an object"
        prio = meta.get("priority")
        if prio is not None:
            if prio not in PRIORITIES:
                return f"metadata 'priority' must be low, normal or high, not {prio!r}"
            priority = prio
    expires = rec["expires"] if "expires" in rec else None
    if expires is not None and not _is_ts(expires):
        return "message 'expires' must be an ISO-8601 timestamp"
    idem = rec["idem"] if "idem" in rec else None
    if idem is not None and not (type(idem) is str and idem):
        return "message 'idem' must be a non-empty string"
    return (mid, sender, to, mtype, ts, reply_to, priority, expires, status, idem)


def _check_message(rec: Mapping[str, Any]) -> str | None:
    fields = message_fields(rec)
    return fields if isinstance(fields, str) else None


StatusFields = tuple[str, str, str, str, "str | None", "str | None", "str | None"]
"""(ref, status, from, ts, lease_until, not_before, reason) of a valid status record."""


def status_fields(rec: Mapping[str, Any]) -> StatusFields | str:
    """The fields the fold uses, if ``rec`` is a valid status record; else the reason."""
    # Flat for the same reason as message_fields: a big fold runs it per record.
    try:
        sid = rec["id"]
        sender = rec["from"]
        ts = rec["ts"]
        ref = rec["ref"]
        status = rec["status"]
    except KeyError as exc:
        return f"status record without {exc.args[0]!r}"
    if type(sid) is not str or not 0 < len(sid) <= MAX_ID_LENGTH:
        return "status record without a valid 'id'"
    if type(sender) is not str or not 0 < len(sender) <= MAX_NAME_LENGTH:
        return "status record without a valid 'from'"
    if type(ts) is not str or (_CANONICAL_TS(ts) is None and _TS_RE.match(ts) is None):
        return "status record 'ts' must be an ISO-8601 timestamp"
    if type(ref) is not str or not 0 < len(ref) <= MAX_ID_LENGTH:
        return "status record without a valid 'ref'"
    if status not in STATUSES:
        return f"status record 'status' {status!r} is not a known status"
    lease = rec["lease_until"] if "lease_until" in rec else None
    if status == "claimed" and lease is None:
        return "claim without a valid 'lease_until'"
    if lease is not None and not _is_ts(lease):
        return ("claim without a valid 'lease_until'" if status == "claimed"
                else "status record 'lease_until' must be an ISO-8601 timestamp")
    not_before = rec["not_before"] if "not_before" in rec else None
    if not_before is not None and not _is_ts(not_before):
        return "status record 'not_before' must be an ISO-8601 timestamp"
    reason = rec["reason"] if "reason" in rec else None
    if reason is not None and type(reason) is not str:
        return "status record 'reason' must be a string"
    return (ref, status, sender, ts, lease, not_before, reason)


def _check_status(rec: Mapping[str, Any]) -> str | None:
    fields = status_fields(rec)
    return fields if isinstance(fields, str) else None


def _check_other(rec: Mapping[str, Any], kind: str) -> str | None:
    if not _is_id(rec.get("id")):
        return f"{kind} record without a valid 'id'"
    if not _is_ts(rec.get("ts")):
        return f"{kind} record 'ts' must be an ISO-8601 timestamp"
    if kind == "repair":
        off, size = rec.get("offset"), rec.get("bytes")
        if not (isinstance(off, int) and isinstance(size, int) and off >= 0 and size >= 0):
            return "repair record needs integer 'offset' and 'bytes'"
    return None


def check_record(rec: Mapping[str, Any]) -> str | None:
    """None if ``rec`` is a valid record (or of an unknown kind), else the reason."""
    v = rec["v"] if "v" in rec else 0
    if type(v) is not int or v < 0:
        return "'v' must be a non-negative integer"
    if v > PROTOCOL_VERSION:
        return (f"written with protocol version {v}; this reader understands up to "
                f"{PROTOCOL_VERSION}")
    t = rec["t"] if "t" in rec else None
    if t is None or t == "msg":
        return _check_message(rec)
    if t == "status":
        return _check_status(rec)
    if t in ("repair", "epoch", "event"):
        return _check_other(rec, t)
    if not isinstance(t, str):
        return "'t' must be a string"
    return None  # an unknown kind: ignored by readers, not an error
