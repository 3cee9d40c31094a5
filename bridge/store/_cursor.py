"""Consumer cursors: where a named consumer has finished processing the log.

One small JSON file per consumer in ``cursors/``, replaced atomically (write a
temporary file, fsync it, rename it over the old one), and only after the
consumer's handler succeeded: a crash between handling and saving redelivers
that record (at-least-once), so handlers key their effects on the record id.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import orjson

from .._errors import InvalidInput
from ..format import now_ts, validate_agent_name
from ._fs import Perms, atomic_write

__all__ = ["Cursor", "CursorStore"]


@dataclass(frozen=True, slots=True)
class Cursor:
    """A consumer's position: byte ``offset`` in the live file identified by ``epoch``/``inode``."""

    consumer: str
    offset: int
    epoch: str | None = None
    inode: int | None = None
    updated: str | None = None

    def to_bytes(self) -> bytes:
        return orjson.dumps({
            "v": 1, "consumer": self.consumer, "epoch": self.epoch, "inode": self.inode,
            "offset": self.offset, "updated": self.updated or now_ts(),
        }) + b"\n"  # fmt: skip


class CursorStore:
    """The ``cursors/`` directory of one bridge."""

    def __init__(self, directory: Path, perms: Perms, *, durable: bool = True) -> None:
        self.directory = directory
        self._perms = perms
        self._durable = durable

    def path_for(self, consumer: str) -> Path:
        validate_agent_name(consumer, "consumer name")
        return self.directory / f"{consumer}.json"

    def load(self, consumer: str) -> Cursor | None:
        """The saved cursor, or None if the consumer has none yet."""
        path = self.path_for(consumer)
        try:
            obj = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(
                f"cursor file {path} is damaged ({exc}); delete it to restart that consumer "
                "from the beginning, or fix the offset by hand"
            ) from exc
        offset = obj.get("offset") if isinstance(obj, dict) else None
        if not isinstance(offset, int) or offset < 0:
            raise InvalidInput(f"cursor file {path} has no valid offset")
        inode = obj.get("inode")
        epoch = obj.get("epoch")
        return Cursor(
            consumer=consumer,
            offset=offset,
            epoch=epoch if isinstance(epoch, str) else None,
            inode=inode if isinstance(inode, int) else None,
            updated=obj.get("updated"),
        )

    def save(self, cursor: Cursor) -> None:
        """Persist atomically."""
        self._perms.make_dir(self.directory)
        atomic_write(self.path_for(cursor.consumer), cursor.to_bytes(), self._perms,
                     durable=self._durable)

    def delete(self, consumer: str) -> bool:
        try:
            os.unlink(self.path_for(consumer))
        except FileNotFoundError:
            return False
        return True

    def all(self) -> list[Cursor]:
        """Every saved cursor (damaged files are skipped)."""
        out: list[Cursor] = []
        if not self.directory.is_dir():
            return out
        for path in sorted(self.directory.glob("*.json")):
            try:
                cursor = self.load(path.stem)
            except InvalidInput:
                continue
            if cursor is not None:
                out.append(cursor)
        return out
