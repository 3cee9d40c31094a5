"""Appending to the live log: one ``write()`` per batch of complete lines, under the lock.

The append protocol (docs/protocol.md, "Writing"):

1. hold the bridge lock;
2. ``lseek(SEEK_END)``: if the size is what our own last append left and we
   checked the file less than a second ago, nothing happened since (whoever
   replaces the live file appends a ``seal`` to the old one first, so a
   replacement always changes its size). Otherwise make sure the descriptor
   still names the live file (``fstat``: a replaced or deleted file has no
   links), open it by name if not, and give a new, empty file its ``epoch``
   header;
3. if the file does not end in a newline, a writer died mid-record:
   terminate the fragment with ``\\n`` and append a ``repair`` record saying
   where it was;
4. ``write()`` the lines in one call on the O_APPEND descriptor; on an error or
   a short write, ``ftruncate`` back to the size before (no reader can have
   consumed bytes without a newline) and raise;
5. fdatasync per the durability setting; an fsync error is fatal for this
   writer (Linux may report the next fsync as clean although data was lost).
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, NoReturn

from .._errors import BridgeIOError, DurabilityError, InvalidInput
from ..format import PROTOCOL_VERSION, encode, line_start_before, new_id, now_ts
from ._fs import Perms, fsync_dir, open_private
from ._lock import BridgeLock

__all__ = ["DURABILITY_MODES", "Durability", "LogWriter"]

Durability = Literal["always", "batch", "none"]
DURABILITY_MODES: tuple[Durability, ...] = ("always", "batch", "none")

RECHECK_INTERVAL = 1.0
"""Seconds between full checks (fstat) of the live file when nothing else changed it:
bounds how long a writer keeps appending to a file someone deleted by hand."""

BATCH_MAX_RECORDS = 256
"""In ``batch`` mode, fdatasync at the latest after this many appends..."""

BATCH_MAX_DELAY = 0.02
"""...or this many seconds after the first unsynced append, whichever comes first."""


class LogWriter:
    """Appends complete lines to ``path`` following the protocol above."""

    def __init__(
        self,
        path: Path,
        lock: BridgeLock,
        perms: Perms,
        *,
        agent: str,
        durability: Durability = "always",
    ) -> None:
        if durability not in DURABILITY_MODES:
            raise InvalidInput(f"durability must be one of {', '.join(DURABILITY_MODES)}")
        self.path = path
        self.durability: Durability = durability
        self._lock = lock
        self._perms = perms
        self._agent = agent
        self._fd: int | None = None
        self._ino = 0
        # End of the file after our own last append: if the size still matches,
        # nobody wrote since, and the tail is known to end in a newline.
        self._known_end = -1
        self._checked_at = 0.0
        self._failed: BaseException | None = None
        self._unsynced = 0
        self._first_unsynced = 0.0
        self._flusher: threading.Thread | None = None
        self._flush_wake = threading.Event()
        self._closed = False
        self.repairs = 0

    # -- descriptor management -------------------------------------------------

    def _open(self) -> tuple[int, os.stat_result]:
        created = not self.path.exists()
        fd = open_private(self.path, os.O_RDWR | os.O_APPEND, self._perms)
        st = os.fstat(fd)
        self._fd, self._ino, self._known_end = fd, st.st_ino, -1
        if st.st_size == 0:
            header = encode({
                "v": PROTOCOL_VERSION, "t": "epoch", "id": (eid := new_id(self._agent)),
                "ts": now_ts(), "from": self._agent, "epoch": eid,
            })  # fmt: skip
            self._write_all(fd, header, 0)
            if self.durability != "none":
                os.fdatasync(fd)
                if created:
                    fsync_dir(self.path.parent)
            st = os.fstat(fd)
            self._known_end = st.st_size
        return fd, st

    def _current(self) -> tuple[int, os.stat_result]:
        fd = self._fd
        if fd is not None:
            st = os.fstat(fd)
            if st.st_nlink > 0:
                return fd, st
            # Replaced (rotation renamed a new file over it) or deleted: reopen by name.
            self._close_fd()
        return self._open()

    def _close_fd(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            if self._unsynced and self.durability == "batch":
                self._sync_fd(fd)
            os.close(fd)

    # -- appending --------------------------------------------------------------

    def _repair_prefix(self, fd: int, size: int) -> bytes:
        """Bytes that terminate a torn fragment at EOF and record it, or b''."""
        if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
            return b""
        start = line_start_before(fd, size)
        self.repairs += 1
        record = {
            "v": PROTOCOL_VERSION, "t": "repair", "id": new_id(self._agent), "ts": now_ts(),
            "from": self._agent, "offset": start, "bytes": size - start,
        }  # fmt: skip
        return b"\n" + encode(record)

    def _write_all(self, fd: int, data: bytes, size: int) -> None:
        """Write ``data`` in one call; on failure cut back and raise."""
        try:
            written = os.write(fd, data)
        except OSError as exc:
            self._undo(fd, size, exc, 0, len(data))
        if written != len(data):
            self._undo(fd, size, None, written, len(data))

    @staticmethod
    def _undo(fd: int, size: int, error: OSError | None, written: int, wanted: int) -> NoReturn:
        """Cut the file back to ``size`` after a failed or short write, then raise."""
        # Our own partial bytes have no newline, so no reader has consumed them.
        try:
            os.ftruncate(fd, size)
        except OSError as exc:
            raise BridgeIOError(
                f"append failed and the partial record could not be removed: {exc}"
            ) from exc
        if error is not None:
            what = "disk full" if error.errno in (errno.ENOSPC, errno.EDQUOT) else error.strerror
            raise BridgeIOError(f"append failed ({what}); nothing was written") from error
        raise BridgeIOError(
            f"short write: {written} of {wanted} bytes (disk full or file size limit); "
            "nothing was written"
        )

    def _checked(self) -> tuple[int, int, bytes]:
        """The full check: (fd, size, repair prefix) after reopening if the file was replaced."""
        try:
            fd, st = self._current()
        except OSError as exc:
            raise BridgeIOError(f"cannot open {self.path}: {exc.strerror}") from exc
        self._checked_at = time.monotonic()
        size = st.st_size
        prefix = b"" if size == self._known_end else self._repair_prefix(fd, size)
        return fd, size, prefix

    def append(self, lines: bytes | Sequence[bytes]) -> int:
        """Append one line or several (each newline-terminated) in one write.

        Returns the offset of the first.
        """
        if self._failed is not None:
            raise DurabilityError(
                "this writer saw an fsync error earlier; reopen the bridge before appending"
            ) from self._failed
        data = lines if isinstance(lines, bytes) else b"".join(lines)
        lock = self._lock
        lock.acquire()
        try:
            fd = self._fd
            prefix = b""
            if fd is None:
                fd, size, prefix = self._checked()
            else:
                size = os.lseek(fd, 0, os.SEEK_END)
                stale = time.monotonic() - self._checked_at > RECHECK_INTERVAL
                if size != self._known_end or stale:
                    fd, size, prefix = self._checked()
            if prefix:
                data = prefix + data
            self._write_all(fd, data, size)
            self._known_end = size + len(data)
            if self.durability == "always":
                self._sync_fd(fd)
            elif self.durability == "batch":
                self._note_unsynced(fd)
        finally:
            lock.release()
        return size + len(prefix)

    # -- durability --------------------------------------------------------------

    def _sync_fd(self, fd: int) -> None:
        try:
            os.fdatasync(fd)
        except OSError as exc:
            self._failed = exc
            raise DurabilityError(
                f"fsync of {self.path} failed ({exc.strerror}): the last records may not "
                "survive a power loss; this writer stops appending until reopened"
            ) from exc
        self._unsynced = 0

    def _note_unsynced(self, fd: int) -> None:
        now = time.monotonic()
        if self._unsynced == 0:
            self._first_unsynced = now
        self._unsynced += 1
        if self._unsynced >= BATCH_MAX_RECORDS or now - self._first_unsynced >= BATCH_MAX_DELAY:
            self._sync_fd(fd)
            return
        if self._flusher is None or not self._flusher.is_alive():
            self._flusher = threading.Thread(
                target=self._flush_loop, name="bridge-flusher", daemon=True
            )
            self._flusher.start()
        self._flush_wake.set()

    def _flush_loop(self) -> None:
        # Bounds how long a batch-mode append can stay unsynced when no
        # further appends come along to trigger the sync.
        while not self._closed:
            self._flush_wake.wait()
            self._flush_wake.clear()
            time.sleep(BATCH_MAX_DELAY)
            self.flush()

    def flush(self) -> None:
        """fdatasync now if anything is unsynced (a no-op in ``always`` and ``none`` modes)."""
        with self._lock:
            if self._unsynced and self._fd is not None:
                try:
                    self._sync_fd(self._fd)
                except DurabilityError:
                    if threading.current_thread() is not self._flusher:
                        raise
                    # In the flusher the error is kept in _failed and raised by the next append.

    def close(self) -> None:
        """Sync what is pending (batch mode) and close the descriptor."""
        self._closed = True
        self._flush_wake.set()
        if self._fd is None and self._flusher is None:
            # Never written through: nothing to sync or close, and no lock to take (a
            # reader of a read-only bridge cannot open the lock file for writing).
            return
        with self._lock:
            self._close_fd()
