"""The fallback for a host without the toolkit: read over SFTP, append through ``flock(1)``.

``ssh://host/path?transport=sftp`` opens an :class:`SftpBridge`. It is a
:class:`Bridge` whose log is a private local copy of the remote one:

- **Reading.** Before every read the copy is brought up to date over SFTP from
  the byte offset it has reached (complete lines only; a changed head means the
  file was replaced, and the copy starts again). Folds, inbox, tail and the
  rest are then the local Bridge's own code, on the copy.
- **Appending.** One exec channel per append runs a small ``sh`` script on the
  host that takes ``flock`` on ``bridge.lock`` (the very lock the toolkit's
  writers take), writes the epoch header into an empty file or terminates a
  torn tail with a ``repair`` record, prints the offset and appends the records
  from stdin (and ``sync -d`` in ``always`` durability). Records are capped at
  32,000 bytes, below paramiko's 32 KiB SFTP request size, so that a record is
  one request to any SFTP-based reader or writer too.
- **Following** polls the host over SFTP every ``poll_interval`` (no inotify
  across the network); cursors and PAUSE are files written over SFTP.

What it does not do, compared with ``bridge serve``: state checks (already
done? claimed by another?) and idempotency keys are checked against the copy
just before appending, not under the host's lock, so two writers racing on the
same message can both append (the fold ignores the loser, as it ignores any
writer that does not check); cursors are replaced atomically but without an
fsync (paramiko has no fsync@openssh.com); no shared-group modes; no doctor
checks of the host's permissions.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import stat
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from .._errors import (
    BridgeIOError,
    BridgeUnavailable,
    ConnectionLost,
    InvalidInput,
    LockTimeout,
    RemoteError,
    RemoteUnsupported,
)
from .._url import BridgeURL, parse_url
from ..format._ids import new_id
from ..format._records import PROTOCOL_VERSION, encode
from ..format._time import now_ts
from ..inspection._doctor import DoctorReport, run_doctor
from ..inspection._stats import compute_stats
from ..local._bridge import LOCK_NAME, LOG_NAME, Bridge, BridgeStatus
from ..store._cursor import Cursor, CursorStore
from ..store._fold import Fold
from ..store._fs import Perms
from ..store._pause import PAUSE_NAME, PauseInfo, read_pause, write_pause
from ._session import DEFAULT_HEARTBEAT_TIMEOUT
from ._ssh import exec_channel, open_client, resolve_target

if TYPE_CHECKING:
    import paramiko

    from ..delivery._follow import Follower

__all__ = ["FALLBACK_MAX_RECORD", "SftpBridge"]

log = logging.getLogger("bridge.remote")

FALLBACK_MAX_RECORD = 32_000
"""The largest record the fallback appends: one SFTP request (paramiko splits at 32,768)."""

HEAD = 256
"""Bytes at the start of the file compared on every refresh: a change means it was replaced."""

# $1 dir, $2 repair id, $3 ts, $4 from, $5 epoch header, $6 lock timeout, $7 sync (1/0).
APPEND_SCRIPT = r"""
umask 077
d=$1; log="$d/messages.jsonl"
[ -d "$d" ] || { echo "no bridge directory $d" >&2; exit 66; }
[ -L "$log" ] && { echo "$log is a symlink; refusing to follow it" >&2; exit 65; }
exec 9>>"$d/bridge.lock" || exit 73
flock -w "$6" 9 || { echo "the bridge lock $d/bridge.lock was not free within $6 s" >&2; exit 75; }
size=$(stat -c %s "$log" 2>/dev/null || echo 0)
if [ "$size" -eq 0 ]; then
  printf '%s\n' "$5" >> "$log" || exit 74
elif [ "$(tail -c 1 "$log" | wc -l)" -eq 0 ]; then
  frag=$(tail -c 65536 "$log" | tail -n 1 | wc -c)
  printf '\n{"v":1,"t":"repair","id":"%s","ts":"%s","from":"%s","offset":%d,"bytes":%d}\n' \
    "$2" "$3" "$4" $((size - frag)) "$frag" >> "$log" || exit 74
