"""Composing records: a message or a status change checked and encoded, for any backend.

Every backend builds its lines here, so a field's validation, the id scheme
and the size limit cannot drift between them. The local bridge's common send
is built inline for speed (see :meth:`bridge.Bridge.send`); it writes the same
fields in the same order.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from .._errors import InvalidInput, RecordTooLarge
from ._ids import new_id, ulid, validate_agent_name
from ._records import MESSAGE_TYPES, PRIORITIES, PROTOCOL_VERSION, check_record, encode
from ._time import format_ms, format_ts, now_ts, parse_duration

__all__ = ["BATCH_KEYS", "DEFAULT_MAX_RECORD_BYTES", "REPLY_INHERITS", "BatchItem",
           "compose_batch_item", "compose_event", "compose_message", "compose_record",
           "compose_status"]

BATCH_KEYS = frozenset({
    "content", "to", "type", "reply_to", "priority", "metadata", "idempotency_key",
    "idem", "expires", "expires_in", "from", "sender",
})  # fmt: skip
"""The fields an item of ``send_many`` may have (``from``/``idem``/``expires`` are aliases)."""

DEFAULT_MAX_RECORD_BYTES = 1 << 20
"""A message whose encoded line is larger than this (1 MiB) is refused at send."""

REPLY_INHERITS = ("whatsapp_sender", "chat_id", "context")
"""Metadata keys a reply copies from the message it answers (so Kami knows the chat)."""

BatchItem = tuple[str, bytes, str, "str | None"]
"""(id, encoded line, sender, idempotency key) of one item of a batch."""


def compose_message(content: str, sender: str, to: str | None, type: str,
                    reply_to: str | None, priority: str | None,
                    metadata: Mapping[str, Any] | None, idempotency_key: str | None,
                    expires_in: float | None, max_bytes: int) -> tuple[str, bytes]:
    """A message record's id and line. ``sender`` must be a checked name already.

    Raises InvalidInput naming the bad field, or RecordTooLarge over ``max_bytes``.
    """
    # Positional on purpose: this is on every send, and keyword passing costs.
    if not isinstance(content, str):
        raise InvalidInput("message content must be text")
    if type not in MESSAGE_TYPES:
        raise InvalidInput(f"type must be request, response or notification, not {type!r}")
    # One clock reading for both, so the time inside the id equals ``ts``.
    ms = time.time_ns() // 1_000_000
    mid = f"{sender}-{ulid(ms)}"
    rec: dict[str, Any] = {"v": PROTOCOL_VERSION, "t": "msg", "id": mid, "ts": format_ms(ms),
                           "from": sender}
    if to is not None:
        validate_agent_name(to, "recipient")
        rec["to"] = to
    rec["type"] = type
    if reply_to is not None:
        if not isinstance(reply_to, str) or not reply_to:
            raise InvalidInput("reply_to must be a message id")
        rec["reply_to"] = reply_to
    rec["status"] = "pending"
    rec["content"] = content
    if metadata or priority is not None:
        meta = dict(metadata) if metadata else {}
        if priority is not None:
            meta["priority"] = priority
        if "priority" in meta and meta["priority"] not in PRIORITIES:
            raise InvalidInput(f"priority must be low, normal or high, not {meta['priority']!r}")
        rec["metadata"] = meta
    if expires_in is not None:
        if expires_in <= 0:
            raise InvalidInput("expiry must be in the future")
        rec["expires"] = format_ts(time.time() + expires_in)
    if idempotency_key is not None:
        if not isinstance(idempotency_key, str) or not idempotency_key:
            raise InvalidInput("idempotency key must be a non-empty string")
        rec["idem"] = idempotency_key
    try:
        line = orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError as exc:
        raise InvalidInput(f"message cannot be encoded as JSON: {exc}") from exc
    if len(line) > max_bytes:
        raise RecordTooLarge(len(line), max_bytes)
    return mid, line


def compose_status(ref: str, status: str, sender: str, **extra: Any) -> tuple[str, bytes]:
    """A status record's id and line (``extra`` fields that are None are left out)."""
    sid = new_id(sender)
    rec: dict[str, Any] = {"v": PROTOCOL_VERSION, "t": "status", "id": sid, "ts": now_ts(),
                           "from": sender, "ref": ref, "status": status}
    rec.update({k: v for k, v in extra.items() if v is not None})
    return sid, encode(rec)


def compose_record(record: Mapping[str, Any], max_bytes: int) -> bytes:
    """Any record given whole (``append_record``), checked and encoded.

    Raises InvalidInput for an invalid record, RecordTooLarge over ``max_bytes``.
    """
    problem = check_record(record)
    if problem is not None:
        raise InvalidInput(f"record rejected: {problem}")
    line = encode(record)
    if len(line) > max_bytes:
        raise RecordTooLarge(len(line), max_bytes)
    return line


def compose_event(sender: str, name: str, fields: Mapping[str, Any]) -> bytes:
    """An ``event`` record's line (audit trail: pause, resume, rotation...)."""
    return encode({"v": PROTOCOL_VERSION, "t": "event", "id": new_id(sender), "ts": now_ts(),
                   "from": sender, "event": name, **fields})


def compose_batch_item(pos: int, item: Mapping[str, Any], default_sender: str,
                       max_bytes: int) -> BatchItem:
    """One item of ``send_many`` (the keywords of ``send``) checked and encoded.

    Raises InvalidInput naming the item's position (1-based).
    """
    if not isinstance(item, Mapping):
        raise InvalidInput(f"item {pos}: expected a JSON object")
    unknown = set(item) - BATCH_KEYS
    if unknown:
        raise InvalidInput(f"item {pos}: unknown field(s) {', '.join(sorted(unknown))}")
    if "content" not in item:
        raise InvalidInput(f"item {pos}: missing 'content'")
    expires = item.get("expires_in", item.get("expires"))
    try:
        named = item.get("from", item.get("sender"))
        who = default_sender if named is None else validate_agent_name(named, "sender")
        if isinstance(expires, str):
            expires = parse_duration(expires)
        key = item.get("idempotency_key", item.get("idem"))
        mid, line = compose_message(
            item["content"], who, item.get("to"), item.get("type", "request"),
            item.get("reply_to"), item.get("priority"), item.get("metadata"), key, expires,
            max_bytes,
        )
    except InvalidInput as exc:
        raise InvalidInput(f"item {pos}: {exc}") from exc
    return mid, line, who, key
