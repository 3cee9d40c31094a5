"""The log format: records, their ids and times, and reading complete lines from any offset."""

# The names below are imported from their modules on first use (PEP 562), so
# importing this package costs nothing until one of them is asked for.

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._lazy import lazy_attribute

if TYPE_CHECKING:
    from ._compose import (
        DEFAULT_MAX_RECORD_BYTES,
        REPLY_INHERITS,
        BatchItem,
        compose_batch_item,
        compose_event,
        compose_message,
        compose_record,
        compose_status,
    )
    from ._ids import (
        AGENT_NAME_RE,
        new_id,
        ulid,
        ulid_time_ms,
        validate_agent_name,
    )
    from ._records import (
        MESSAGE_TYPES,
        PRIORITIES,
        PROTOCOL_VERSION,
        STATUSES,
        TERMINAL_STATUSES,
        BadLine,
        Entry,
        Message,
        MessageFields,
        StatusFields,
        check_record,
        decode_line,
        encode,
        json_kind,
        message_fields,
        status_fields,
    )
    from ._scan import (
        MAX_LINE,
        Skipped,
        iter_chunks,
        iter_lines,
        iter_lines_reverse,
        line_start_before,
        read_epoch,
        read_line_at,
        scan,
    )
    from ._time import (
        format_ms,
        format_ts,
        human_duration,
        now_ts,
        parse_duration,
        parse_ts,
        parse_when,
    )

_EXPORTS: dict[str, str] = {
    "AGENT_NAME_RE": "._ids",
    "BadLine": "._records",
    "BatchItem": "._compose",
    "DEFAULT_MAX_RECORD_BYTES": "._compose",
    "Entry": "._records",
    "MAX_LINE": "._scan",
    "MESSAGE_TYPES": "._records",
    "Message": "._records",
    "MessageFields": "._records",
    "PRIORITIES": "._records",
    "PROTOCOL_VERSION": "._records",
    "REPLY_INHERITS": "._compose",
    "STATUSES": "._records",
    "Skipped": "._scan",
    "StatusFields": "._records",
    "TERMINAL_STATUSES": "._records",
    "check_record": "._records",
    "compose_batch_item": "._compose",
    "compose_event": "._compose",
    "compose_message": "._compose",
    "compose_record": "._compose",
    "compose_status": "._compose",
    "decode_line": "._records",
    "encode": "._records",
    "format_ms": "._time",
    "format_ts": "._time",
    "human_duration": "._time",
    "iter_chunks": "._scan",
    "iter_lines": "._scan",
    "iter_lines_reverse": "._scan",
    "json_kind": "._records",
    "line_start_before": "._scan",
    "message_fields": "._records",
    "new_id": "._ids",
    "now_ts": "._time",
    "parse_duration": "._time",
    "parse_ts": "._time",
    "parse_when": "._time",
    "read_epoch": "._scan",
    "read_line_at": "._scan",
    "scan": "._scan",
    "status_fields": "._records",
    "ulid": "._ids",
    "ulid_time_ms": "._ids",
    "validate_agent_name": "._ids",
}


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _EXPORTS, name)


__all__ = [
    "AGENT_NAME_RE",
    "DEFAULT_MAX_RECORD_BYTES",
    "MAX_LINE",
    "MESSAGE_TYPES",
    "PRIORITIES",
    "PROTOCOL_VERSION",
    "REPLY_INHERITS",
    "STATUSES",
    "TERMINAL_STATUSES",
    "BadLine",
    "BatchItem",
    "Entry",
    "Message",
    "MessageFields",
    "Skipped",
    "StatusFields",
    "check_record",
    "compose_batch_item",
    "compose_event",
    "compose_message",
    "compose_record",
    "compose_status",
    "decode_line",
    "encode",
    "format_ms",
    "format_ts",
    "human_duration",
    "iter_chunks",
    "iter_lines",
    "iter_lines_reverse",
    "json_kind",
    "line_start_before",
    "message_fields",
    "new_id",
    "now_ts",
    "parse_duration",
    "parse_ts",
    "parse_when",
    "read_epoch",
    "read_line_at",
    "scan",
    "status_fields",
    "ulid",
    "ulid_time_ms",
    "validate_agent_name",
]
