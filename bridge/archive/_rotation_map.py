"""Relocation maps: where a byte offset of a replaced live file lies in its successor.

A rotation copies the records it keeps into a new file, in order, and then the
records appended while it worked (the *delta*) byte for byte. Offsets of the
old file therefore map to the new one by runs: each kept stretch of the old
file ``[old, old + length)`` is at ``[new, new + length)`` in the new file, and
everything from the snapshot offset ``delta_old`` up to ``end`` (where the
seal was appended) is at ``delta_new + (offset - delta_old)``.

Two files per rotation in ``maps/`` (named after the old file's epoch, or
``inode-N`` for a file without a header):

- ``<old>.runs.json``: the kept runs before the snapshot, written while the
  new file is built (it can be long: one run per stretch of kept records);
- ``<old>.json``: the small header (new epoch, delta, end), written under the
  bridge lock just before the new file is renamed into place. A map without
  it is from a rotation that never committed, and is not used.

A cursor that lies in a stretch that was archived (possible only for a
consumer without a saved cursor when the rotation planned, since rotation
never archives records after any saved cursor) moves to the next kept record,
and a warning names the archive: those records were archived unread.
"""

from __future__ import annotations

import bisect
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import orjson

from ..store import Perms, atomic_write

__all__ = ["MAPS_DIR", "RotationMap", "load_map", "map_key", "relocate_offset",
           "write_map_header", "write_map_runs"]

log = logging.getLogger("bridge")

MAPS_DIR = "maps"
"""Where relocation maps live, inside the bridge directory."""

MAX_CHAIN = 64
"""Rotations a cursor can be behind and still be relocated (each hop reads one map)."""


def map_key(epoch: str | None, inode: int | None) -> str | None:
    """The name a file's map is stored under: its epoch, else ``inode-N``."""
    if epoch:
        return epoch
    return f"inode-{inode}" if inode else None


@dataclass(frozen=True, slots=True)
class RotationMap:
    """One rotation's map from the old file's offsets to the new file's."""

    old: str
    new: str
    delta_old: int
    delta_new: int
    end: int
    created: str
    header_end: int = 0
    directory: Path | None = None

    def _runs(self) -> list[int]:
        if self.directory is None:
            return []
        try:
            raw = (self.directory / MAPS_DIR / f"{self.old}.runs.json").read_bytes()
            runs = orjson.loads(raw)
        except (FileNotFoundError, orjson.JSONDecodeError):
            return []
        return runs if isinstance(runs, list) else []

    def relocate(self, offset: int) -> tuple[int, bool]:
        """(offset in the new file, whether archived records were skipped to get there)."""
        if offset >= self.delta_old:
            return self.delta_new + min(offset, self.end) - self.delta_old, False
        flat = self._runs()
        starts = flat[0::3]
        i = bisect.bisect_right(starts, offset) - 1
        if i >= 0:
            old, new, length = flat[3 * i], flat[3 * i + 1], flat[3 * i + 2]
            if offset < old + length:
                return new + offset - old, False
        # In a stretch that was not kept: continue at the next kept record.
        nxt = i + 1
        target = flat[3 * nxt + 1] if 3 * nxt < len(flat) else self.delta_new
        return target, offset >= self.header_end


def write_map_runs(directory: Path, perms: Perms, key: str, runs: list[int]) -> None:
    """Write the kept runs (flat ``old, new, length`` triples) of a rotation in progress."""
    perms.make_dir(directory / MAPS_DIR)
    atomic_write(directory / MAPS_DIR / f"{key}.runs.json", orjson.dumps(runs), perms)


def write_map_header(directory: Path, perms: Perms, rmap: RotationMap) -> None:
    """Write the map's header: from now on the map is used (called under the bridge lock)."""
    data = orjson.dumps({
        "v": 1, "old": rmap.old, "new": rmap.new, "delta_old": rmap.delta_old,
        "delta_new": rmap.delta_new, "end": rmap.end, "created": rmap.created,
        "header_end": rmap.header_end,
    })  # fmt: skip
    atomic_write(directory / MAPS_DIR / f"{rmap.old}.json", data, perms)


def load_map(directory: Path, key: str) -> RotationMap | None:
    """The committed map of the file named ``key``, or None."""
    try:
        obj = orjson.loads((directory / MAPS_DIR / f"{key}.json").read_bytes())
    except (FileNotFoundError, NotADirectoryError, orjson.JSONDecodeError):
        return None
    try:
        return RotationMap(str(obj["old"]), str(obj["new"]), int(obj["delta_old"]),
                           int(obj["delta_new"]), int(obj["end"]), str(obj["created"]),
                           int(obj.get("header_end", 0)), directory)
    except (KeyError, TypeError, ValueError):
        return None


def remove_map(directory: Path, key: str) -> None:
    """Delete both files of a map (missing ones are fine)."""
    for name in (f"{key}.json", f"{key}.runs.json"):
        try:
            os.unlink(directory / MAPS_DIR / name)
        except FileNotFoundError:
            pass


def list_maps(directory: Path) -> list[RotationMap]:
    """Every committed map, oldest rotation first."""
    folder = directory / MAPS_DIR
    if not folder.is_dir():
        return []
    maps = []
    for path in folder.glob("*.json"):
        if path.name.endswith(".runs.json"):
            continue
        rmap = load_map(directory, path.name[: -len(".json")])
        if rmap is not None:
            maps.append(rmap)
    maps.sort(key=lambda m: m.created)
    return maps


def relocate_offset(
    directory: Path, old_epoch: str | None, old_offset: int, new_epoch: str | None,
    *, old_inode: int | None = None,
) -> int | None:
    """The offset in the live file ``new_epoch`` equivalent to ``old_offset`` in an older one.

    Follows the chain of maps when the position is several rotations old. None
    when no chain of committed maps links the two files.
    """
    key = map_key(old_epoch, old_inode)
    if key is None or new_epoch is None:
        return None
    offset = old_offset
    for _ in range(MAX_CHAIN):
        rmap = load_map(directory, key)
        if rmap is None:
            return None
        offset, skipped = rmap.relocate(offset)
        if skipped:
            log.warning(
                "a position in %s (epoch %s) lay among records that rotation archived; "
                "continuing at the next live record (the archived ones are in %s/archive)",
                directory, key, directory)
        if rmap.new == new_epoch:
            return offset
        key = rmap.new
    return None
