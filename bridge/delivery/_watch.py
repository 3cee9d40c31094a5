"""Waking up when the log changes: inotify through watchdog, with a polling fallback.

The directory is watched, not the file, because rotation puts a new file
under the old name. The waiter only says "something may have changed"; the
reader then looks at the file itself, so a missed or spurious event costs at
most one poll interval, never a record.

Wake-ups travel through a pipe rather than a threading.Event, so that a waiter
can be part of a ``select()`` together with other descriptors (the agent
runtime waits on it and on its signal pipe at once), and so that waking one is
safe from a signal handler (``os.write`` is async-signal-safe; Event.set is not).
"""

from __future__ import annotations

import logging
import os
import select
from pathlib import Path
from typing import Any

__all__ = ["ChangeWaiter", "WakePipe"]

log = logging.getLogger("bridge")


class WakePipe:
    """A non-blocking pipe used as a level-triggered wake-up flag."""

    def __init__(self) -> None:
        self._r, self._w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def fileno(self) -> int:
        return self._r

    def set(self) -> None:
        """Wake whoever waits (safe from a signal handler and from any thread)."""
        if self._w < 0:
            return
        try:
            os.write(self._w, b"\0")
        except (BlockingIOError, OSError):
            # Full (already set) or closed: either way there is nothing to add.
            return

    def clear(self) -> None:
        """Forget earlier wake-ups."""
        if self._r < 0:
            return
        try:
            while os.read(self._r, 4096):
                pass
        except (BlockingIOError, OSError):
            return

    def is_set(self) -> bool:
        return bool(select.select([self._r], [], [], 0)[0])

    def wait(self, timeout: float | None) -> bool:
        """True if woken within ``timeout`` seconds (None: wait until woken)."""
        return bool(select.select([self._r], [], [], timeout)[0])

    def close(self) -> None:
        # Forget the numbers first: a late set() must not write into whatever file
        # reuses the descriptor number after close.
        fds, self._r, self._w = (self._r, self._w), -1, -1
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                continue


class ChangeWaiter:
    """Wait until a file in ``directory`` named ``name`` (or one of several names) may
    have changed."""

    def __init__(self, directory: Path, name: str | tuple[str, ...], *,
                 poll_interval: float = 0.25, use_inotify: bool = True) -> None:
        self.poll_interval = poll_interval
        self._pipe = WakePipe()
        self._observer: Any = None
        self.mode = "poll"
        if use_inotify:
            self._start(directory, (name,) if isinstance(name, str) else name)

    def _start(self, directory: Path, names: tuple[str, ...]) -> None:
        try:
            from watchdog.events import FileSystemEvent, FileSystemEventHandler
            from watchdog.observers.inotify import InotifyObserver
        except ImportError:  # not Linux, or watchdog without inotify support
            log.info("inotify unavailable; polling every %.2fs", self.poll_interval)
            return
        pipe = self._pipe

        class _Handler(FileSystemEventHandler):
            def on_any_event(self, ev: FileSystemEvent) -> None:
                for raw in (ev.src_path, getattr(ev, "dest_path", "")):
                    if raw and Path(os.fsdecode(raw)).name in names:
                        pipe.set()
                        return

        try:
            observer = InotifyObserver()
            observer.schedule(_Handler(), str(directory), recursive=False)
            observer.daemon = True
            observer.start()
        except OSError as exc:
            # inotify limits (max_user_watches/instances) or an odd filesystem.
            log.warning("cannot watch %s (%s); polling every %.2fs", directory, exc,
                        self.poll_interval)
            return
        self._observer = observer
        self.mode = "inotify"

    def fileno(self) -> int:
        """Readable when a change was signalled (for select() with other descriptors)."""
        return self._pipe.fileno()

    def clear(self) -> None:
        """Forget earlier wake-ups; call before checking the file, then :meth:`wait`."""
        self._pipe.clear()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a change is signalled or the poll interval (or ``timeout``) passes."""
        # Even with inotify the wait is capped at the poll interval: the caller
        # re-checks the file then, so a lost event can only delay, never drop.
        limit = self.poll_interval if timeout is None else min(timeout, self.poll_interval)
        return self._pipe.wait(limit)

    def wake(self) -> None:
        """Wake a waiting thread (used to stop a follower from another thread)."""
        self._pipe.set()

    def close(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
        self._pipe.close()
