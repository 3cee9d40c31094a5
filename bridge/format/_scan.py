"""Reading the log: complete lines only, from any byte offset, in constant memory.

A line counts once its newline is on disk; bytes after the last newline may be a
record still being written (or a crashed writer's fragment) and are never
consumed. Bad complete lines come out as :class:`BadLine` with their offset and
reason, so callers can skip and report them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import orjson

from ._records import BadLine, Entry, check_record, decode_line

__all__ = [
    "CHUNK",
    "MAX_LINE",
    "iter_lines",
    "iter_lines_reverse",
    "line_start_before",
    "read_epoch",
    "read_line_at",
    "scan",
]

CHUNK = 1 << 20
"""Bytes read per syscall while scanning."""

MAX_LINE = 64 << 20
"""A line longer than this is reported and skipped without being held in memory."""


class Skipped(int):
    """Stands in a chunk's line list for a line over MAX_LINE: its length, not its bytes."""


def iter_chunks(
    fd: int, start: int = 0, end: int | None = None, *, chunk: int = CHUNK
) -> Iterator[tuple[int, list[bytes]]]:
    """Yield ``(offset, lines)``: the complete lines of each chunk read, without newlines.

    Line ``i`` starts at ``offset`` plus the lengths (+1 each) of the lines before
    it. A line over MAX_LINE is a :class:`Skipped` (its length) and is never held
    in memory. Stops at the last newline before ``end`` (default: EOF as it grows).
    """
    pos = start
    buf = b""
    buf_start = start
    skipping = 0  # bytes of an over-long line skipped so far (0: not skipping)
    while end is None or pos < end:
        want = chunk if end is None else min(chunk, end - pos)
        data = os.pread(fd, want, pos)
        if not data:
            return
        pos += len(data)
        if skipping:
            nl = data.find(b"\n")
            if nl < 0:
                skipping += len(data)
                continue
            yield buf_start, [Skipped(skipping + nl)]  # type: ignore[list-item]
            buf_start += skipping + nl + 1
            skipping = 0
            data = data[nl + 1 :]
            buf = b""
        buf = buf + data if buf else data
        parts = buf.split(b"\n")
        rest = parts.pop()
        if parts:
            yield buf_start, parts
            buf_start += len(buf) - len(rest)
        buf = rest
        if len(buf) > MAX_LINE:
            skipping = len(buf)
            buf = b""


def iter_lines(
    fd: int, start: int = 0, end: int | None = None, *, chunk: int = CHUNK
) -> Iterator[tuple[int, int, bytes | None]]:
    """Yield ``(offset, end, line)`` for each complete line from ``start``.

    ``line`` excludes the newline; it is None for a line over MAX_LINE (skipped
    without buffering). Stops at the last newline before ``end`` (default: EOF
    as it grows while reading).
    """
    for base, lines in iter_chunks(fd, start, end, chunk=chunk):
        off = base
        for line in lines:
            if line.__class__ is Skipped:  # type: ignore[comparison-overlap]
                nxt = off + int(line) + 1
                yield off, nxt, None
            else:
                nxt = off + len(line) + 1
                yield off, nxt, line
            off = nxt


def scan(
    fd: int, start: int = 0, end: int | None = None, *, line_no: int | None = None
) -> Iterator[Entry | BadLine]:
    """Parse and check each complete line from ``start``: an Entry, or a BadLine with the reason.

    Pass ``line_no`` (the line number at ``start``) to have bad lines numbered.
    """
    for off, nxt, line in iter_lines(fd, start, end):
        if line is None:
            yield BadLine(off, nxt, f"line longer than {MAX_LINE} bytes", line_no)
        else:
            obj = decode_line(line)
            if isinstance(obj, str):
                yield BadLine(off, nxt, obj, line_no)
            else:
                problem = check_record(obj)
                if problem is None:
                    yield Entry(off, nxt, obj)
                else:
                    yield BadLine(off, nxt, problem, line_no)
        if line_no is not None:
            line_no += 1


def read_line_at(fd: int, offset: int, end: int) -> bytes:
    """The bytes of the line spanning ``[offset, end)``, without its newline."""
    data = os.pread(fd, end - offset, offset)
    return data[:-1] if data.endswith(b"\n") else data


def line_start_before(fd: int, size: int) -> int:
    """The offset just after the last newline before ``size`` (0 if there is none)."""
    pos = size
    while pos > 0:
        step = min(1 << 16, pos)
        idx = os.pread(fd, step, pos - step).rfind(b"\n")
        if idx >= 0:
            return pos - step + idx + 1
        pos -= step
    return 0


def iter_lines_reverse(
    fd: int, end: int, *, chunk: int = 1 << 16
) -> Iterator[tuple[int, int, bytes]]:
    """Yield ``(offset, end, line)`` for the complete lines before ``end``, last first.

    An unterminated fragment at ``end`` is skipped. Memory stays at one chunk
    plus the longest line.
    """
    pos = line_start_before(fd, end)
    buf = b""  # the bytes [pos, pos + len(buf)), always ending in a newline
    while pos > 0:
        step = min(chunk, pos)
        pos -= step
        buf = os.pread(fd, step, pos) + buf
        hi = len(buf) - 1  # index of the newline ending the last unyielded line
        while True:
            idx = buf.rfind(b"\n", 0, hi)
            if idx < 0:
                break
            yield pos + idx + 1, pos + hi + 1, buf[idx + 1 : hi]
            hi = idx
        buf = buf[: hi + 1]
    if buf:
        yield 0, len(buf), buf[:-1]


def read_epoch(fd: int) -> str | None:
    """The epoch named by the file's header record, or None (e.g. a file written by the seed)."""
    head = os.pread(fd, 4096, 0)
    line, nl, _ = head.partition(b"\n")
    if not nl:
        return None
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if isinstance(obj, dict) and obj.get("t") == "epoch":
        epoch = obj.get("epoch") or obj.get("id")
        return epoch if isinstance(epoch, str) else None
    return None
