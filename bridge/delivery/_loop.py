"""What every follower does the same way, in terms of its own ``wait`` and ``commit``."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Self

from ..format import Entry

__all__ = ["FollowLoop"]


class FollowLoop:
    """Iteration, :meth:`run` and ``with`` for a follower (file, remote or memory).

    A subclass provides ``wait``, ``commit`` and ``close``, sets ``_stop`` (an Event)
    and keeps ``_pos``, the position after the last record handed out.
    """

    _stop: threading.Event
    _pos: int

    def wait(self, timeout: float | None = None, limit: int = 1000) -> list[Entry]:
        raise NotImplementedError

    def commit(self, upto: Entry | int | None = None) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop.is_set()

    def __iter__(self) -> Iterator[Entry]:
        """Records forever (until :meth:`stop`); each is committed when the next is asked for."""
        while not self._stop.is_set():
            for entry in self.wait():
                yield entry
                self.commit(entry)

    def run(
        self,
        handler: Callable[[Entry], object],
        *,
        max_records: int | None = None,
        idle_timeout: float | None = None,
    ) -> int:
        """Call ``handler`` for each record, committing after each success.

        Returns the number handled when stopped, after ``max_records``, or when
        nothing arrived for ``idle_timeout`` seconds. A handler exception
        propagates, leaving that record uncommitted (it is delivered again).
        """
        handled = 0
        while not self._stop.is_set():
            entries = self.wait(idle_timeout)
            if not entries:
                break
            for entry in entries:
                handler(entry)
                self.commit(entry)
                handled += 1
                if max_records is not None and handled >= max_records:
                    self._pos = entry.end  # records after it stay for the next run
                    return handled
        return handled

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
