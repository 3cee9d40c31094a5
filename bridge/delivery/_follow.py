"""Following the log: new records as they are appended, with an optional durable cursor.

A named consumer's position is saved in ``cursors/<name>.json`` only after its
handler returned (at-least-once: a crash in between means that record is
delivered again, so handlers key their effects on the record id). An idle poll
is one ``fstat`` and one ``stat``: it costs the same on a 1 KB file and a 1 GB one.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from ..format import BadLine, Entry, line_start_before, read_epoch, scan
from ..store import Cursor
from ._loop import FollowLoop
from ._watch import ChangeWaiter

if TYPE_CHECKING:
    from ..store import LocalStore

__all__ = ["Follower"]

log = logging.getLogger("bridge")

Start = Literal["beginning", "end"] | int


class Follower(FollowLoop):
    """Reads records appended to a bridge, waking on inotify (or polling).

    Args:
        bridge: the bridge to follow.
        consumer: a name to keep a durable cursor under; None follows without one.
        start: where a consumer without a saved cursor begins: ``"beginning"``,
            ``"end"`` (only records appended from now on) or a byte offset.
        poll_interval: the longest wait between checks (the fallback when
            inotify is unavailable or an event is lost).
        watch: use inotify; False polls only.
        on_bad_line: called for each skipped line (default: a warning log line).
    """

    def __init__(
        self,
        bridge: LocalStore,
        consumer: str | None = None,
        *,
        start: Start = "beginning",
        poll_interval: float = 0.25,
        watch: bool = True,
        on_bad_line: Callable[[BadLine], None] | None = None,
    ) -> None:
        self.bridge = bridge
        self.consumer = consumer
        self.path = bridge.log_path
        self.on_bad_line = on_bad_line or self._log_bad_line
        self._fd: int | None = None
        self._ino: int | None = None
        self._epoch: str | None = None
        self._stop = threading.Event()
        self._waiter = ChangeWaiter(bridge.directory, self.path.name,
                                    poll_interval=poll_interval, use_inotify=watch)
        cursor = bridge.cursors.load(consumer) if consumer else None
        self._pos = 0
        # "end" means "what is appended from now on": if there is no file yet,
        # everything that will be in it is new.
        self._start: Start = 0 if start == "end" and not self.path.exists() else start
        self._pending_cursor = cursor
        self._open_if_present()
        self.committed = self._pos

    # -- position -----------------------------------------------------------------

    @property
    def position(self) -> int:
        """Byte offset just after the last record handed out (not necessarily committed)."""
        return self._pos

    @property
    def epoch(self) -> str | None:
        """The epoch of the live file being read (None for a file without a header)."""
        return self._epoch

    def _open_if_present(self) -> bool:
        if self._fd is not None:
            return True
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        st = os.fstat(fd)
        self._fd, self._ino, self._epoch = fd, st.st_ino, read_epoch(fd)
        cursor, self._pending_cursor = self._pending_cursor, None
        if cursor is not None:
            same = (cursor.epoch == self._epoch) if (cursor.epoch and self._epoch) \
                else cursor.inode == st.st_ino
            if same:
                self._pos = min(cursor.offset, st.st_size)
            else:
                self._pos = self._relocate(cursor.epoch, cursor.offset, fd, cursor.inode)
        elif self._start == "end":
            self._pos = line_start_before(fd, st.st_size)
        elif isinstance(self._start, int):
            self._pos = self._start
        else:
            self._pos = 0
        self.committed = self._pos
        return True

    def _relocate(self, old_epoch: str | None, old_offset: int, fd: int,
                  old_inode: int | None) -> int:
        """Where to resume in a file that replaced the one the position referred to.

        Rotation leaves a map from old to new offsets (see bridge.archive._rotation_map);
        without one the file was replaced by hand, and reading restarts at its
        beginning.
        """
        from ..archive import relocate_offset

        new = relocate_offset(self.bridge.directory, old_epoch, old_offset, read_epoch(fd),
                              old_inode=old_inode)
        if new is None:
            log.warning("%s was replaced (epoch %s -> %s) with no rotation map; "
                        "reading it from the start", self.path, old_epoch, read_epoch(fd))
            return 0
        return new

    def _switch_if_replaced(self) -> bool:
        """If the name now points to another file, move to it once the old one is drained.

        True if the caller should read again (we switched, or the old file has more).
        """
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        if st.st_ino == self._ino:
            return False
        old_fd, old_epoch, old_pos, old_ino = self._fd, self._epoch, self._pos, self._ino
        if old_fd is not None and line_start_before(old_fd, os.fstat(old_fd).st_size) > old_pos:
            # Records reached the old file after our last look (we may have slept
            # through a whole rotation): read them there first; the caller loops.
            return True
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        self._fd, self._ino, self._epoch = fd, os.fstat(fd).st_ino, read_epoch(fd)
        self._pos = self._relocate(old_epoch, old_pos, fd, old_ino)
        self.committed = self._pos if self.committed == old_pos else self.committed
        if old_fd is not None:
            os.close(old_fd)
        return True

    # -- reading ---------------------------------------------------------------------

    def poll(self, limit: int = 1000) -> list[Entry]:
        """New complete records since the last call (at most ``limit``), without waiting."""
        if not self._open_if_present() or self._fd is None:
            return []
        out: list[Entry] = []
        # At most: the old file's last records, then the switch, then the new file.
        for _ in range(3):
            size = os.fstat(self._fd).st_size
            if size > self._pos:
                for item in scan(self._fd, self._pos, size):
                    self._pos = item.end
                    if isinstance(item, Entry):
                        if item.offset == 0 and self._epoch is None:
                            # Opened between the file's creation and its first write:
                            # the header names the file (a resume relies on it).
                            self._epoch = read_epoch(self._fd)
                        out.append(item)
                        if len(out) >= limit:
                            return out
                    else:
                        self.on_bad_line(item)
            # Only after the old file is drained to its end may we move to a new one:
            # everything appended to it before the switch is read first.
            if out or not self._switch_if_replaced():
                break
        return out

    def wait(self, timeout: float | None = None, limit: int = 1000) -> list[Entry]:
        """New records, waiting up to ``timeout`` seconds (None: until some arrive or stop)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._stop.is_set():
            self._waiter.clear()  # before looking, so a write after the look wakes us
            entries = self.poll(limit)
            if entries:
                return entries
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return []
            if self._stop.is_set():
                # stop() between the loop's check and clear() above: its wake-up was
                # cleared, and the wait would sleep a whole poll interval.
                return []
            self._waiter.wait(remaining)
        return []

    def raw_line(self, entry: Entry) -> bytes:
        """The exact bytes (newline included) of an entry from the last poll or wait.

        Read from the file the entry came from: after a rotation the name may
        already point to a file where that offset holds something else.
        """
        if self._fd is None:
            raise ValueError("the follower has no file open")
        return os.pread(self._fd, entry.end - entry.offset, entry.offset)

    def commit(self, upto: Entry | int | None = None) -> None:
        """Record that everything before ``upto`` (default: all handed out) is processed."""
        offset = self._pos if upto is None else (upto.end if isinstance(upto, Entry) else upto)
        self.committed = offset
        if self.consumer is not None:
            self.bridge.cursors.save(Cursor(self.consumer, offset, self._epoch, self._ino))

    def stop(self) -> None:
        """Make :meth:`wait`, iteration and :meth:`run` return soon (from any thread)."""
        self._stop.set()
        self._waiter.wake()

    def close(self) -> None:
        """Stop watching and close the file."""
        self.stop()
        self._waiter.close()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


    def _log_bad_line(self, bad: BadLine) -> None:
        log.warning("skipped line at offset %d of %s: %s", bad.offset, self.path, bad.reason)

