"""Archive files: where rotation puts finished messages, one file per month.

``archive/messages-archive-YYYY-MM.jsonl`` holds, for every message whose
``ts`` falls in that month (UTC) and that a rotation moved, its ``msg`` line
and all its ``status`` lines, byte for byte as they were in the live file, in
their original order. A month that exists is appended to, never rewritten.
With compression the file is ``.jsonl.gz`` and each rotation appends one gzip
member: ``zcat`` concatenates members, so ``zcat FILE | jq`` reads it whole.

Reading (search, show, doctor) goes through :func:`iter_chunks_of`, which
yields the decompressed bytes in bounded chunks whatever the file's size.
"""

from __future__ import annotations

import os
import re
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .._errors import BridgeIOError
from ..format import parse_ts
from ..store import Perms, fsync_dir, write_all

__all__ = [
    "ARCHIVE_DIR",
    "ArchiveAppender",
    "ArchiveFile",
    "archive_path",
    "iter_chunks_of",
    "list_archives",
    "month_of_ts",
]

ARCHIVE_DIR = "archive"
"""The archive directory's name inside the bridge directory."""

READ_CHUNK = 1 << 20
"""Bytes read (before decompression) per call when reading an archive."""

_NAME_RE = re.compile(r"^messages-archive-(\d{4}-\d{2})\.jsonl(\.gz)?$")


@dataclass(frozen=True, slots=True)
class ArchiveFile:
    """One archive file: its path, its month (``YYYY-MM``) and whether it is gzipped."""

    path: Path
    month: str
    compressed: bool


def archive_path(directory: Path, month: str, compressed: bool) -> Path:
    """Where the archive of ``month`` lives (``directory`` is the bridge directory)."""
    suffix = ".jsonl.gz" if compressed else ".jsonl"
    return directory / ARCHIVE_DIR / f"messages-archive-{month}{suffix}"


def list_archives(directory: Path) -> list[ArchiveFile]:
    """Every archive file of a bridge, newest month first (plain before gzip in a month)."""
    folder = directory / ARCHIVE_DIR
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _NAME_RE.match(path.name)
        if match and path.is_file():
            found.append(ArchiveFile(path, match.group(1), bool(match.group(2))))
    found.sort(key=lambda a: (a.month, not a.compressed), reverse=True)
    return found


def month_of_ts(ts: str) -> str:
    """``YYYY-MM`` (UTC) of a timestamp; the canonical ``...Z`` form is sliced, not parsed."""
    if len(ts) >= 20 and ts[-1] in "Zz" and ts[4] == "-" and ts[7] == "-":
        return ts[:7]
    return time.strftime("%Y-%m", time.gmtime(parse_ts(ts)))


def iter_chunks_of(archive: ArchiveFile | Path, chunk: int = READ_CHUNK,
                   limit: int | None = None) -> Iterator[bytes]:
    """The archive's (decompressed) bytes in chunks of bounded size.

    A gzip file may hold several members (one per rotation); all are read.
    ``limit`` reads only the file's first bytes (what it held before a
    rotation that is still appending to it).
    """
    path = archive.path if isinstance(archive, ArchiveFile) else archive
    compressed = archive.compressed if isinstance(archive, ArchiveFile) \
        else path.name.endswith(".gz")
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    left = [os.fstat(fd).st_size if limit is None else limit]

    def read() -> bytes:
        data = os.read(fd, min(chunk, left[0]))
        left[0] -= len(data)
        return data

    try:
        if not compressed:
            while data := read():
                yield data
            return
        yield from _inflate(read, path, chunk)
    finally:
        os.close(fd)


def _inflate(read: Callable[[], bytes], path: Path, chunk: int) -> Iterator[bytes]:
    inflater = zlib.decompressobj(wbits=31)
    fed = False  # whether the current member has seen input (else EOF is clean)
    try:
        while raw := read():
            while raw:
                fed = True
                # max_length bounds the output of one call: a small, very
                # compressible input must not turn into a huge buffer.
                out = inflater.decompress(raw, chunk)
                if out:
                    yield out
                raw = inflater.unconsumed_tail
                if inflater.eof:  # one member done; the next starts in unused_data
                    raw = inflater.unused_data
                    inflater = zlib.decompressobj(wbits=31)
                    fed = False
        tail = inflater.flush()
        if tail:
            yield tail
    except zlib.error as exc:
        raise BridgeIOError(f"archive {path} is damaged: {exc}") from exc
    if fed and not inflater.eof:
        raise BridgeIOError(f"archive {path} is damaged: its last gzip member is truncated")


class ArchiveAppender:
    """Appends byte ranges of the live file to one month's archive, for one rotation.

    The size before the first append is what a rollback truncates back to
    (the rotation journal records it before anything is written). For a gzip
    archive the bytes go into one new gzip member, finished by :meth:`finish`.
    """

    def __init__(self, path: Path, perms: Perms, owner: tuple[int, int] | None,
                 compresslevel: int = 6) -> None:
        self.path = path
        self.compressed = path.name.endswith(".gz")
        perms.make_dir(path.parent)
        created = not path.exists()
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        self._fd = os.open(path, flags, perms.file_mode)
        try:
            if created:
                perms.apply_fd(self._fd)
                if owner is not None:
                    os.fchown(self._fd, *owner)
            self.size_before = os.lseek(self._fd, 0, os.SEEK_END)
        except BaseException:
            os.close(self._fd)
            raise
        self.created = created
        self._deflater = zlib.compressobj(compresslevel, zlib.DEFLATED, 31) \
            if self.compressed else None

    @property
    def plain_fd(self) -> int | None:
        """The descriptor to copy into directly (None for gzip: bytes must be compressed)."""
        return None if self.compressed else self._fd

    def write(self, data: bytes | memoryview) -> None:
        """Append ``data`` (complete lines) to the archive."""
        if self._deflater is not None:
            data = self._deflater.compress(data)
        write_all(self._fd, data)

    def finish(self, durable: bool = True) -> int:
        """End the gzip member (if any), fsync, close; the archive's new size."""
        if self._deflater is not None:
            write_all(self._fd, self._deflater.flush())
            self._deflater = None
        size = os.lseek(self._fd, 0, os.SEEK_END)
        if durable:
            os.fsync(self._fd)
        os.close(self._fd)
        self._fd = -1
        if durable and self.created:
            fsync_dir(self.path.parent)
        return size

    def abandon(self) -> None:
        """Close without finishing (the journal's rollback cuts the bytes off)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