fi
at=$(stat -c %s "$log")
echo "$at"
cat >> "$log" || { truncate -s "$at" "$log"; echo "append failed; cut back" >&2; exit 74; }
if [ "$7" = 1 ]; then sync -d "$log" 2>/dev/null || sync; fi
"""


class _LocalOnlyLock:
    """Stands in for the bridge lock: the host's flock is taken by each append's script."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()

    def acquire(self, timeout: float | None = -1.0) -> None:
        del timeout
        self._lock.acquire()

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> _LocalOnlyLock:
        self._lock.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def close(self) -> None:
        pass


class _FlockAppender:
    """The bridge's writer, replaced: each append runs APPEND_SCRIPT on the host."""

    def __init__(self, owner: SftpBridge, durability: str, lock_timeout: float) -> None:
        self.owner = owner
        self.durability = durability
        self.lock_timeout = lock_timeout
        self.repairs = 0

    def append(self, lines: bytes | Sequence[bytes]) -> int:
        data = lines if isinstance(lines, bytes) else b"".join(lines)
        agent = self.owner.agent
        eid = new_id(agent)
        header = encode({"v": PROTOCOL_VERSION, "t": "epoch", "id": eid, "ts": now_ts(),
                         "from": agent, "epoch": eid}).rstrip(b"\n").decode()
        args = [self.owner.remote_dir, new_id(agent), now_ts(), agent, header,
                f"{self.lock_timeout:g}", "1" if self.durability == "always" else "0"]
        command = "sh -c " + shlex.quote(APPEND_SCRIPT) + " sh " + " ".join(
            shlex.quote(a) for a in args)
        out, err, status = self.owner.run(command, data)
        if status == 0:
            try:
                return int(out.split()[0])
            except (IndexError, ValueError):
                raise BridgeIOError(f"the append script printed no offset ({err})") from None
        if status == 75:
            raise LockTimeout(err or "the bridge lock on the host was not free")
        if status == 66:
            raise BridgeUnavailable(err)
        if status == 127:
            raise BridgeUnavailable(f"the host lacks a tool the fallback needs ({err}): "
                                    "flock(1) from util-linux and GNU coreutils")
        raise BridgeIOError(f"append on the host failed (exit {status}): {err or 'no reason'}")

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class _SftpCursors(CursorStore):
    """Cursor files in the host's ``cursors/``, replaced atomically over SFTP."""

    def __init__(self, owner: SftpBridge, local: Path) -> None:
        super().__init__(local, Perms.for_group(None), durable=False)
        self.owner = owner

    def _remote(self, consumer: str) -> str:
        return f"{self.owner.remote_dir}/cursors/{self.path_for(consumer).name}"

    def load(self, consumer: str) -> Cursor | None:
        data = self.owner.read_remote(self._remote(consumer))
        local = self.path_for(consumer)
        if data is None:
            local.unlink(missing_ok=True)
            return None
        self._perms.make_dir(self.directory)
        local.write_bytes(data)
        cursor = super().load(consumer)
        if cursor is not None and cursor.inode is not None \
                and cursor.inode == self.owner.remote_inode():
            # The host's file, by its inode: the same file as the local copy being read.
            cursor = replace(cursor, inode=self.owner.copy_inode())
        return cursor

    def save(self, cursor: Cursor) -> None:
        if cursor.inode is not None and cursor.inode == self.owner.copy_inode():
            # Stored under the host file's inode, which the toolkit's followers compare.
            cursor = replace(cursor, inode=self.owner.remote_inode())
        super().save(cursor)
        self.owner.write_remote(self._remote(cursor.consumer),
                                self.path_for(cursor.consumer).read_bytes())

    def delete(self, consumer: str) -> bool:
        super().delete(consumer)
        return self.owner.remove_remote(self._remote(consumer))

    def all(self) -> list[Cursor]:
        names = self.owner.list_remote(f"{self.owner.remote_dir}/cursors")
        out = []
        for name in sorted(names):
            if name.endswith(".json"):
                try:
                    cursor = self.load(name[:-5])
                except InvalidInput:
                    continue
                if cursor is not None:
                    out.append(cursor)
        return out


