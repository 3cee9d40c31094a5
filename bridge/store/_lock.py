"""The bridge lock: ``flock(LOCK_EX)`` on ``bridge.lock``, held around every append.

Why flock on a separate file: it belongs to the open file description, so it
is not dropped when some other code in the process opens and closes the same
file (POSIX ``lockf`` is), and it stays on one stable inode while the live log
is replaced by rotation. Shell scripts take the very same lock with
``flock(1)``. The ``filelock`` package does the same syscall but costs ~60x
more per acquire and polls every 50 ms under contention, so it is not used on
the hot path (log-and-locking.md §2.2).

Threads of one process share the descriptor, and flock does not exclude them
from each other, so a threading lock is taken first.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
import time
import weakref
from pathlib import Path
from types import TracebackType

from .._errors import LockTimeout
from ._fs import Perms, open_private

__all__ = ["BridgeLock", "lock_holders"]

_live_locks: weakref.WeakSet[BridgeLock] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # The child shares each lock's open file description with its parent, so an
    # unlock from the child would release the parent's lock. Forget the fd
    # without unlocking; the next acquire in the child opens a fresh one.
    for lock in list(_live_locks):
        lock._forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


class BridgeLock:
    """A re-entrant (per thread) exclusive lock on ``path``.

    Args:
        path: the lock file; created 0600 (or per ``perms``) if missing.
        timeout: seconds to wait before LockTimeout (then the wait polls); None waits
            in the kernel, which hands the lock over at once.
    """

    def __init__(self, path: Path, perms: Perms, timeout: float | None = None) -> None:
        self.path = path
        self.timeout = timeout
        self._perms = perms
        self._fd: int | None = None
        self._tlock = threading.RLock()
        self._depth = 0
        _live_locks.add(self)

    def _forget_after_fork(self) -> None:
        self._fd = None
        self._depth = 0
        self._tlock = threading.RLock()

    def _ensure_fd(self) -> int:
        if self._fd is None:
            self._fd = open_private(self.path, os.O_RDWR, self._perms)
        return self._fd

    def acquire(self, timeout: float | None = -1.0) -> None:
        """Take the lock; ``timeout`` overrides the default (None = wait forever)."""
        # The uncontended path is on every append, so it avoids clock reads.
        if not self._tlock.acquire(blocking=False):
            self._acquire_thread_slow(timeout)
        try:
            if self._depth == 0:
                fd = self._fd if self._fd is not None else self._ensure_fd()
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    self._flock_slow(fd, timeout)
            self._depth += 1
        except BaseException:
            self._tlock.release()
            raise

    def _resolve(self, timeout: float | None) -> float | None:
        return self.timeout if timeout is not None and timeout < 0 else timeout

    def _acquire_thread_slow(self, timeout: float | None) -> None:
        timeout = self._resolve(timeout)
        if not self._tlock.acquire(timeout=-1 if timeout is None else timeout):
            raise LockTimeout(f"bridge lock {self.path} is busy in this process")

    def _flock_slow(self, fd: int, timeout: float | None) -> None:
        timeout = self._resolve(timeout)
        if timeout is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return
        deadline = time.monotonic() + timeout
        # Holders keep the lock for microseconds (rotation for a bounded few
        # hundred ms), so poll briefly at first and back off to 5 ms.
        delay = 0.00005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pass
            else:
                return
            now = time.monotonic()
            if now >= deadline:
                holders = lock_holders(self.path)
                who = f" (held by pid {', '.join(map(str, holders))})" if holders else ""
                raise LockTimeout(
                    f"bridge lock {self.path} was not free within {timeout:g}s{who}"
                )
            time.sleep(min(delay, deadline - now))
            delay = min(delay * 2, 0.005)

    def release(self) -> None:
        """Release one level; the flock is dropped when the outermost holder releases."""
        self._depth -= 1
        try:
            if self._depth == 0 and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._tlock.release()

    @property
    def held(self) -> bool:
        """Whether the calling thread holds the lock."""
        return self._depth > 0 and self._tlock._is_owned()  # type: ignore[attr-defined]

    def __enter__(self) -> BridgeLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def close(self) -> None:
        """Close the lock file descriptor (which also releases any flock on it)."""
        with self._tlock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
                self._depth = 0


def lock_holders(path: Path) -> list[int]:
    """PIDs holding a flock on ``path``, from /proc/locks (best effort, for error messages)."""
    try:
        st = path.stat()
        text = Path("/proc/locks").read_text()
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.EACCES):
            raise
        return []
    want = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    pids = []
    for line in text.splitlines():
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"; blocked waiters have "->".
        if "->" in parts or len(parts) < 6 or parts[1] != "FLOCK":
            continue
        if parts[5] == want:
            pids.append(int(parts[4]))
    return pids
