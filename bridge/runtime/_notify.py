"""sd_notify: tell systemd we are ready, alive, stopping — without libsystemd.

The protocol is one AF_UNIX datagram of ``KEY=value`` lines to ``$NOTIFY_SOCKET``
(a leading ``@`` means the abstract namespace). systemd calls the protocol the
stable interface, so a dozen lines beat a C extension or the ``sdnotify``
package (which swallows every exception).
"""

from __future__ import annotations

import os
import socket

__all__ = ["notify", "watchdog_interval"]


def notify(state: str, *, env: dict[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``); False when no manager is listening.

    Raises OSError when the socket exists but the send fails: that is a real
    problem (e.g. a watchdog that will kill us) and the caller should log it.
    """
    addr = (os.environ if env is None else env).get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr[0] == "@":
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.connect(addr)
        sock.sendall(state.encode())
    return True


def watchdog_interval(env: dict[str, str] | None = None) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half of ``$WATCHDOG_USEC``), or None if off.

    ``$WATCHDOG_PID``, when set, must be our pid: the watchdog is meant for the main process.
    """
    source = os.environ if env is None else env
    usec = source.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = source.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2_000_000 if value > 0 else None
