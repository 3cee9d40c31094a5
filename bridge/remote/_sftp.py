"""The fallback for a host without the toolkit: read over SFTP, append through ``flock(1)``.

``ssh://host/path?transport=sftp`` opens an :class:`SftpBridge`. It is a backend
of its own (not a :class:`bridge.Bridge`: its log is on another host), made of
parts that each do one thing:

- **the connection** (:class:`_SftpLink`): one SSH client and its SFTP session,
  replaced on the next call after a failure; every paramiko call goes through
  :func:`~bridge.remote._errors.map_paramiko_errors`, so every failure is a
  :class:`bridge.BridgeError` naming the host (and the file).
- **the copy** (:class:`_LogCopy`): a private local copy of the host's log,
  brought up to date over SFTP before every read from the byte offset it has
  reached (complete lines only; a changed head means the file was replaced, and
  the copy starts again). A local :class:`bridge.Bridge` over the copy answers
  the reads (folds, inbox, tail, history, search): its own code, on the copy.
  It never writes.
- **the appender** (:class:`_HostAppender`): one exec channel per append runs a
  small ``sh`` script on the host that takes ``flock`` on ``bridge.lock`` (the
  very lock the toolkit's writers take), writes the epoch header into an empty
  file or terminates a torn tail with a ``repair`` record, prints the offset and
  appends the records from stdin (and ``sync -d`` in ``always`` durability).
  Records are capped at 32,000 bytes, below paramiko's 32 KiB SFTP request size,
  so that a record is one request to any SFTP-based reader or writer too.
  Records are built and state changes checked with the code every backend uses
  (``format._compose``, ``store._transitions``). A change that depends on the
  log's state (a claim, a reply, a status, an idempotency key) is checked against
  the copy and appended only if the host's log gained no record since (the script
  compares under the flock; if it did, the copy is refreshed and the check runs
  again), so check-then-append is atomic on the host, as under the toolkit's lock.
- **following** polls the host over SFTP every ``poll_interval`` (no inotify
  across the network) into the copy, which a :class:`bridge.Follower` reads;
  cursors (:class:`_SftpCursors`) and PAUSE are files written over SFTP.

What it does not do, compared with ``bridge serve`` (see :attr:`capabilities`):
rotation, archives (search and lookups see the live file only), repair, and
shared-group modes; those raise :class:`bridge.RemoteUnsupported` (a group is
InvalidInput) saying what to use instead. A pause already there is kept, but
checked just before writing PAUSE, not under the host's lock; cursors are
replaced atomically but without an fsync (paramiko has no fsync@openssh.com);
the doctor does not check the host's file modes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from .._capabilities import Capabilities
from .._errors import (
    BridgeError,
    BridgeIOError,
    BridgeUnavailable,
    ConnectionLost,
    InvalidInput,
    LockTimeout,
    NotFound,
    RemoteError,
    RemoteUnsupported,
)
from .._url import BridgeURL, parse_url
from ..format import (
    PROTOCOL_VERSION,
    REPLY_INHERITS,
    BatchItem,
    Entry,
    compose_batch_item,
    compose_event,
    compose_message,
    compose_record,
    compose_status,
    encode,
    format_ts,
    new_id,
    now_ts,
    validate_agent_name,
)
from ..inspection import PingResult
from ..local import Bridge
from ..store import (
    DEFAULT_LEASE,
    DEFAULT_OLDER_THAN,
    DURABILITY_MODES,
    LOG_NAME,
    PAUSE_NAME,
    BridgeLock,
    BridgeStatus,
    Cursor,
    CursorStore,
    Durability,
    Fold,
    History,
    MessageView,
    PauseInfo,
    Perms,
    SendResult,
    StatusShortcuts,
    check_claim,
    check_lease,
    check_open,
    check_release,
    check_terminal_status,
    read_pause,
    write_pause,
)
from ._errors import map_paramiko_errors
from ._session import DEFAULT_HEARTBEAT_TIMEOUT
from ._ssh import (
    CommandOutput,
    SSHTarget,
    open_client,
    open_sftp,
    put_file,
    resolve_target,
    run_command,
)

if TYPE_CHECKING:
    import paramiko

    from ..archive import Hit, RotationResult
    from ..delivery import Follower
    from ..inspection import DoctorReport

__all__ = ["FALLBACK_MAX_RECORD", "SftpBridge"]

log = logging.getLogger("bridge.remote")

T = TypeVar("T")

FALLBACK_MAX_RECORD = 32_000
"""The largest record the fallback appends: one SFTP request (paramiko splits at 32,768)."""

HEAD = 256
"""Bytes at the start of the file compared on every refresh: a change means it was replaced."""

DEFAULT_LOCK_TIMEOUT = 30.0
"""How long the append script waits for the host's bridge lock (``flock -w``)."""

