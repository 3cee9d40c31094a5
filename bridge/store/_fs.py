"""Filesystem helpers: private files, atomic replacement, and the network-filesystem check."""

from __future__ import annotations

import contextlib
import grp
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from .._errors import BridgeUnavailable, ConfigError, UnsupportedFilesystem

LOG_NAME = "messages.jsonl"
"""The live log's name inside a bridge directory."""


def default_directory() -> Path:
    """``$BRIDGE_DIR``, else ``~/.claude/kami-bridge`` (the seed's location)."""
    env = os.environ.get("BRIDGE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".claude" / "kami-bridge"

__all__ = [
    "Perms",
    "atomic_write",
    "check_filesystem",
    "filesystem_type",
    "fsync_dir",
    "open_private",
    "write_all",
]

MOUNTINFO = Path("/proc/self/mountinfo")
"""Where mounts are read from (a module constant so tests can point it at a fixture)."""

# Filesystems where O_APPEND from several hosts is not atomic, or where
# inotify does not see other hosts' writes (log-and-locking.md §1.4, §1.5).
_NETWORK_FS = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "9p", "ceph",
    "glusterfs", "lustre", "gpfs", "beegfs", "davfs", "sshfs",
})  # fmt: skip

_WHY = {
    "nfs": "NFS has no atomic append, so lines from two hosts tear",
    "fuse": "FUSE filesystems such as sshfs split appends (measured: sshfs tore 200-byte lines)",
    "other": "appends there are not atomic across hosts and inotify does not see remote writes",
}


@dataclass(frozen=True, slots=True)
class Perms:
    """Modes and owning group for the bridge's files (0600/0700, or 0660/2770 with a group)."""

    gid: int | None = None

    @classmethod
    def for_group(cls, group: str | int | None) -> Perms:
        """Resolve a group name or id; None means private to the owner."""
        if group is None or group == "":
            return cls(None)
        if isinstance(group, int) or str(group).isdigit():
            return cls(int(group))
        try:
            return cls(grp.getgrnam(str(group)).gr_gid)
        except KeyError:
            raise ConfigError("group", f"no such group {group!r}") from None

    @property
    def file_mode(self) -> int:
        return 0o600 if self.gid is None else 0o660

    @property
    def dir_mode(self) -> int:
        # setgid on the directory makes new files inherit the shared group.
        return 0o700 if self.gid is None else 0o2770

    def apply_fd(self, fd: int) -> None:
        """Set the exact mode (umask may have cleared bits) and the group on a new file."""
        os.fchmod(fd, self.file_mode)
        if self.gid is not None:
            os.fchown(fd, -1, self.gid)

    def make_dir(self, path: Path) -> None:
        """Create ``path`` (and parents) if missing; only a directory we create gets our mode."""
        if path.is_dir():
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.mkdir()
        except FileExistsError:
            return
        except OSError as exc:
            raise BridgeUnavailable(
                f"cannot create bridge directory {path}: {exc.strerror}") from exc
        if self.gid is not None:
            os.chown(path, -1, self.gid)
        os.chmod(path, self.dir_mode)


def open_private(path: Path, flags: int, perms: Perms) -> int:
    """Open (creating if needed) with O_NOFOLLOW|O_CLOEXEC; a newly created file gets ``perms``."""
    flags |= os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, perms.file_mode)
    except FileExistsError:
        return os.open(path, flags)
    try:
        perms.apply_fd(fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write all of ``data`` to ``fd`` (a file being built, where a short write just
    continues; the bridge's own append is one write and is never split)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def fsync_dir(path: Path) -> None:
    """fsync a directory so that a new or renamed entry in it survives a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, perms: Perms, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` so a reader sees the old or the new bytes, never a mix.

    Writes a temporary file next to it, fsyncs it (when ``durable``), then renames
    it over ``path``: after a crash the old content or the new is there, whole.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                 perms.file_mode)
    try:
        perms.apply_fd(fd)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if durable:
            os.fdatasync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    os.close(fd)
    os.replace(tmp, path)


def _unescape_mountinfo(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def filesystem_type(path: Path, mountinfo: Path | None = None) -> str | None:
    """The filesystem type of the mount holding ``path`` (e.g. ``ext4``), or None if unknown."""
    try:
        target = os.path.realpath(path)
        text = (mountinfo or MOUNTINFO).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    best, best_type = "", None
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = left.split()
        if len(fields) < 5:
            continue
        mount_point = _unescape_mountinfo(fields[4])
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, best_type = mount_point, right.split()[0] if right.split() else None
    return best_type


def check_filesystem(path: Path, mountinfo: Path | None = None) -> str | None:
    """Raise UnsupportedFilesystem if ``path`` is on a network or FUSE filesystem.

    Returns the filesystem type found (None when it cannot be told).
    """
    fstype = filesystem_type(path, mountinfo)
    if fstype is None:
        return None
    base = fstype.split(".", 1)[0]
    if base in {"fuse", "fuseblk"} or fstype in _NETWORK_FS or base in _NETWORK_FS:
        if base.startswith("nfs"):
            why = _WHY["nfs"]
        elif base.startswith("fuse") or fstype == "sshfs":
            why = _WHY["fuse"]
        else:
            why = _WHY["other"]
        raise UnsupportedFilesystem(
            f"bridge directory {path} is on {fstype}: {why}; keep the bridge on a local disk "
            "and let other hosts reach it with an ssh:// URL"
        )
    return fstype


def mode_problems(path: Path, perms: Perms) -> list[str]:
    """Ways in which ``path``'s permissions are looser than ``perms`` allow."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return []
    want = perms.dir_mode if stat.S_ISDIR(st.st_mode) else perms.file_mode
    extra = stat.S_IMODE(st.st_mode) & ~want & 0o777
    if extra:
        return [f"{path} is mode {stat.S_IMODE(st.st_mode):04o}, looser than {want:04o}"]
    return []