class SftpBridge(Bridge):
    """A bridge on a host without the toolkit (``?transport=sftp``); see the module docstring.

    Takes the options of :class:`RemoteBridge` that apply (``durability``,
    ``lock_timeout``, ``create``, ``max_record_bytes`` up to 32,000, the SSH
    overrides, ``heartbeat_timeout`` as the timeout of each SFTP request).
    """

    def __init__(self, url: str | BridgeURL, *, agent: str = "cli", durability: str = "always",
                 group: str | None = None, lock_timeout: float | None = None,
                 create: bool = True, max_record_bytes: int | None = None,
                 ssh_config: str | os.PathLike[str] | None = None,
                 known_hosts: str | os.PathLike[str] | None = None,
                 identity_file: str | os.PathLike[str] | None = None,
                 connect_timeout: float | None = None,
                 heartbeat_timeout: float = DEFAULT_HEARTBEAT_TIMEOUT,
                 **ignored: Any) -> None:
        del ignored  # remote_command, reconnect_timeout, check_fs: not used by the fallback
        self.url = url if isinstance(url, BridgeURL) else parse_url(url)
        if self.url.host is None:
            raise InvalidInput(f"{url}: not an ssh:// URL")
        if group is not None:
            raise InvalidInput("the sftp fallback does not share bridges with a group")
        self.target = resolve_target(self.url.host, user=self.url.user, port=self.url.port,
                                     config_path=ssh_config, known_hosts=known_hosts,
                                     identity_file=identity_file,
                                     connect_timeout=connect_timeout)
        self.request_timeout = heartbeat_timeout
        self._io = threading.RLock()
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._mirror = Path(tempfile.mkdtemp(prefix="kami-bridge-sftp-"))
        self._fetched = 0
        self._head = b""
        self._remote_ino: int | None = None
        self._poller: threading.Thread | None = None
        self._closing = threading.Event()
        try:
            self.remote_dir = self._open_directory(create)
            limit = min(max_record_bytes or FALLBACK_MAX_RECORD, FALLBACK_MAX_RECORD)
            super().__init__(self._mirror, agent=agent, durability="none",
                             max_record_bytes=limit, check_fs=False)
            self.lock = _LocalOnlyLock(self._mirror / LOCK_NAME)  # type: ignore[assignment]
            self.writer = _FlockAppender(self, durability,  # type: ignore[assignment]
                                         30.0 if lock_timeout is None else lock_timeout)
            self.cursors = _SftpCursors(self, self._mirror / "cursors")
            self.refresh()
        except BaseException:
            self.close()
            raise

    # -- the connection -------------------------------------------------------------------

    def _connection(self) -> tuple[paramiko.SSHClient, paramiko.SFTPClient]:
        with self._io:
            client, sftp = self._client, self._sftp
            transport = client.get_transport() if client is not None else None
            if client is None or sftp is None or transport is None or not transport.is_active():
                if client is not None:
                    client.close()
                client = open_client(self.target)
                sftp = client.open_sftp()
                # paramiko's keepalive never notices a dead peer: every request has a deadline.
                sftp.get_channel().settimeout(self.request_timeout)  # type: ignore[union-attr]
                self._client, self._sftp = client, sftp
            return client, sftp

    def _lost(self, exc: BaseException) -> RemoteError:
        with self._io:
            if self._client is not None:
                self._client.close()
            self._client = self._sftp = None
        return ConnectionLost(f"SFTP to {self.target.hostname} failed: {exc or type(exc).__name__}"
                              "; the next call reconnects")

    def _open_directory(self, create: bool) -> str:
        path = self.url.path or "~/.claude/kami-bridge"
        rel = path[2:] if path.startswith("~/") else path  # SFTP starts in the home directory
        _, sftp = self._connection()
        try:
            try:
                sftp.stat(rel)
            except FileNotFoundError:
                if not create:
                    raise BridgeUnavailable(f"bridge directory {path} does not exist on "
                                            f"{self.target.hostname}") from None
                parts = PurePosixPath(rel).parts
                for i in range(1, len(parts) + 1):
                    sub = str(PurePosixPath(*parts[:i]))
                    try:
                        sftp.stat(sub)
                    except FileNotFoundError:
                        sftp.mkdir(sub, 0o700)
            return sftp.normalize(rel)
        except RemoteError:
            raise
        except OSError as exc:
            raise BridgeUnavailable(f"{path} on {self.target.hostname}: {exc}") from None

    def run(self, command: str, stdin: bytes) -> tuple[str, str, int]:
        """Run ``command`` on the host with ``stdin``; (stdout, stderr, exit status)."""
        client, _ = self._connection()
        channel = exec_channel(client, command, timeout=self.target.connect_timeout)
        channel.settimeout(self.request_timeout + 30)  # the script may wait for the lock
        try:
            channel.sendall(stdin)
            channel.shutdown_write()
            out = channel.makefile("rb").read().decode("utf-8", "replace")
            err = channel.makefile_stderr("rb").read().decode("utf-8", "replace").strip()
            status = channel.recv_exit_status()
        except (OSError, EOFError) as exc:
            raise self._lost(exc) from None
        finally:
            channel.close()
        return out, " / ".join(err.splitlines()[-3:]), status

    def read_remote(self, path: str) -> bytes | None:
        _, sftp = self._connection()
        try:
            with sftp.open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._lost(exc) from None

    def write_remote(self, path: str, data: bytes) -> None:
        """Replace ``path`` atomically: a temporary file (0600), then posix-rename."""
        _, sftp = self._connection()
        tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            parent = str(PurePosixPath(path).parent)
            try:
                sftp.stat(parent)
            except FileNotFoundError:
                sftp.mkdir(parent, 0o700)
            with sftp.open(tmp, "wb") as f:
                f.chmod(0o600)
                f.write(data)
            sftp.posix_rename(tmp, path)
        except OSError as exc:
            raise self._lost(exc) from None

    def remove_remote(self, path: str) -> bool:
        _, sftp = self._connection()
        try:
            sftp.remove(path)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise self._lost(exc) from None
        return True

    def list_remote(self, path: str) -> list[str]:
        _, sftp = self._connection()
        try:
            return sftp.listdir(path)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise self._lost(exc) from None

    # -- the local copy ---------------------------------------------------------------------

    def refresh(self) -> int:
        """Bring the local copy up to date with the host's log; returns the bytes fetched."""
        with self._io:
            _, sftp = self._connection()
            remote = f"{self.remote_dir}/{LOG_NAME}"
            try:
                st = sftp.stat(remote)
                if st.st_mode is not None and stat.S_ISLNK(st.st_mode):
                    raise BridgeUnavailable(f"{remote} is a symlink; refusing to follow it")
                size = st.st_size or 0
                if size == 0 and self._fetched == 0:
                    return 0
                with sftp.open(remote, "rb") as f:
                    head = f.read(min(HEAD, size))
                    if size < self._fetched or head[:len(self._head)] != self._head[:len(head)]:
                        self._restart_copy()
                    if size <= self._fetched:
                        return 0
                    f.seek(self._fetched)
                    f.prefetch(size - self._fetched)
                    data = f.read(size - self._fetched)
            except FileNotFoundError:
                if self._fetched:
                    self._restart_copy()
                return 0
            except OSError as exc:
                raise self._lost(exc) from None
            complete = data[: data.rfind(b"\n") + 1]  # never a line still being written
            if complete:
                fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, complete)
                finally:
                    os.close(fd)
                self._fetched += len(complete)
                if len(self._head) < HEAD:
                    self._head = head
            return len(complete)

    def copy_inode(self) -> int | None:
        try:
            return self.log_path.stat().st_ino
        except FileNotFoundError:
            return None

    def remote_inode(self) -> int | None:
        """The inode of the host's log (SFTP does not say; ``stat`` on the host does)."""
        if self._remote_ino is None:
            out, _, status = self.run(
                "stat -c %i " + shlex.quote(f"{self.remote_dir}/{LOG_NAME}"), b"")
            self._remote_ino = int(out.split()[0]) if status == 0 and out.split() else None
        return self._remote_ino

    def _restart_copy(self) -> None:
        """The host's file was replaced: start a new copy (a new inode, as rotation makes)."""
        log.warning("%s on %s was replaced; reading it again from the start", LOG_NAME,
                    self.target.hostname)
        fresh = self._mirror / f".{LOG_NAME}.new"
        os.close(os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        fresh.replace(self.log_path)
        self._fetched, self._head, self._remote_ino = 0, b"", None

    def fold(self) -> Fold:
        self.refresh()
        return super().fold()

    def tail(self, count: int, predicate: Any = None) -> Any:
        self.refresh()
        return super().tail(count, predicate)

    def follow(self, consumer: str | None = None, **kwargs: Any) -> Follower:
        """A follower of the local copy, which a thread refreshes every ``poll_interval``."""
        self.refresh()
        interval = float(kwargs.get("poll_interval", 0.25))
        if self._poller is None:
            self._poller = threading.Thread(target=self._poll, args=(interval,), daemon=True,
                                            name=f"bridge-sftp {self.target.hostname}")
            self._poller.start()
        return super().follow(consumer, **kwargs)

    def _poll(self, interval: float) -> None:
        failures = 0
        while not self._closing.wait(interval if not failures else min(5.0, interval * 2 **
                                                                             failures)):
            try:
                self.refresh()
                failures = 0
            except RemoteError as exc:
                failures += 1
                log.warning("%s", exc)
            except Exception:
                failures += 1
                log.exception("refreshing the copy of %s failed", self.url)

    # -- pause ------------------------------------------------------------------------------

    def paused(self) -> PauseInfo | None:
        data = self.read_remote(f"{self.remote_dir}/{PAUSE_NAME}")
        copy = self._mirror / PAUSE_NAME
        if data is None:
            copy.unlink(missing_ok=True)
            return None
        copy.write_bytes(data)
        return read_pause(self._mirror)

    def is_paused(self) -> bool:
        _, sftp = self._connection()
        try:
            sftp.lstat(f"{self.remote_dir}/{PAUSE_NAME}")
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise self._lost(exc) from None
        return True

    def pause(self, reason: str | None = None, *, by: str | None = None) -> PauseInfo:
        who = self._name(by, "name")
        info = write_pause(self._mirror, self.perms, by=who, reason=reason)
        self.write_remote(f"{self.remote_dir}/{PAUSE_NAME}",
                          (self._mirror / PAUSE_NAME).read_bytes())
        self._audit("pause", by=who, reason=reason)
        return info

    def resume(self, *, by: str | None = None) -> bool:
        who = self._name(by, "name")
        was = self.remove_remote(f"{self.remote_dir}/{PAUSE_NAME}")
        if was:
            self._audit("resume", by=who)
        return was

    # -- summary ----------------------------------------------------------------------------

    def entries(self, start: int = 0, end: int | None = None) -> Any:
        self.refresh()
        return super().entries(start, end)

    def doctor(self, *, repair: bool = False) -> DoctorReport:
        """``bridge doctor`` on the copy: the lines and the fold (not the host's file modes)."""
        if repair:
            raise RemoteUnsupported(f"{self.url}: the SFTP fallback cannot repair; run bridge "
                                    "doctor --repair on the host")
        self.refresh()
        report = run_doctor(self)
        report.path = f"{self.remote_dir}/{LOG_NAME}"
        report.findings = [f for f in report.findings if f.kind != "permissions"]
        return report

    def stats(self) -> dict[str, Any]:
        """``bridge stats`` of the copy."""
        self.refresh()
        return compute_stats(self)

    def status(self) -> BridgeStatus:
        st = super().status()
        st.extra["transport"] = "sftp"
        return BridgeStatus(Path(self.remote_dir), st.paused, st.counts, st.size, st.records,
                            st.bad_lines, st.last_activity, st.epoch, self.writer.durability,
                            None, st.extra)

    def close(self) -> None:
        self._closing.set()
        if self._poller is not None:
            self._poller.join(5)
        if hasattr(self, "writer"):
            super().close()
        with self._io:
            if self._client is not None:
                self._client.close()
            self._client = self._sftp = None
        shutil.rmtree(self._mirror, ignore_errors=True)

    def __repr__(self) -> str:
        return f"SftpBridge({str(self.url)!r}, agent={self.agent!r})"
