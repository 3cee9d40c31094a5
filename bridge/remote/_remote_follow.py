"""RemoteFollower: records pushed from the bridge's host, with the API of :class:`Follower`.

The host runs an ordinary Follower (inotify, the consumer's cursor in its
``cursors/``) and pushes what it reads while this side has credit: at most
:data:`CREDIT` records are ever on their way or waiting here, whatever the
backlog. The handler's progress is tracked here: ``position`` is the end of
the last record handed out, ``committed`` the end of the last one committed.

When the connection drops (or goes silent past the heartbeat deadline), the
follower reconnects with backoff and subscribes again from ``position``: the
handler sees every record once, in order, with no gap and no repeat. Commits
are pipelined (no round trip each); one lost with the connection is replayed
when the follower resubscribes, and a crash of this process redelivers from
the durable cursor, as locally (at-least-once).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, overload

from .._errors import ConnectionLost
from ..delivery import FollowLoop
from ..format import BadLine, Entry
from ._session import Lost, Session
from ._wire import entry_from_wire, error_from_wire

if TYPE_CHECKING:
    from pathlib import Path

    from ..delivery import Start

__all__ = ["CREDIT", "RemoteFollower"]

log = logging.getLogger("bridge.remote")


class Connection(Protocol):
    """What a follower needs of the client it follows through (RemoteBridge has it):
    the live session (reconnecting), subscription numbers, and whether it was closed."""

    @property
    def log_path(self) -> Path: ...
    @property
    def closed(self) -> bool: ...
    def next_subscription(self) -> int: ...
    def raw_line(self, entry: Entry) -> bytes: ...
    @overload
    def session(self, *, reconnect_for: float | None = None, cancel: None = None) -> Session: ...
    @overload
    def session(self, *, reconnect_for: float | None = None,
                cancel: threading.Event) -> Session | None: ...

CREDIT = 1000
"""Records the host may push ahead of the handler; topped up as they are handed out."""

_WAKE = object()


class RemoteFollower(FollowLoop):
    """Follows a remote bridge's log; see :class:`bridge.Follower` for the arguments."""

    def __init__(
        self,
        bridge: Connection,
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
        self.reconnects = 0
        """How many times this follower resubscribed after a lost connection."""
        self._poll_interval = poll_interval
        self._watch = watch
        self._stop = threading.Event()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._ready: deque[Entry] = deque()
        self._owed = 0
        self._session: Session | None = None
        self._sub = 0
        self._epoch: str | None = None
        self._inode: int | None = None
        self._pos = 0
        self.committed = 0
        self._subscribe({"consumer": consumer, "start": start}, bridge.session())
        self.committed = self._committed_at_start

    # -- subscription --------------------------------------------------------------------

    def _subscribe(self, args: dict[str, Any], session: Session) -> None:
        self._sub = self.bridge.next_subscription()
        reply = session.subscribe(self._sub, self._queue, {
            **args, "poll_interval": self._poll_interval, "watch": self._watch,
            "credit": CREDIT})
        self._session = session
        self._owed = 0
        self._pos = reply["position"]
        self._committed_at_start = reply["committed"]
        self._epoch, self._inode = reply["epoch"], reply["inode"]

    def _resubscribe(self, lost: BaseException) -> None:
        """Reconnect and continue exactly after the last record received."""
        log.warning("follower: %s; resuming at offset %d", lost, self._resume_offset())
        while not self._stop.is_set():
            # Reconnects until it works or a permanent error (host key, login, toolkit).
            try:
                session = self.bridge.session(reconnect_for=float("inf"), cancel=self._stop)
            except ConnectionLost:
                if self.bridge.closed:  # closed on purpose while reconnecting: stop quietly
                    self._stop.set()
                    return
                raise
            if session is None:
                return  # stopped while reconnecting
            try:
                self._subscribe({"consumer": self.consumer, "resume": {
                    "offset": self._resume_offset(), "epoch": self._epoch,
                    "inode": self._inode, "committed": self.committed}}, session)
            except ConnectionLost:
                continue  # died again at once: reconnect again (with backoff)
            self.reconnects += 1
            return

    def _resume_offset(self) -> int:
        # Records already here are handed out before any from the new subscription.
        return self._ready[-1].end if self._ready else self._pos

    # -- position ------------------------------------------------------------------------

    @property
    def position(self) -> int:
        """Byte offset just after the last record handed out (not necessarily committed)."""
        return self._pos

    @property
    def epoch(self) -> str | None:
        """The epoch of the live file being read."""
        return self._epoch

    # -- reading ---------------------------------------------------------------------------

    def _take(self, limit: int) -> list[Entry]:
        out: list[Entry] = []
        while self._ready and len(out) < limit:
            out.append(self._ready.popleft())
        if out:
            self._pos = out[-1].end
            self._owed += len(out)
            if self._owed >= CREDIT // 2 and self._session is not None:
                self._session.notify("credit", {"sub": self._sub, "n": self._owed})
                self._owed = 0
        return out

    def _absorb(self, item: Any) -> None:
        """One item from the queue: records, bad lines, the end of a subscription."""
        if item is _WAKE:
            return
        if isinstance(item, Lost):
            if self.bridge.closed:
                self._stop.set()  # the bridge was closed on purpose: stop, as if told to
            elif self._session is not None and item.error is self._session.error:
                self._resubscribe(item.error)
            return
        if item.get("sub") != self._sub:
            return  # from a subscription that ended
        ev = item.get("ev")
        if ev == "recs":
            self._ready.extend(entry_from_wire(i) for i in item["items"])
        elif ev == "file":
            self._epoch, self._inode = item.get("epoch"), item.get("inode")
        elif ev == "bad":
            for offset, end, reason, line_no in item["items"]:
                self.on_bad_line(BadLine(offset, end, reason, line_no))
        elif ev == "closed":
            raise error_from_wire(item.get("err"))

    def poll(self, limit: int = 1000) -> list[Entry]:
        """Records received since the last call (at most ``limit``), without waiting."""
        while not self._ready:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            self._absorb(item)
        return self._take(limit)

    def wait(self, timeout: float | None = None, limit: int = 1000) -> list[Entry]:
        """New records, waiting up to ``timeout`` seconds (None: until some arrive or stop)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._stop.is_set():
            if self._ready:
                return self._take(limit)
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return []
            try:
                item = self._queue.get(timeout=remaining)
            except queue.Empty:
                return []
            self._absorb(item)
        return []

    def raw_line(self, entry: Entry) -> bytes:
        """The exact bytes of an entry's line on the host, newline included."""
        return self.bridge.raw_line(entry)

    def commit(self, upto: Entry | int | None = None) -> None:
        """Record that everything before ``upto`` (default: all handed out) is processed.

        The host saves the consumer's cursor; the commit is pipelined, not awaited.
        """
        offset = self._pos if upto is None else (upto.end if isinstance(upto, Entry) else upto)
        self.committed = offset
        if self.consumer is not None and self._session is not None:
            self._session.notify("commit", {"sub": self._sub, "offset": offset})

    def run(self, handler: Callable[[Entry], object], *, max_records: int | None = None,
            idle_timeout: float | None = None) -> int:
        """Call ``handler`` for each record, committing after each success (see Follower.run)."""
        handled = 0
        while not self._stop.is_set():
            entries = self.wait(idle_timeout, limit=1000 if max_records is None
                                else max(1, max_records - handled))
            if not entries:
                break
            for pos, entry in enumerate(entries):
                try:
                    handler(entry)
                except BaseException:
                    # That record (uncommitted) and the rest come again from the next wait().
                    self._ready.extendleft(reversed(entries[pos:]))
                    self._pos = entry.offset if pos == 0 else entries[pos - 1].end
                    raise
                self.commit(entry)
                handled += 1
            if max_records is not None and handled >= max_records:
                return handled
        return handled

    def stop(self) -> None:
        """Make :meth:`wait`, iteration and :meth:`run` return soon (from any thread)."""
        self._stop.set()
        self._queue.put(_WAKE)

    def close(self) -> None:
        """Stop, and end the subscription on the host."""
        self.stop()
        if self._session is not None:
            self._session.unsubscribe(self._sub)


    def _log_bad_line(self, bad: BadLine) -> None:
        log.warning("skipped line at offset %d of %s: %s", bad.offset, self.path, bad.reason)
