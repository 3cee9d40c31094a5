"""Finding messages in the live file and the archives: ``bridge search`` and ``show``.

Search reads files backwards in large chunks (newest first) and looks for the
query's bytes with ``bytes.find`` before parsing anything, so a search costs
about what reading the files costs; only lines that contain the query are
parsed and checked. Memory stays at one chunk (plus the longest line),
whatever the archives' size: a gzip archive cannot be read backwards, so its
matching lines go to an unlinked temporary file first, which is then read
backwards the same way.

The quick filter is exact for a query of printable ASCII without ``/``: every
JSON encoder writes such text unchanged. For other queries, lines holding
``\\u`` or ``\\/`` escapes (written by encoders that escape more than needed)
are parsed as well, so nothing is missed.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from .._errors import InvalidInput
from ..format import (
    MAX_LINE,
    BadLine,
    Entry,
    check_record,
    decode_line,
    format_ms,
    line_start_before,
    parse_ts,
    read_epoch,
    ulid_time_ms,
)
from ..store import Fold, MessageState
from ._archive import ArchiveFile, iter_chunks_of, list_archives, month_of_ts

if TYPE_CHECKING:
    from ..store import LocalStore

__all__ = ["ArchivedMessage", "Hit", "Matcher", "find_archived", "iter_archive", "search"]

CHUNK = 4 << 20
"""Bytes read per call while searching."""


@dataclass(frozen=True, slots=True)
class Hit:
    """A message that matched: its record, its exact line, and the file it is in."""

    record: dict[str, Any]
    line: bytes
    source: str


class Matcher:
    """The query and filters, and the byte strings that must occur in a matching line."""

    def __init__(self, text: str, *, regex: bool, ignore_case: bool, since: float | None,
                 until: float | None, sender: str | None, to: str | None) -> None:
        self.since, self.until, self.sender, self.to = since, until, sender, to
        self.ignore_case = ignore_case
        self.needles: list[bytes] = []
        self.test: Callable[[str], bool]
        if regex:
            try:
                pattern = re.compile(text, re.IGNORECASE if ignore_case else 0)
            except re.error as exc:
                raise InvalidInput(f"not a valid regular expression: {exc}") from None
            self.test = lambda content: pattern.search(content) is not None
            return
        folded = text.casefold() if ignore_case else text
        self.test = (lambda content: folded in content.casefold()) if ignore_case \
            else (lambda content: text in content)
        if not text or (ignore_case and not text.isascii()):
            return  # no byte filter: every message line is parsed
        needle = orjson.dumps(text)[1:-1]
        self.needles = [needle.lower() if ignore_case else needle]
        if not (text.isascii() and text.isprintable() and "/" not in text):
            self.needles += [b"\\u", b"\\/"]

    def candidates(self, body: bytes) -> list[bytes]:
        """The lines of ``body`` (complete lines, each ending in a newline) worth parsing."""
        if not self.needles:
            return body.split(b"\n")[:-1]
        hay = body.lower() if self.ignore_case else body
        starts: set[int] = set()
        for needle in self.needles:
            at = hay.find(needle)
            while at >= 0:
                start = hay.rfind(b"\n", 0, at) + 1
                starts.add(start)
                end = hay.find(b"\n", at)
                at = hay.find(needle, end)
        out = []
        for start in sorted(starts):
            out.append(body[start : body.find(b"\n", start)])
        return out

    def match(self, line: bytes) -> dict[str, Any] | None:
        """The record if ``line`` is a message that matches, else None."""
        rec = decode_line(line)
        if isinstance(rec, str) or rec.get("t", "msg") != "msg" or check_record(rec) is not None:
            return None
        if self.sender is not None and rec["from"] != self.sender:
            return None
        if self.to is not None and rec.get("to") != self.to:
            return None
        if self.since is not None or self.until is not None:
            when = parse_ts(rec["ts"])
            if (self.since is not None and when < self.since) or \
                    (self.until is not None and when >= self.until):
                return None
        return rec if self.test(rec["content"]) else None


def _reverse_bodies(fd: int, end: int) -> Iterator[bytes]:
    """Chunks of complete lines before ``end``, last chunk first (each ends in a newline)."""
    chunk = CHUNK
    pos = line_start_before(fd, end)
    carry = b""  # the start of a line that began before the chunk just read
    while pos > 0:
        step = min(chunk, pos)
        pos -= step
        buf = os.pread(fd, step, pos) + carry
        if pos > 0:
            nl = buf.find(b"\n")
            if nl < 0:
                carry = buf if len(buf) <= MAX_LINE else b""
                continue
            carry, buf = buf[: nl + 1], buf[nl + 1 :]
        else:
            carry = b""
        if buf:
            yield buf


def _forward_bodies(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Re-cut a stream of chunks into chunks of complete lines."""
    carry = b""
    for data in chunks:
        buf = carry + data
        nl = buf.rfind(b"\n")
        if nl < 0:
            carry = buf if len(buf) <= MAX_LINE else b""
            continue
        carry = buf[nl + 1 :]
        yield buf[: nl + 1]


def _hits_backwards(fd: int, end: int, matcher: Matcher, source: str) -> Iterator[Hit]:
    for body in _reverse_bodies(fd, end):
        for line in reversed(matcher.candidates(body)):
            rec = matcher.match(line)
            if rec is not None:
                yield Hit(rec, line + b"\n", source)


def _open(path: Path) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None


def _search_fd(fd: int | None, matcher: Matcher, source: str,
               limit: int | None = None) -> Iterator[Hit]:
    if fd is None:
        return
    try:
        size = os.fstat(fd).st_size
        yield from _hits_backwards(fd, size if limit is None else min(size, limit), matcher,
                                   source)
    finally:
        os.close(fd)


