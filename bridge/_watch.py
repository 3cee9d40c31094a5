"""Waking up when the log changes: inotify through watchdog, with a polling fallback.

The directory is watched, not the file, because rotation puts a new file
under the old name. The waiter only says "something may have changed"; the
reader then looks at the file itself, so a missed or spurious event costs at
most one poll interval, never a record.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

__all__ = ["ChangeWaiter"]

log = logging.getLogger("bridge")


class ChangeWaiter:
    """Wait until a file in ``directory`` named ``name`` may have changed."""

    def __init__(self, directory: Path, name: str, *, poll_interval: float = 0.25,
                 use_inotify: bool = True) -> None:
        self.poll_interval = poll_interval
        self._event = threading.Event()
        self._observer: Any = None
        self.mode = "poll"
        if use_inotify:
            self._start(directory, name)

    def _start(self, directory: Path, name: str) -> None:
        try:
            from watchdog.events import FileSystemEvent, FileSystemEventHandler
            from watchdog.observers.inotify import InotifyObserver
        except ImportError:  # not Linux, or watchdog without inotify support
            log.info("inotify unavailable; polling every %.2fs", self.poll_interval)
            return
        event = self._event

        class _Handler(FileSystemEventHandler):
            def on_any_event(self, ev: FileSystemEvent) -> None:
                for raw in (ev.src_path, getattr(ev, "dest_path", "")):
                    if raw and Path(os.fsdecode(raw)).name == name:
                        event.set()
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

    def clear(self) -> None:
        """Forget earlier wake-ups; call before checking the file, then :meth:`wait`."""
        self._event.clear()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a change is signalled or the poll interval (or ``timeout``) passes."""
        # Even with inotify the wait is capped at the poll interval: the caller
        # re-checks the file then, so a lost event can only delay, never drop.
        limit = self.poll_interval if timeout is None else min(timeout, self.poll_interval)
        return self._event.wait(limit)

    def wake(self) -> None:
        """Wake a waiting thread (used to stop a follower from another thread)."""
        self._event.set()

    def close(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