# $1 dir, $2 repair id, $3 ts, $4 from, $5 epoch header, $6 lock timeout, $7 sync (1/0),
# $8 the size the client's checks read up to ("": append whatever came since).
APPEND_SCRIPT = r"""
umask 077
d=$1; log="$d/messages.jsonl"
[ -d "$d" ] || { echo "no bridge directory $d" >&2; exit 66; }
[ -L "$log" ] && { echo "$log is a symlink; refusing to follow it" >&2; exit 65; }
exec 9>>"$d/bridge.lock" || exit 73
flock -w "$6" 9 || { echo "the bridge lock $d/bridge.lock was not free within $6 s" >&2; exit 75; }
size=$(stat -c %s "$log" 2>/dev/null || echo 0)
if [ -n "$8" ] && [ "$size" -ne "$8" ]; then
  if [ "$size" -lt "$8" ] || [ "$(tail -c +$(($8 + 1)) "$log" | wc -l)" -ne 0 ]; then
    echo "the log changed since it was read" >&2; exit 76
  fi
fi
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

_NO_ROTATE = ("the SFTP fallback cannot rotate: rotation rewrites the log under the host's "
              "lock, which takes the toolkit on the host; run bridge rotate there, or install "
              "kami-bridge on the host and drop ?transport=sftp from the URL")
_NO_ARCHIVES = ("the SFTP fallback searches the live file only, not the archives: search "
                "without archives, run bridge search --archives on the host, or install "
                "kami-bridge there and drop ?transport=sftp from the URL")
_NO_REPAIR = ("the SFTP fallback cannot repair: run bridge doctor --repair on the host")


LOG_CHANGED = 76
"""The append script's status when the log gained records after the size it was given."""


class _LogChanged(Exception):
    """A conditional append found records the caller's checks had not seen: check again."""


class _SftpLink:
    """The SSH connection of one fallback: a client, its SFTP session, exec channels.

    A failed connection is dropped; the next call opens a new one. SFTP requests
    are serialized (paramiko's SFTPClient reads replies on the calling thread);
    exec channels run alongside them.
    """

    def __init__(self, target: SSHTarget, request_timeout: float) -> None:
        self.target = target
        self.where = target.hostname
        self.request_timeout = request_timeout
        self.connect_ms: float | None = None
        self._conn_lock = threading.Lock()
        self._sftp_lock = threading.RLock()
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._closed = False

    def _connected(self) -> tuple[paramiko.SSHClient, paramiko.SFTPClient]:
        from ._errors import link_alive

        with self._conn_lock:
            if self._closed:
                raise ConnectionLost(f"the SFTP fallback to {self.where} is closed")
            client, sftp = self._client, self._sftp
            if client is not None and sftp is not None and link_alive(sftp):
                return client, sftp
            self._close_locked()
            started = time.perf_counter()
            client = open_client(self.target)
            try:
                sftp = open_sftp(client, timeout=self.request_timeout, where=self.where)
            except BaseException:
                client.close()
                raise
            self.connect_ms = (time.perf_counter() - started) * 1000
            self._client, self._sftp = client, sftp
            return client, sftp

    def _drop(self, client: paramiko.SSHClient) -> None:
        """Forget ``client`` after a failure (not a newer one another thread opened)."""
        with self._conn_lock:
            if self._client is client:
                self._close_locked()

    def _close_locked(self) -> None:
        client, self._client, self._sftp = self._client, None, None
        if client is not None:
            # A connection being thrown away: nothing it says on the way out matters.
            with contextlib.suppress(BridgeError), \
                    map_paramiko_errors(self.where, "closing the connection"):
                client.close()

    def close(self) -> None:
        with self._conn_lock:
            self._closed = True
            self._close_locked()

    @contextmanager
    def sftp(self, doing: str, path: str | None = None, *, writing: bool = False
             ) -> Iterator[paramiko.SFTPClient]:
        """The SFTP session, for one request or a few; paramiko's errors translated.

        Nothing but SFTP calls belongs in the block: any OSError in it is taken for
        the host's answer (a local file's error would be reported as the host's).
        """
        with self._sftp_lock:
            client, sftp = self._connected()
            with map_paramiko_errors(self.where, doing, path=path, writing=writing, link=sftp,
                                     on_lost=lambda: self._drop(client)):
                yield sftp

    def run(self, command: str, stdin: bytes, *, what: str, timeout: float) -> CommandOutput:
        """Run ``command`` on the host with ``stdin``, waiting at most ``timeout`` after it."""
        client, _ = self._connected()
        return run_command(client, command, stdin=stdin, timeout=timeout,
                           start_timeout=self.target.connect_timeout, what=what,
                           where=self.where, on_lost=lambda: self._drop(client))

    def read(self, path: str) -> bytes | None:
        """The file's bytes, or None if it does not exist."""
        with self.sftp("reading", path) as sftp:
            try:
                with sftp.open(path, "rb") as f:
                    return f.read()
            except FileNotFoundError:
                return None

    def replace(self, path: str, data: bytes) -> None:
        """Replace ``path`` atomically: a temporary file (0600), then posix-rename."""
        with self._sftp_lock:
            client, sftp = self._connected()
            put_file(sftp, path, data, make_parent=True, where=self.where,
                     on_lost=lambda: self._drop(client))

    def remove(self, path: str) -> bool:
        """Remove ``path``; False if it was not there."""
        with self.sftp("removing", path, writing=True) as sftp:
            try:
                sftp.remove(path)
            except FileNotFoundError:
                return False
        return True

    def exists(self, path: str) -> bool:
        with self.sftp("reading", path) as sftp:
            try:
                sftp.lstat(path)
            except FileNotFoundError:
                return False
        return True

    def listdir(self, path: str) -> list[str]:
        with self.sftp("listing", path) as sftp:
            try:
                return sftp.listdir(path)
            except FileNotFoundError:
                return []

    def open_directory(self, path: str, create: bool) -> str:
        """The absolute path of the bridge directory ``path`` (made 0700 if missing and
        ``create``); SFTP starts in the home directory, so ``~/`` is dropped."""
        rel = path[2:] if path.startswith("~/") else path
        with self.sftp("opening the bridge directory", path) as sftp:
            try:
                st = sftp.stat(rel)
            except FileNotFoundError:
                if not create:
                    raise BridgeUnavailable(f"bridge directory {path} does not exist on "
                                            f"{self.where}") from None
                parts = PurePosixPath(rel).parts
                for i in range(1, len(parts) + 1):
                    sub = str(PurePosixPath(*parts[:i]))
                    try:
                        sftp.stat(sub)
                    except FileNotFoundError:
                        sftp.mkdir(sub, 0o700)
            else:
                if st.st_mode is not None and not stat.S_ISDIR(st.st_mode):
                    raise BridgeUnavailable(f"{path} on {self.where} is a file, not a bridge "
                                            "directory (check the URL's path)")
            return sftp.normalize(rel)


