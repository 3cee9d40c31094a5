"""What a backend can do beyond the operations every backend answers (data, not classes)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["Capabilities"]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend can do beyond the operations every backend answers.

    An operation a backend cannot do raises :class:`bridge.RemoteUnsupported`
    (exit 9) with a line saying what to use instead; these flags let a caller
    choose before it asks.
    """

    local_files: bool
    """The log is a file on this machine: ``directory`` and ``log_path`` name it, it can be
    watched with inotify, and positions are byte offsets into it."""
    rotate: bool
    """:meth:`Backend.rotate` moves finished messages into archives."""
    search_archives: bool
    """:meth:`Backend.search` with ``archives=True`` reaches rotated months."""
    repair: bool
    """:meth:`Backend.doctor` with ``repair=True`` can finish an interrupted rotation."""
    groups: bool
    """Files can be shared with a Unix group (``group=``, ``$BRIDGE_GROUP``)."""
    remote: bool
    """Calls cross a network: each may fail with a ConnectionLost and be retried."""

    def to_dict(self) -> dict[str, bool]:
        return asdict(self)
