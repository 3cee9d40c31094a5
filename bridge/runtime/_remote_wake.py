"""Waking an agent when a bridge without local files changes: records arrive, we wake.

For a bridge whose log is a file here (``capabilities.local_files``) the agent
watches the directory with inotify. For any other backend (``ssh://``, where
the host watches and pushes every appended record to a remote follower;
``memory://``) a thread here waits on a follower and writes a byte into a pipe
the agent's loop selects on, so the agent reacts in milliseconds instead of
polling. PAUSE is not pushed: the loop asks for it every iteration.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from .._errors import BridgeError
from ..delivery import WakePipe

if TYPE_CHECKING:
    from .._api import Backend

__all__ = ["RemoteWaker"]

log = logging.getLogger("bridge")


class RemoteWaker:
    """Same interface as :class:`bridge.delivery._watch.ChangeWaiter` (fileno, clear, close)."""

    mode = "push"
    poll_interval = 5.0
    """The agent's longest sleep without a push: how late a resume (PAUSE removed) is noticed."""

    def __init__(self, bridge: Backend) -> None:
        self._pipe = WakePipe()
        self._follower = bridge.follow(start="end")
        self._thread = threading.Thread(target=self._run, name="remote-wake", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._follower.stopped:
            try:
                if self._follower.wait(timeout=1.0):
                    self._pipe.set()
            except BridgeError as exc:  # the follower reconnects itself; just report it
                log.warning("remote follower: %s", exc)
                self._pipe.set()
                self._follower.stop()

    def fileno(self) -> int:
        return self._pipe.fileno()

    def clear(self) -> None:
        self._pipe.clear()

    def wait(self, timeout: float | None = None) -> bool:
        return self._pipe.wait(timeout)

    def close(self) -> None:
        self._follower.close()
        self._thread.join(timeout=5)
        self._pipe.close()