class _LogCopy:
    """The private local copy of the host's log, brought up to date on demand."""

    def __init__(self, link: _SftpLink, remote: str, local: Path) -> None:
        self._link = link
        self.remote = remote
        self.local = local
        self.fetched = 0
        """Bytes of the host's file the copy holds (always whole lines)."""
        self._head = b""
        self._remote_ino: int | None = None
        self._sync = threading.RLock()

    def refresh(self) -> int:
        """Fetch what the host's log gained since the last refresh; returns the bytes."""
        with self._sync:
            replaced = gone = False
            data = head = b""
            with self._link.sftp("reading", self.remote) as sftp:
                try:
                    st = sftp.lstat(self.remote)
                except FileNotFoundError:
                    gone = True
                else:
                    if st.st_mode is not None and stat.S_ISLNK(st.st_mode):
                        raise BridgeUnavailable(f"{self.remote} on {self._link.where} is a "
                                                "symlink; refusing to follow it")
                    if st.st_mode is not None and stat.S_ISDIR(st.st_mode):
                        # The local bridge's wording and code (exit 7), with the path.
                        raise BridgeIOError(f"cannot open {self.remote} on {self._link.where}: "
                                            "it is a directory, not the bridge's log file "
                                            "(move it away)")
                    size = st.st_size or 0
                    if size or self.fetched:
                        with sftp.open(self.remote, "rb") as f:
                            head = f.read(min(HEAD, size))
                            replaced = size < self.fetched or \
                                head[:len(self._head)] != self._head[:len(head)]
                            start = 0 if replaced else self.fetched
                            if size > start:
                                f.seek(start)
                                f.prefetch(size - start)
                                data = f.read(size - start)
            if gone:
                if self.fetched:
                    self._restart()
                return 0
            if replaced:
                self._restart()
            complete = data[: data.rfind(b"\n") + 1]  # never a line still being written
            if complete:
                self._append_locally(complete)
                self.fetched += len(complete)
                if len(self._head) < HEAD:
                    self._head = head
            return len(complete)

    def _append_locally(self, data: bytes) -> None:
        try:
            fd = os.open(self.local, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
        except OSError as exc:
            raise BridgeIOError(f"cannot write the fallback's local copy {self.local}: "
                                f"{exc.strerror or exc}") from None

    def _restart(self) -> None:
        """The host's file was replaced: start a new copy (a new inode, as rotation makes)."""
        log.warning("%s on %s was replaced; reading it again from the start", self.remote,
                    self._link.where)
        fresh = self.local.with_name(f".{self.local.name}.new")
        try:
            os.close(os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
            fresh.replace(self.local)
        except OSError as exc:
            raise BridgeIOError(f"cannot replace the fallback's local copy {self.local}: "
                                f"{exc.strerror or exc}") from None
        self.fetched, self._head, self._remote_ino = 0, b"", None

    def copy_inode(self) -> int | None:
        try:
            return self.local.stat().st_ino
        except FileNotFoundError:
            return None

    def remote_inode(self) -> int | None:
        """The inode of the host's log (SFTP does not say; ``stat`` on the host does)."""
        if self._remote_ino is None:
            out = self._link.run("stat -c %i " + shlex.quote(self.remote), b"",
                                 what="stat", timeout=self._link.request_timeout)
            words = out.stdout.split()
            self._remote_ino = int(words[0]) if out.status == 0 and words else None
        return self._remote_ino


class _HostAppender:
    """Appends lines to the host's log with APPEND_SCRIPT, under the host's flock."""

    def __init__(self, link: _SftpLink, remote_dir: str, agent: str, durability: Durability,
                 lock_timeout: float) -> None:
        self._link = link
        self._dir = remote_dir
        self._agent = agent
        self.durability: Durability = durability
        self.lock_timeout = lock_timeout

    def append(self, lines: Sequence[bytes], *, expect: int | None = None) -> int:
        """Append ``lines`` (whole records) in one write; the offset of the first.

        ``expect``: the size of the log the caller's checks read; if complete records
        were appended after it, nothing is written and _LogChanged is raised (a torn
        fragment there is not a record: it is terminated as usual).
        """
        data = b"".join(lines)
        agent = self._agent
        eid = new_id(agent)
        header = encode({"v": PROTOCOL_VERSION, "t": "epoch", "id": eid, "ts": now_ts(),
                         "from": agent, "epoch": eid}).rstrip(b"\n").decode()
        args = [self._dir, new_id(agent), now_ts(), agent, header, f"{self.lock_timeout:g}",
                "1" if self.durability == "always" else "0",
                "" if expect is None else str(expect)]
        command = "sh -c " + shlex.quote(APPEND_SCRIPT) + " sh " + " ".join(
            shlex.quote(a) for a in args)
        try:
            result = self._link.run(command, data, what="the append script",
                                    timeout=self.lock_timeout + self._link.request_timeout)
        except ConnectionLost as exc:
            raise ConnectionLost(f"{exc}; the append may or may not have been applied on the "
                                 "host (check, or send with an idempotency key, which makes "
                                 "a retry safe)") from None
        out = result.stdout.decode("utf-8", "replace")
        text = result.stderr.decode("utf-8", "replace").strip()
        err = " / ".join(text.splitlines()[-3:])
        status, where = result.status, self._link.where
        if status == 0:
            try:
                return int(out.split()[0])
            except (IndexError, ValueError):
                raise BridgeIOError(f"the append script on {where} printed no offset "
                                    f"({err or 'nothing on stderr'})") from None
        if status == LOG_CHANGED and expect is not None:
            raise _LogChanged
        if status == 75:
            raise LockTimeout(f"{err or 'the bridge lock on the host was not free'} ({where})")
        if status in (65, 66, 73):
            reason = err or f"the bridge directory {self._dir} cannot be used"
            raise BridgeUnavailable(f"{where}: {reason}")
        if status == 127:
            raise BridgeUnavailable(f"{where} lacks a tool the fallback needs ({err}): "
                                    "flock(1) from util-linux and GNU coreutils")
        if status == -1:
            raise BridgeIOError(f"the append script on {where} ended without an exit status "
                                "(killed by a signal?); the append may or may not have been "
                                "applied")
        raise BridgeIOError(f"append on {where} failed (exit {status}): {err or 'no reason'}")


class _SftpCursors(CursorStore):
    """Cursor files in the host's ``cursors/``, replaced atomically over SFTP."""

    def __init__(self, link: _SftpLink, copy: _LogCopy, remote: str, local: Path) -> None:
        super().__init__(local, Perms.for_group(None), durable=False)
        self._link = link
        self._copy = copy
        self._remote_dir = remote

    def _remote(self, consumer: str) -> str:
        return f"{self._remote_dir}/{self.path_for(consumer).name}"

    def load(self, consumer: str) -> Cursor | None:
        data = self._link.read(self._remote(consumer))
        local = self.path_for(consumer)
        if data is None:
            local.unlink(missing_ok=True)
            return None
        self._perms.make_dir(self.directory)
        local.write_bytes(data)
        cursor = super().load(consumer)
        if cursor is not None and cursor.inode is not None \
                and cursor.inode == self._copy.remote_inode():
            # The host's file, by its inode: the same file as the local copy being read.
            cursor = replace(cursor, inode=self._copy.copy_inode())
        return cursor

    def save(self, cursor: Cursor) -> None:
        if cursor.inode is not None and cursor.inode == self._copy.copy_inode():
            # Stored under the host file's inode, which the toolkit's followers compare.
            cursor = replace(cursor, inode=self._copy.remote_inode())
        super().save(cursor)
        self._link.replace(self._remote(cursor.consumer),
                           self.path_for(cursor.consumer).read_bytes())

    def delete(self, consumer: str) -> bool:
        super().delete(consumer)
        return self._link.remove(self._remote(consumer))

    def all(self) -> list[Cursor]:
        out = []
        for name in sorted(self._link.listdir(self._remote_dir)):
            if name.endswith(".json"):
                try:
                    cursor = self.load(name[:-5])
                except InvalidInput:
                    continue
                if cursor is not None:
                    out.append(cursor)
        return out


@dataclass
class _MirrorStore:
    """The copy's directory as following, the doctor and statistics see it (a
    :class:`bridge.store.LocalStore`), with the host's cursors."""

    agent: str
    directory: Path
    log_path: Path
    perms: Perms
    lock: BridgeLock
    cursors: CursorStore


class SftpBridge(StatusShortcuts):
    """A bridge on a host without the toolkit (``?transport=sftp``); see the module docstring.

    Takes the options of :class:`RemoteBridge` that apply (``durability``,
    ``lock_timeout`` for the host's lock, 30 s by default, ``create``,
    ``max_record_bytes`` up to 32,000, the SSH overrides, ``heartbeat_timeout``
    as the timeout of each SFTP request); ``check_fs``, ``remote_command`` and
    ``reconnect_timeout`` are accepted and unused (nothing of the toolkit runs on
    the host; a failed connection is replaced by the next call). ``group`` is
    refused: the fallback creates its files 0600.

    Raises (at once): what connecting raises (HostUnreachable, UnknownHostKey,
    HostKeyChanged, AuthenticationFailed), RemoteUnsupported (no SFTP on the host),
    BridgeUnavailable (no such directory and ``create=False``), InvalidInput.
    """

    capabilities = Capabilities(local_files=False, rotate=False, search_archives=False,
                                repair=False, groups=False, remote=True)
    """What this backend can do (see :class:`bridge.Capabilities`): the messages of the
    live file; rotation, archives, repair and group sharing need the toolkit on the host."""

    def __init__(self, url: str | BridgeURL, *, agent: str = "cli",
                 durability: Durability = "always", group: str | None = None,
                 lock_timeout: float | None = None, create: bool = True,
                 max_record_bytes: int | None = None, check_fs: bool = True,
                 remote_command: str | None = None,
                 heartbeat_timeout: float = DEFAULT_HEARTBEAT_TIMEOUT,
                 ssh_config: str | os.PathLike[str] | None = None,
                 known_hosts: str | os.PathLike[str] | None = None,
                 identity_file: str | os.PathLike[str] | None = None,
                 connect_timeout: float | None = None,
                 reconnect_timeout: float | None = None) -> None:
        del check_fs, remote_command, reconnect_timeout  # see the docstring
        self.url = url if isinstance(url, BridgeURL) else parse_url(url)
        if self.url.host is None:
            raise InvalidInput(f"{url}: not an ssh:// URL")
        if group is not None:
            raise InvalidInput("the sftp fallback does not share bridges with a group; "
                               "install kami-bridge on the host and drop ?transport=sftp")
        if durability not in DURABILITY_MODES:
            raise InvalidInput(f"durability must be one of {', '.join(DURABILITY_MODES)}")
        self.agent = validate_agent_name(agent)
        self.max_record_bytes = min(max_record_bytes or FALLBACK_MAX_RECORD,
                                    FALLBACK_MAX_RECORD)
        self.target = resolve_target(self.url.host, user=self.url.user, port=self.url.port,
                                     config_path=ssh_config, known_hosts=known_hosts,
                                     identity_file=identity_file,
                                     connect_timeout=connect_timeout)
        self._link = _SftpLink(self.target, heartbeat_timeout)
        self._mutex = threading.RLock()  # check-then-append, within this process
        self._closing = threading.Event()
        self._poller: threading.Thread | None = None
        self._mirror = Path(tempfile.mkdtemp(prefix="kami-bridge-sftp-"))
        self._reader: Bridge | None = None
        try:
            remote_dir = self._link.open_directory(self.url.path or "~/.claude/kami-bridge",
                                                   create)
            self.directory = Path(remote_dir)
            """The bridge directory on the host."""
            self.log_path = self.directory / LOG_NAME
            self._reader = Bridge(self._mirror, agent=self.agent, durability="none",
                                  max_record_bytes=self.max_record_bytes, check_fs=False)
            self._copy = _LogCopy(self._link, str(self.log_path), self._reader.log_path)
            cursors = _SftpCursors(self._link, self._copy, f"{remote_dir}/cursors",
                                   self._mirror / "cursors")
            self._store = _MirrorStore(self.agent, self._mirror, self._reader.log_path,
                                       self._reader.perms, self._reader.lock, cursors)
            self._appender = _HostAppender(
                self._link, remote_dir, self.agent, durability,
                DEFAULT_LOCK_TIMEOUT if lock_timeout is None else lock_timeout)
            self._copy.refresh()
        except BaseException:
            self.close()
            raise

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def durability(self) -> Durability:
        return self._appender.durability

    def close(self) -> None:
        """Stop polling, close the connection, delete the copy (the object is unusable)."""
        self._closing.set()
        poller = self._poller
        if poller is not None and poller is not threading.current_thread():
            poller.join(5)
        if self._reader is not None:
            self._reader.close()
        self._link.close()
        shutil.rmtree(self._mirror, ignore_errors=True)

    def __enter__(self) -> SftpBridge:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SftpBridge({str(self.url)!r}, agent={self.agent!r})"

    # -- the copy ------------------------------------------------------------------------

    def _read(self) -> Bridge:
        """The reader of the copy, after bringing the copy up to date."""
        reader = self._reader
        if reader is None or self._closing.is_set():
            raise ConnectionLost(f"{self.url} is closed")
        self._copy.refresh()
        return reader

    def _missing(self, message_id: str) -> NotFound:
        return NotFound(f"no message {message_id} in {self.log_path} on {self._link.where} "
                        "(the SFTP fallback reads the live file only, not the archives)")

    def _known(self, message_id: str) -> Bridge:
        reader = self._read()
        if reader.fold().get(message_id) is None:
            raise self._missing(message_id)
        return reader

    def _poll(self, interval: float) -> None:
        failures = 0
        while not self._closing.wait(interval if not failures else
                                     min(5.0, interval * 2 ** failures)):
            try:
                self._copy.refresh()
                failures = 0
            except RemoteError as exc:
                failures += 1
                log.warning("%s", exc)
            except Exception:
                failures += 1
                log.exception("refreshing the copy of %s failed", self.url)

    # -- writing -------------------------------------------------------------------------
    #
    # A change that depends on the log's state (a claim, a reply, an idempotency key) is
    # checked against the copy, then appended on the condition that the host's log gained
    # no record since the size the check read (the append script tests it under the
    # host's flock). If it did, the copy is brought up to date and the check runs again:
    # check-then-append is atomic on the host, as under the toolkit's own lock.

    def _who(self, name: str | None, what: str) -> str:
        return self.agent if name is None else validate_agent_name(name, what)

    def _append(self, lines: Sequence[bytes], *, expect: int | None = None) -> int:
        if self._closing.is_set():
            raise ConnectionLost(f"{self.url} is closed")
        return self._appender.append(lines, expect=expect)

    def _checked(self) -> tuple[Bridge, Fold, int]:
        """The reader, its fold brought up to date, and the size of the log that fold read
        (the condition of the append that follows)."""
        reader = self._read()
        fold = reader.fold()
        return reader, fold, fold.offset

    def _until_applied(self, what: str, attempt: Callable[[], T]) -> T:
        """Run ``attempt`` (checks, then one conditional append) until no other writer
        came in between; gives up with LockTimeout after the lock timeout."""
        give_up = time.monotonic() + self._appender.lock_timeout
        tries = 0
        while True:
            tries += 1
            try:
                with self._mutex:
                    return attempt()
            except _LogChanged:
                if time.monotonic() > give_up:
                    raise LockTimeout(
                        f"{what} on {self._link.where}: other writers changed the log "
                        f"between every check and its append ({tries} tries in "
                        f"{self._appender.lock_timeout:g} s); try again") from None

    def send(self, content: str, *, to: str | None = None, type: str = "request",
             reply_to: str | None = None, priority: str | None = None,
             metadata: Mapping[str, Any] | None = None, idempotency_key: str | None = None,
             expires_in: float | None = None, sender: str | None = None) -> SendResult:
        """Append a message (see :meth:`bridge.Bridge.send`); a repeated idempotency key
        appends nothing and returns the original (``duplicate=True``)."""
        who = self._who(sender, "sender")
        mid, line = compose_message(content, who, to, type, reply_to, priority, metadata,
                                    idempotency_key, expires_in, self.max_record_bytes)
        if idempotency_key is None:
            return SendResult(mid, self._append((line,)))
        key = idempotency_key

        def attempt() -> SendResult:
            _, fold, size = self._checked()
            original = fold.idempotency.get((who, key))
            if original is not None:
                return SendResult(original, fold.messages[original].offset, True)
            return SendResult(mid, self._append((line,), expect=size))

        return self._until_applied("send", attempt)

    def send_many(self, items: Iterable[Mapping[str, Any]], *, chunk: int = 1000
                  ) -> Iterator[SendResult]:
        """Append many messages, ``chunk`` per append (see :meth:`bridge.Bridge.send_many`)."""
        batch: list[BatchItem] = []
        try:
            for pos, item in enumerate(items, 1):
                batch.append(compose_batch_item(pos, item, self.agent, self.max_record_bytes))
                if len(batch) >= chunk:
                    yield from self._append_batch(batch)
                    batch = []
        except InvalidInput:
            if batch:
                yield from self._append_batch(batch)
            raise
        if batch:
            yield from self._append_batch(batch)

    def _append_batch(self, batch: list[BatchItem]) -> Iterator[SendResult]:
        if all(key is None for *_, key in batch):
            offset = self._append([line for _, line, _, _ in batch])
            results = []
            for mid, line, _, _ in batch:
                results.append(SendResult(mid, offset))
                offset += len(line)
            return iter(results)

        def attempt() -> list[SendResult]:
            _, fold, size = self._checked()
            results: list[SendResult] = []
            lines: list[bytes] = []
            pending: list[tuple[int, str]] = []  # (index in results, id) of lines to write
            seen: dict[tuple[str, str], str] = {}
            for mid, line, who, key in batch:
                if key is not None:
                    original = fold.idempotency.get((who, key)) or seen.get((who, key))
                    if original is not None:
                        results.append(SendResult(original, -1, True))
                        continue
                    seen[(who, key)] = mid
                pending.append((len(results), mid))
                results.append(SendResult(mid, -1))
                lines.append(line)
            if lines:
                offset = self._append(lines, expect=size)
                for (idx, mid), line in zip(pending, lines, strict=True):
                    results[idx] = SendResult(mid, offset)
                    offset += len(line)
            return results

        return iter(self._until_applied("send_many", attempt))

    def _require_open(self, ref: str, who: str, *, force: bool = False
                      ) -> tuple[MessageView, int]:
        """The open message ``ref`` and the log size the check read (NotFound,
        StateConflict)."""
        reader, fold, size = self._checked()
        state = fold.get(ref)
        if state is None:
            raise self._missing(ref)
        check_open(state, who, time.time(), force=force)
        return reader.get(ref), size

    def reply(self, ref: str, content: str, *, sender: str | None = None,
              metadata: Mapping[str, Any] | None = None) -> SendResult:
        """Answer ``ref`` and mark it done, in one append (see :meth:`bridge.Bridge.reply`)."""
        who = self._who(sender, "sender")

        def attempt() -> SendResult:
            original, size = self._require_open(ref, who)
            meta = {k: original.message.metadata[k] for k in REPLY_INHERITS
                    if k in original.message.metadata}
            meta.update(metadata or {})
            mid, line = compose_message(content, who, original.message.sender, "response",
                                        ref, None, meta, None, None, self.max_record_bytes)
            _, done = compose_status(ref, "done", who)
            return SendResult(mid, self._append((line, done), expect=size))

        return self._until_applied("reply", attempt)

    def set_status(self, ref: str, status: str, *, reason: str | None = None,
                   sender: str | None = None, force: bool = False) -> str:
        """Append a terminal status for ``ref`` (see :meth:`bridge.Bridge.set_status`)."""
        check_terminal_status(status)
        who = self._who(sender, "sender")

        def attempt() -> str:
            _, size = self._require_open(ref, who, force=force or status == "cancelled")
            sid, line = compose_status(ref, status, who, reason=reason)
            self._append((line,), expect=size)
            return sid

        return self._until_applied(status, attempt)

    def claim(self, ref: str, *, lease: float = DEFAULT_LEASE, sender: str | None = None
              ) -> MessageView:
        """Take ``ref`` for ``lease`` seconds (see :meth:`bridge.Bridge.claim`)."""
        who = self._who(sender, "claimer")
        check_lease(lease)

        def attempt() -> None:
            view, size = self._require_open(ref, who)
            now = time.time()
            check_claim(view.state, now)
            _, line = compose_status(ref, "claimed", who, lease_until=format_ts(now + lease))
            self._append((line,), expect=size)

        self._until_applied("claim", attempt)
        return self._read().get(ref)

    def claim_next(self, agent: str | None = None, *, lease: float = DEFAULT_LEASE,
                   types: Iterable[str] = ("request",)) -> MessageView | None:
        """Claim the first available message for ``agent`` (priority, then age), or None."""
        who = self._who(agent, "agent")
        check_lease(lease)
        wanted = frozenset(types)

        def attempt() -> str | None:
            _, fold, size = self._checked()
            now = time.time()
            for state in fold.inbox(who, now, include_claimed=False):
                if state.type in wanted and state.available(now):
                    _, line = compose_status(state.id, "claimed", who,
                                             lease_until=format_ts(now + lease))
                    self._append((line,), expect=size)
                    return state.id
            return None

        claimed = self._until_applied("claim_next", attempt)
        return None if claimed is None else self._read().get(claimed)

    def release(self, ref: str, *, delay: float | None = None, reason: str | None = None,
                sender: str | None = None) -> None:
        """Hand a claimed message back (see :meth:`bridge.Bridge.release`)."""
        who = self._who(sender, "sender")

        def attempt() -> None:
            view, size = self._require_open(ref, who)
            check_release(view.state)
            nb = format_ts(time.time() + delay) if delay else None
            _, line = compose_status(ref, "pending", who, not_before=nb, reason=reason)
            self._append((line,), expect=size)

        self._until_applied("release", attempt)

    def append_record(self, record: Mapping[str, Any]) -> int:
        """Append any valid record as is (see :meth:`bridge.Bridge.append_record`)."""
        line = compose_record(record, self.max_record_bytes)
        return self._append((line,))

    def event(self, name: str, **fields: Any) -> None:
        """Append an ``event`` record (audit trail: pause, resume...)."""
        self._append((compose_event(self.agent, name, fields),))

    # -- reading -------------------------------------------------------------------------

    def get(self, message_id: str) -> MessageView:
        """A message and its state (NotFound if the live file does not have it)."""
        return self._known(message_id).get(message_id)

    def inbox(self, agent: str, *, include_claimed: bool = True) -> list[MessageView]:
        return self._read().inbox(agent, include_claimed=include_claimed)

    def dead_letters(self, agent: str) -> list[MessageView]:
        return self._read().dead_letters(agent)

    def history(self, message_id: str) -> History:
        return self._known(message_id).history(message_id)

    def thread(self, message_id: str) -> list[MessageView]:
        return self._known(message_id).thread(message_id)

    def tail(self, count: int, predicate: Callable[[dict[str, Any]], bool] | None = None
             ) -> tuple[list[Entry], int]:
        return self._read().tail(count, predicate)

    def raw_line(self, entry: Entry) -> bytes:
        """The exact bytes of an entry's line, from the copy (the host's bytes)."""
        reader = self._reader
        if reader is None or self._closing.is_set():
            raise ConnectionLost(f"{self.url} is closed")
        if entry.end > self._copy.fetched:
            self._copy.refresh()
        return reader.raw_line(entry)

    def fold(self) -> Fold:
        return self._read().fold()

    def follow(self, consumer: str | None = None, **kwargs: Any) -> Follower:
        """A follower of the copy, which a thread refreshes every ``poll_interval``
        (the arguments of :class:`bridge.Follower`); named cursors live on the host."""
        from ..delivery import Follower

        self._read()
        interval = float(kwargs.get("poll_interval", 0.25))
        with self._mutex:
            if self._poller is None:
                self._poller = threading.Thread(target=self._poll, args=(interval,),
                                                daemon=True,
                                                name=f"bridge-sftp {self._link.where}")
                self._poller.start()
        return Follower(self._store, consumer, **kwargs)

    # -- control -------------------------------------------------------------------------

    def _pause_path(self) -> str:
        return f"{self.directory}/{PAUSE_NAME}"

    def paused(self) -> PauseInfo | None:
        data = self._link.read(self._pause_path())
        copy = self._mirror / PAUSE_NAME
        if data is None:
            copy.unlink(missing_ok=True)
            return None
        copy.write_bytes(data)
        return read_pause(self._mirror)

    def is_paused(self) -> bool:
        return self._link.exists(self._pause_path())

    def pause(self, reason: str | None = None, *, by: str | None = None) -> PauseInfo:
        """Write PAUSE on the host, then note it in the log; a pause already there stands
        (checked just before, not under the host's lock)."""
        who = self._who(by, "name")
        current = self.paused()
        if current is not None:
            return current
        info = write_pause(self._mirror, self._store.perms, by=who, reason=reason)
        self._link.replace(self._pause_path(), (self._mirror / PAUSE_NAME).read_bytes())
        self._audit("pause", by=who, reason=reason)
        return info

    def resume(self, *, by: str | None = None) -> bool:
        who = self._who(by, "name")
        was = self._link.remove(self._pause_path())
        if was:
            self._audit("resume", by=who)
        return was

    # -- inspection and maintenance --------------------------------------------------------

    def status(self) -> BridgeStatus:
        """Counts of the copy (brought up to date), the host's pause state."""
        fold = self._read().fold()
        return BridgeStatus(directory=self.directory, paused=self.paused(),
                            counts=fold.counts(time.time()), size=self._copy.fetched,
                            records=fold.records, bad_lines=len(fold.bad_lines),
                            last_activity=fold.last_ts, epoch=fold.epoch,
                            durability=self.durability, filesystem=None,
                            extra={"transport": "sftp"})

    def doctor(self, *, repair: bool = False) -> DoctorReport:
        """``bridge doctor`` on the copy: the lines and the fold (not the host's file modes).

        ``repair=True`` raises RemoteUnsupported: repair runs on the host.
        """
        from ..inspection import run_doctor

        if repair:
            raise RemoteUnsupported(f"{self.url}: {_NO_REPAIR}")
        self._read()
        report = run_doctor(self._store)
        report.path = str(self.log_path)
        report.findings = [f for f in report.findings if f.kind != "permissions"]
        return report

    def stats(self) -> dict[str, Any]:
        """``bridge stats`` of the copy (brought up to date)."""
        from ..inspection import compute_stats

        self._read()
        return compute_stats(self._store)

    def rotate(self, *, older_than: float | None = DEFAULT_OLDER_THAN,
               max_size: int | None = None, compress: bool = False, dry_run: bool = False,
               progress: Callable[[int, int], None] | None = None) -> RotationResult:
        """Raises RemoteUnsupported: rotation needs the toolkit on the host."""
        del older_than, max_size, compress, dry_run, progress
        raise RemoteUnsupported(f"{self.url}: {_NO_ROTATE}")

    def search(self, text: str, *, regex: bool = False, ignore_case: bool = False,
               since: float | None = None, until: float | None = None,
               sender: str | None = None, to: str | None = None, archives: bool = False,
               limit: int | None = None) -> Iterator[Hit]:
        """Messages of the live file whose content matches ``text``, newest first (see
        :func:`bridge.search`); ``archives=True`` raises RemoteUnsupported."""
        if archives:
            raise RemoteUnsupported(f"{self.url}: {_NO_ARCHIVES}")
        return self._read().search(text, regex=regex, ignore_case=ignore_case, since=since,
                                   until=until, sender=sender, to=to, limit=limit)

    def ping(self, rounds: int = 5) -> PingResult:
        """Round trips of an SFTP request, and the host's pause state.

        ``protocol`` is 0 and ``server`` says so: no bridge protocol runs on the host.
        """
        rtts = []
        for _ in range(max(1, rounds)):
            t0 = time.perf_counter()
            with self._link.sftp("pinging", str(self.directory)) as sftp:
                sftp.stat(str(self.directory))
            rtts.append((time.perf_counter() - t0) * 1000)
        return PingResult(str(self.url), self._link.connect_ms, rtts, 0,
                          "not installed (SFTP fallback)", str(self.directory), self.paused())


if TYPE_CHECKING:
    from .._api import Backend

    _check: type[Backend] = SftpBridge