def _search_gzip(archive: ArchiveFile, matcher: Matcher, limit: int | None) -> Iterator[Hit]:
    # Forwards into an unlinked spool, then backwards out of it: constant memory.
    with tempfile.TemporaryFile(prefix="bridge-search-") as spool:
        for body in _forward_bodies(iter_chunks_of(archive, limit=limit)):
            for line in matcher.candidates(body):
                if matcher.match(line) is not None:
                    spool.write(line + b"\n")
        spool.flush()
        fd = spool.fileno()
        yield from _hits_backwards(fd, os.fstat(fd).st_size, matcher, archive.path.name)


def _month_in_range(month: str, since: float | None, until: float | None) -> bool:
    year, mon = int(month[:4]), int(month[5:7])
    start = parse_ts(f"{month}-01T00:00:00Z")
    nxt = f"{year + mon // 12:04d}-{mon % 12 + 1:02d}-01T00:00:00Z"
    return (until is None or start < until) and (since is None or parse_ts(nxt) > since)


def search(
    bridge: LocalStore,
    text: str,
    *,
    regex: bool = False,
    ignore_case: bool = False,
    since: float | None = None,
    until: float | None = None,
    sender: str | None = None,
    to: str | None = None,
    archives: bool = False,
) -> Iterator[Hit]:
    """Messages whose content contains ``text`` (or matches it as a regex), newest first.

    The live file comes first, then (with ``archives``) each archive from the
    newest month back. ``since``/``until`` are seconds since the epoch
    (``until`` excluded); ``sender``/``to`` filter on ``from``/``to``.

    Raises:
        InvalidInput: ``regex`` is set and ``text`` is not a valid expression.
    """
    matcher = Matcher(text, regex=regex, ignore_case=ignore_case, since=since, until=until,
                       sender=sender, to=to)
    from ._rotate import pending_archive_sizes

    # The live file is opened first: what it holds decides how much of the archives
    # counts while a rotation runs (each record is found once, see pending_archive_sizes).
    live = _open(bridge.log_path)
    sizes = pending_archive_sizes(bridge.directory, read_epoch(live) if live is not None
                                  else None) if archives else {}
    yield from _search_fd(live, matcher, bridge.log_path.name)
    if not archives:
        return
    for archive in list_archives(bridge.directory):
        if not _month_in_range(archive.month, since, until):
            continue
        limit = sizes.get(f"archive/{archive.path.name}")
        if archive.compressed:
            yield from _search_gzip(archive, matcher, limit)
        else:
            yield from _search_fd(_open(archive.path), matcher, archive.path.name, limit)


# -- one message in the archives ---------------------------------------------------------------

def iter_archive(archive: ArchiveFile, limit: int | None = None) -> Iterator[Entry | BadLine]:
    """Every line of an archive, parsed and checked, in order (offsets are decompressed).

    ``limit``: only the lines in the file's first ``limit`` bytes.
    """
    offset = 0
    line_no = 1
    for body in _forward_bodies(_with_tail(iter_chunks_of(archive, limit=limit))):
        for line in body.split(b"\n")[:-1]:
            end = offset + len(line) + 1
            obj = decode_line(line)
            if isinstance(obj, str):
                yield BadLine(offset, end, obj, line_no)
            else:
                problem = check_record(obj)
                yield Entry(offset, end, obj) if problem is None \
                    else BadLine(offset, end, problem, line_no)
            offset = end
            line_no += 1


def _with_tail(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The chunks, then a newline if the stream did not end with one (so a trailing
    fragment comes out as a line and is reported)."""
    last = b"\n"
    for data in chunks:
        if data:
            last = data
        yield data
    if not last.endswith(b"\n"):
        yield b"\n"


@dataclass
class ArchivedMessage:
    """A message found in an archive: the archive's fold, its state and the records."""

    archive: ArchiveFile
    fold: Fold
    state: MessageState
    records: dict[int, dict[str, Any]] = field(default_factory=dict)
    """The thread's message records, by offset in the (decompressed) archive."""
    changes: list[dict[str, Any]] = field(default_factory=list)
    """The message's status records, in order."""


def _candidate_archives(directory: Path, message_id: str) -> list[ArchiveFile]:
    every = list_archives(directory)
    ms = ulid_time_ms(message_id)
    if ms is None:
        return every
    month = month_of_ts(format_ms(ms))
    # The id's time is the message's ts, so its month's archive is the place to look;
    # the rest follow in case the id was made by hand.
    return [a for a in every if a.month == month] + [a for a in every if a.month != month]


def _mentions(archive: ArchiveFile, needle: bytes) -> bool:
    return any(needle in body for body in _forward_bodies(iter_chunks_of(archive)))


def find_archived(directory: Path, message_id: str) -> ArchivedMessage | None:
    """The archived message with this id (its archive folded), or None."""
    needle = orjson.dumps(message_id)
    for archive in _candidate_archives(directory, message_id):
        if not _mentions(archive, needle):
            continue
        fold = Fold()
        for item in iter_archive(archive):
            if isinstance(item, Entry):
                fold.apply(item)
        state = fold.get(message_id)
        if state is None:
            continue
        found = ArchivedMessage(archive, fold, state)
        wanted = {s.offset for s in fold.thread(message_id)}
        for item in iter_archive(archive):
            if not isinstance(item, Entry):
                continue
            rec = item.record
            if item.offset in wanted:
                found.records[item.offset] = rec
            elif rec.get("t") == "status" and rec.get("ref") == message_id:
                found.changes.append(rec)
        return found
    return None
