"""The Bridge: one directory, one live log, and the operations agents use on it."""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import orjson

from .._capabilities import Capabilities
from .._errors import (
    BridgeIOError,
    BridgeUnavailable,
    InvalidInput,
    NotFound,
    RecordTooLarge,
    StateConflict,
)
from ..format import (
    DEFAULT_MAX_RECORD_BYTES,
    MESSAGE_TYPES,
    PROTOCOL_VERSION,
    REPLY_INHERITS,
    BadLine,
    BatchItem,
    Entry,
    Message,
    check_record,
    compose_batch_item,
    compose_event,
    compose_message,
    compose_record,
    compose_status,
    decode_line,
    format_ms,
    format_ts,
    iter_lines,
    iter_lines_reverse,
    line_start_before,
    read_line_at,
    scan,
    ulid,
    validate_agent_name,
)
from ..inspection import PingResult
from ..store import (
    DEFAULT_LEASE,
    DEFAULT_OLDER_THAN,
    LOG_NAME,
    BridgeLock,
    BridgeStatus,
    CursorStore,
    Durability,
    Fold,
    History,
    LogWriter,
    MessageState,
    MessageView,
    PauseInfo,
    Perms,
    SendResult,
    StatusShortcuts,
    check_claim,
    check_filesystem,
    check_lease,
    check_open,
    check_release,
    check_terminal_status,
    default_directory,
    read_pause,
    remove_pause,
    write_pause,
)

if TYPE_CHECKING:
    from ..archive import Hit, RotationResult
    from ..delivery import Follower
    from ..inspection import DoctorReport


__all__ = [
    "DEFAULT_MAX_RECORD_BYTES",
    "LOCK_NAME",
    "LOG_NAME",
    "Bridge",
    "BridgeStatus",
    "History",
    "MessageView",
    "SendResult",
    "default_directory",
]

log = logging.getLogger("bridge")

LOCK_NAME = "bridge.lock"
CURSORS_NAME = "cursors"


_new_tuple = tuple.__new__
_dumps = orjson.dumps
_APPEND_NEWLINE = orjson.OPT_APPEND_NEWLINE


class Bridge(StatusShortcuts):
    """A bridge directory: the live log ``messages.jsonl``, its lock, cursors and PAUSE.

    Args:
        directory: the bridge directory (default: :func:`default_directory`).
        agent: the name written as ``from`` unless a call says otherwise.
        durability: ``always`` (fsync each append), ``batch`` or ``none``.
        max_record_bytes: the size limit of one encoded message.
        group: a group to share the directory with (files 0660, directory 2770).
        lock_timeout: seconds to wait for the lock before LockTimeout. The default,
            None, waits in the kernel: holders keep the lock for microseconds, and
            a kernel wait hands it over at once, while a bounded wait has to poll
            (measured: 8 contending writer processes reach 0.83x the throughput
            of one when waiting in the kernel, 0.41x when polling). The CLI
            uses 30 s so that a stuck holder becomes an error naming its PID.
        create: create the directory if it is missing.
        check_fs: refuse network and FUSE filesystems.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        agent: str = "cli",
        durability: Durability = "always",
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        group: str | int | None = None,
        lock_timeout: float | None = None,
        create: bool = True,
        check_fs: bool = True,
    ) -> None:
        self.directory = Path(directory).expanduser() if directory else default_directory()
        self.agent = validate_agent_name(agent)
        self.max_record_bytes = max_record_bytes
        self.perms = Perms.for_group(group)
        if self.directory.exists() and not self.directory.is_dir():
            raise BridgeUnavailable(f"{self.directory} is a file, not a bridge directory "
                                    "(check --dir / $BRIDGE_DIR)")
        self.created = False
        """Whether this opening made the directory (a typo in $BRIDGE_DIR makes a new one)."""
        if create:
            self.created = not self.directory.exists()
            self.perms.make_dir(self.directory)
        elif not self.directory.is_dir():
            raise BridgeUnavailable(
                f"bridge directory {self.directory} does not exist (create it with any write "
                "command, e.g. bridge send, or check --dir / $BRIDGE_DIR)"
            )
        self.filesystem = check_filesystem(self.directory) if check_fs else None
        self.log_path = self.directory / LOG_NAME
        if self.log_path.is_dir():
            # The writer's own wording and code (exit 7), for readers too, with the path.
            raise BridgeIOError(f"cannot open {self.log_path}: it is a directory, not the "
                                "bridge's log file (move it away)")
        self.lock = BridgeLock(self.directory / LOCK_NAME, self.perms, lock_timeout)
        self.writer = LogWriter(self.log_path, self.lock, self.perms, agent=self.agent,
                                durability=durability)
        self.cursors = CursorStore(self.directory / CURSORS_NAME, self.perms,
                                   durable=durability != "none")
        self._fold: Fold | None = None
        self._fold_fd: int | None = None
        self._fold_ino = 0
        self._fold_mutex = threading.RLock()
        # Names already validated; None stands for "no recipient" on the fast send path.
        self._names_ok: set[str | None] = {self.agent, None}

    # -- lifecycle ---------------------------------------------------------------

    @property
    def durability(self) -> Durability:
        return self.writer.durability

    def close(self) -> None:
        """Flush and close every descriptor (the object is unusable afterwards)."""
        self.writer.close()
        self.lock.close()
        with self._fold_mutex:
            if self._fold_fd is not None:
                os.close(self._fold_fd)
                self._fold_fd = None

    def __enter__(self) -> Bridge:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Bridge({str(self.directory)!r}, agent={self.agent!r})"

    # -- building records ----------------------------------------------------------

    def _name(self, name: str | None, what: str) -> str:
        if name is None:
            return self.agent
        if name not in self._names_ok:
            validate_agent_name(name, what)
            self._names_ok.add(name)
        return name

    def _message_record(
        self,
        content: str,
        sender: str,
        to: str | None,
        type: str,
        reply_to: str | None,
        priority: str | None,
        metadata: Mapping[str, Any] | None,
        idempotency_key: str | None,
        expires_in: float | None,
    ) -> tuple[str, bytes]:
        if to is not None and to not in self._names_ok:
            # Checked once and remembered: the next send to ``to`` takes send()'s fast path.
            self._name(to, "recipient")
        return compose_message(content, sender, to, type, reply_to, priority, metadata,
                               idempotency_key, expires_in, self.max_record_bytes)

    def _status_record(self, ref: str, status: str, sender: str, **extra: Any) -> tuple[str, bytes]:
        return compose_status(ref, status, sender, **extra)

    # -- sending ---------------------------------------------------------------------

    def send(
        self,
        content: str,
        *,
        to: str | None = None,
        type: str = "request",
        reply_to: str | None = None,
        priority: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        expires_in: float | None = None,
        sender: str | None = None,
    ) -> SendResult:
        """Append a message and return its id.

        With ``idempotency_key``, a repeated send by the same sender appends
        nothing and returns the original id (``duplicate=True``).

        Raises:
            InvalidInput: a bad field; RecordTooLarge: over ``max_record_bytes``.
            BridgeIOError: the append failed (nothing was appended).
        """
        who = self.agent if sender is None else self._name(sender, "sender")
        if (reply_to is None and priority is None and not metadata and expires_in is None
                and idempotency_key is None and to in self._names_ok
                and type in MESSAGE_TYPES and content.__class__ is str):
            # The common case, built inline: this path is most of an agent's sends.
            # (_message_record is the general one; both write the same fields in order.)
            ms = time.time_ns() // 1_000_000
            mid = f"{who}-{ulid(ms)}"
            line = _dumps({"v": PROTOCOL_VERSION, "t": "msg", "id": mid, "ts": format_ms(ms),
                           "from": who, "to": to, "type": type, "status": "pending",
                           "content": content} if to is not None else
                          {"v": PROTOCOL_VERSION, "t": "msg", "id": mid, "ts": format_ms(ms),
                           "from": who, "type": type, "status": "pending",
                           "content": content}, option=_APPEND_NEWLINE)
            if len(line) > self.max_record_bytes:
                raise RecordTooLarge(len(line), self.max_record_bytes)
            return _new_tuple(SendResult, (mid, self.writer.append(line), False))
        mid, line = self._message_record(content, who, to, type, reply_to, priority, metadata,
                                         idempotency_key, expires_in)
        if idempotency_key is None:
            # tuple.__new__ skips the NamedTuple's Python-level __new__: this is every send.
            return _new_tuple(SendResult, (mid, self.writer.append(line), False))
        with self.lock:
            original = self.fold().idempotency.get((who, idempotency_key))
            if original is not None:
                return SendResult(original, self.fold().messages[original].offset, True)
            return SendResult(mid, self.writer.append(line))

    def send_many(self, items: Iterable[Mapping[str, Any]], *, chunk: int = 1000
                  ) -> Iterator[SendResult]:
        """Append many messages, ``chunk`` per lock and write; yields each result in order.

        Each item takes the keywords of :meth:`send` (``from`` may stand for
        ``sender``, ``expires`` for a duration string). A bad item raises
        InvalidInput naming its position; the items before it are appended (and
        were yielded), the rest are not.
        """
        batch: list[BatchItem] = []
        try:
            for pos, item in enumerate(items, 1):
                batch.append(self._batch_item(pos, item))
                if len(batch) >= chunk:
                    yield from self._append_batch(batch)
                    batch = []
        except InvalidInput:
            # Everything before the bad item goes in, as the docstring promises
            # (the error may also come from the iterator, e.g. a bad stdin line).
            if batch:
                yield from self._append_batch(batch)
            raise
        if batch:
            yield from self._append_batch(batch)

    def _batch_item(self, pos: int, item: Mapping[str, Any]) -> BatchItem:
        return compose_batch_item(pos, item, self.agent, self.max_record_bytes)

    def _append_batch(self, batch: list[BatchItem]
                      ) -> Iterator[SendResult]:
        results: list[SendResult] = []
        with self.lock:
            keyed = any(key is not None for *_, key in batch)
            fold = self.fold() if keyed else None
            lines: list[bytes] = []
            pending: list[tuple[int, str]] = []  # (index in results, id) of lines to write
            seen: dict[tuple[str, str], str] = {}
            for mid, line, who, key in batch:
                if fold is not None and key is not None:
                    original = fold.idempotency.get((who, key)) or seen.get((who, key))
                    if original is not None:
                        results.append(SendResult(original, -1, True))
                        continue
                    seen[(who, key)] = mid
                pending.append((len(results), mid))
                results.append(SendResult(mid, -1))
                lines.append(line)
            if lines:
                offset = self.writer.append(lines)
                for (idx, mid), line in zip(pending, lines, strict=True):
                    results[idx] = SendResult(mid, offset)
                    offset += len(line)
        return iter(results)

    def reply(self, ref: str, content: str, *, sender: str | None = None,
              metadata: Mapping[str, Any] | None = None) -> SendResult:
        """Answer ``ref``: append a response to its sender and mark ``ref`` done, in one write.

        Raises:
            NotFound: no such message. StateConflict: it is already final.
        """
        who = self._name(sender, "sender")
        with self.lock:
            original = self._require_open(ref, who)
            meta = {k: original.message.metadata[k] for k in REPLY_INHERITS
                    if k in original.message.metadata}
            meta.update(metadata or {})
            mid, line = self._message_record(content, who, original.message.sender, "response",
                                             ref, None, meta, None, None)
            _, done = self._status_record(ref, "done", who)
            offset = self.writer.append((line, done))
        return SendResult(mid, offset)

    # -- status changes ------------------------------------------------------------------

    def _require_open(self, ref: str, who: str, *, force: bool = False) -> MessageView:
        state = self.fold().get(ref)
        if state is None:
            from ..archive import find_archived

            archived = find_archived(self.directory, ref)
            if archived is not None:
                raise StateConflict(f"{ref} is already {archived.state.status} "
                                    f"(archived in {archived.archive.path.name})")
            raise NotFound(f"no message {ref} in {self.log_path} or its archives")
        check_open(state, who, time.time(), force=force)
        return self._view(state)

    def set_status(self, ref: str, status: str, *, reason: str | None = None,
                   sender: str | None = None, force: bool = False) -> str:
        """Append a terminal status (done, failed, cancelled, expired, dead) for ``ref``.

        Raises NotFound, or StateConflict when ``ref`` is already final or
        claimed by another agent whose lease is running (``force`` overrides the
        latter; ``cancelled`` never needs it).
        """
        check_terminal_status(status)
        who = self._name(sender, "sender")
        with self.lock:
            self._require_open(ref, who, force=force or status == "cancelled")
            sid, line = self._status_record(ref, status, who, reason=reason)
            self.writer.append((line,))
        return sid

    def claim(self, ref: str, *, lease: float = DEFAULT_LEASE, sender: str | None = None
              ) -> MessageView:
        """Take ``ref`` for ``lease`` seconds (or extend one's own claim).

        Raises NotFound, or StateConflict when it is final, expired, or leased to another.
        """
        who = self._name(sender, "claimer")
        check_lease(lease)
        with self.lock:
            view = self._require_open(ref, who)
            now = time.time()
            check_claim(view.state, now)
            _, line = self._status_record(ref, "claimed", who,
                                          lease_until=format_ts(now + lease))
            self.writer.append((line,))
            return self._view(self.fold().messages[ref])

    def claim_next(self, agent: str | None = None, *, lease: float = DEFAULT_LEASE,
                   types: Iterable[str] = ("request",)) -> MessageView | None:
        """Claim the first available message for ``agent`` (priority, then age), or None."""
        who = self._name(agent, "agent")
        wanted = frozenset(types)
        with self.lock:
            now = time.time()
            for state in self.fold().inbox(who, now, include_claimed=False):
                if state.type in wanted and state.available(now):
                    return self.claim(state.id, lease=lease, sender=who)
        return None

    def release(self, ref: str, *, delay: float | None = None, reason: str | None = None,
                sender: str | None = None) -> None:
        """Hand a claimed message back (optionally not to be taken for ``delay`` seconds)."""
        who = self._name(sender, "sender")
        with self.lock:
            view = self._require_open(ref, who)
            check_release(view.state)
            nb = format_ts(time.time() + delay) if delay else None
            _, line = self._status_record(ref, "pending", who, not_before=nb, reason=reason)
            self.writer.append((line,))

    def append_record(self, record: Mapping[str, Any]) -> int:
        """Append any valid record as is (for tools and agents with their own record kinds)."""
        line = compose_record(record, self.max_record_bytes)
        return self.writer.append((line,))

    def event(self, name: str, **fields: Any) -> None:
        """Append an ``event`` record (audit trail: pause, resume, rotation...)."""
        self.writer.append((compose_event(self.agent, name, fields),))

    # -- reading ------------------------------------------------------------------------

    def _reader_fd(self) -> tuple[int, int] | None:
        """An fd for the live file and its inode (None if the file does not exist)."""
        try:
            st = os.stat(self.log_path)
        except FileNotFoundError:
            return None
        if self._fold_fd is None or st.st_ino != self._fold_ino:
            try:
                fd = os.open(self.log_path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return None
            if self._fold_fd is not None:
                os.close(self._fold_fd)
            self._fold_fd, self._fold_ino = fd, os.fstat(fd).st_ino
            self._fold = None
        return self._fold_fd, self._fold_ino

    def fold(self) -> Fold:
        """The folded state, caught up to the end of the file (incremental)."""
        with self._fold_mutex:
            handle = self._reader_fd()
            if handle is None:
                self._fold = Fold()
                return self._fold
            fd, _ = handle
            if self._fold is None:
                self._fold = Fold()
            fold = self._fold
            size = os.fstat(fd).st_size
            if size > fold.offset:
                for bad in fold.feed_fd(fd, fold.offset, size):
                    log.info("skipped line at offset %d of %s: %s", bad.offset,
                             self.log_path, bad.reason)
            return fold

    def _view(self, state: MessageState) -> MessageView:
        with self._fold_mutex:
            fd = self._fold_fd
            if fd is None:
                raise NotFound(f"no message {state.id}")
            obj = decode_line(read_line_at(fd, state.offset, state.end))
        if isinstance(obj, str):  # pragma: no cover - the fold only keeps valid records
            raise NotFound(f"message {state.id} is no longer readable: {obj}")
        return MessageView(Message.from_record(obj), state)

    def get(self, message_id: str) -> MessageView:
        """A message and its state, from the live file or else the archives. Raises NotFound."""
        state = self.fold().get(message_id)
        if state is None:
            return self._archived_history(message_id).view
        return self._view(state)

    def _archived_history(self, message_id: str) -> History:
        from ..archive import find_archived

        found = find_archived(self.directory, message_id)
        if found is None:
            raise NotFound(f"no message {message_id} in {self.log_path} or its archives")
        thread = [MessageView(Message.from_record(found.records[s.offset]), s)
                  for s in found.fold.thread(message_id) if s.offset in found.records]
        view = next(v for v in thread if v.id == message_id)
        return History(view, found.changes, thread, archive=found.archive.path)

    def inbox(self, agent: str, *, include_claimed: bool = True) -> list[MessageView]:
        """Open messages addressed to ``agent`` (see :meth:`Fold.inbox`)."""
        self._name(agent, "agent")
        fold = self.fold()
        return [self._view(s) for s in fold.inbox(agent, time.time(),
                                                  include_claimed=include_claimed)]

    def dead_letters(self, agent: str) -> list[MessageView]:
        """Messages for ``agent`` that were given up on (status ``dead``, retries used up),
        oldest first, as long as they are in the live file (rotation archives them)."""
        self._name(agent, "agent")
        fold = self.fold()
        return [self._view(s) for s in fold if s.status == "dead" and s.addressed_to(agent)]

    def thread(self, message_id: str) -> list[MessageView]:
        """The message and every message that answers it (transitively), oldest first.

        Raises NotFound. An archived message's thread is what its archive holds.
        """
        if self.fold().get(message_id) is None:
            return self._archived_history(message_id).thread
        return [self._view(s) for s in self.fold().thread(message_id)]

    def history(self, message_id: str) -> History:
        """The message, every status record about it (scanned from the file), and its thread.

        A message that rotation archived comes from its archive (``archive`` names
        it); its thread is what that archive holds.
        """
        if self.fold().get(message_id) is None:
            return self._archived_history(message_id)
        view = self.get(message_id)
        needle = orjson.dumps(message_id)  # the id as it appears quoted in a line
        changes: list[dict[str, Any]] = []
        with self._fold_mutex:
            end = self.fold().offset
            handle = self._reader_fd()
            if handle is not None:
                for _, _, line in iter_lines(handle[0], 0, end):
                    # Parse only lines that mention the id: scanning stays near raw read speed.
                    if line is None or needle not in line:
                        continue
                    obj = decode_line(line)
                    if (isinstance(obj, dict) and obj.get("t") == "status"
                            and obj.get("ref") == message_id and check_record(obj) is None):
                        changes.append(obj)
        thread = [self._view(s) for s in self.fold().thread(message_id)]
        return History(view, changes, thread)

    def entries(self, start: int = 0, end: int | None = None) -> Iterator[Entry | BadLine]:
        """Scan the live file from ``start``: valid entries and bad lines, in order."""
        try:
            fd = os.open(self.log_path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        try:
            yield from scan(fd, start, end, line_no=1 if start == 0 else None)
        finally:
            os.close(fd)

    def tail(self, count: int, predicate: Callable[[dict[str, Any]], bool] | None = None
             ) -> tuple[list[Entry], int]:
        """The last ``count`` valid records (matching ``predicate``), oldest first, and the
        offset just after the last complete line (where a follower should continue).

        Reads backwards from the end, so the cost is that of the lines returned
        (and skipped), not of the file.
        """
        try:
            fd = os.open(self.log_path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return [], 0
        try:
            end = line_start_before(fd, os.fstat(fd).st_size)
            found: list[Entry] = []
            if count > 0:
                for off, nxt, line in iter_lines_reverse(fd, end):
                    obj = decode_line(line)
                    if isinstance(obj, str) or check_record(obj) is not None:
                        continue
                    if predicate is None or predicate(obj):
                        found.append(Entry(off, nxt, obj))
                        if len(found) >= count:
                            break
            found.reverse()
            return found, end
        finally:
            os.close(fd)

    def raw_line(self, entry: Entry) -> bytes:
        """The exact bytes of an entry's line in the live file, newline included."""
        fd = os.open(self.log_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return os.pread(fd, entry.end - entry.offset, entry.offset)
        finally:
            os.close(fd)

    def follow(self, consumer: str | None = None, **kwargs: Any) -> Follower:
        """A follower of the log; see :class:`bridge.Follower` for the arguments."""
        from ..delivery import Follower

        return Follower(self, consumer, **kwargs)

    # -- pause ------------------------------------------------------------------------------

    def paused(self) -> PauseInfo | None:
        """Who paused the bridge and why, or None when it is not paused."""
        return read_pause(self.directory)

    def is_paused(self) -> bool:
        """One stat: whether the PAUSE file exists."""
        return os.path.lexists(self.directory / "PAUSE")

    def pause(self, reason: str | None = None, *, by: str | None = None) -> PauseInfo:
        """Create PAUSE (who and why), then note it in the log; the file is what agents obey.

        Already paused: the first pause stands (who paused, why and since when are
        what the person who will resume needs) and is returned unchanged.
        """
        who = self._name(by, "name")
        current = read_pause(self.directory)
        if current is not None:
            return current
        info = write_pause(self.directory, self.perms, by=who, reason=reason)
        self._audit("pause", by=who, reason=reason)
        return info

    def resume(self, *, by: str | None = None) -> bool:
        """Remove PAUSE; True if the bridge was paused."""
        who = self._name(by, "name")
        was = remove_pause(self.directory)
        if was:
            self._audit("resume", by=who)
        return was

    # -- summary ---------------------------------------------------------------------------

    def status(self) -> BridgeStatus:
        """Pause state, message counts by status, size and last activity."""
        fold = self.fold()
        try:
            size = self.log_path.stat().st_size
        except FileNotFoundError:
            size = 0
        return BridgeStatus(
            directory=self.directory,
            paused=self.paused(),
            counts=fold.counts(time.time()),
            size=size,
            records=fold.records,
            bad_lines=len(fold.bad_lines),
            last_activity=fold.last_ts,
            epoch=fold.epoch,
            durability=self.durability,
            filesystem=self.filesystem,
        )

    @contextmanager
    def locked(self) -> Iterator[Fold]:
        """Hold the bridge lock with the fold caught up (for multi-step changes)."""
        with self.lock:
            yield self.fold()

    # -- inspection and maintenance ----------------------------------------------------------

    capabilities = Capabilities(local_files=True, rotate=True, search_archives=True,
                                repair=True, groups=True, remote=False)
    """What this backend can do (see :class:`bridge.Capabilities`)."""

    def doctor(self, *, repair: bool = False) -> DoctorReport:
        """Check the live file, the archives, the fold and the directory (see ``bridge doctor``)."""
        from ..inspection import run_doctor

        return run_doctor(self, repair=repair)

    def stats(self) -> dict[str, Any]:
        """A summary of the live file as a JSON-ready dict (see ``bridge stats``)."""
        from ..inspection import compute_stats

        return compute_stats(self)

    def rotate(self, *, older_than: float | None = DEFAULT_OLDER_THAN,
               max_size: int | None = None, compress: bool = False, dry_run: bool = False,
               progress: Callable[[int, int], None] | None = None) -> RotationResult:
        """Move finished messages into monthly archives (see :func:`bridge.rotate`)."""
        from ..archive import rotate

        return rotate(self, older_than=older_than, max_size=max_size, compress=compress,
                      dry_run=dry_run, progress=progress)

    def search(self, text: str, *, regex: bool = False, ignore_case: bool = False,
               since: float | None = None, until: float | None = None,
               sender: str | None = None, to: str | None = None, archives: bool = False,
               limit: int | None = None) -> Iterator[Hit]:
        """Messages whose content matches ``text``, newest first, at most ``limit``
        (None: all); see :func:`bridge.search` for the filters."""
        from ..archive import search

        hits = search(self, text, regex=regex, ignore_case=ignore_case, since=since,
                      until=until, sender=sender, to=to, archives=archives)
        return hits if limit is None else itertools.islice(hits, max(0, limit))

    def ping(self, rounds: int = 5) -> PingResult:
        """This toolkit's version, the directory and the pause state (no round trips:
        nothing lies between the caller and the file)."""
        del rounds
        from .._version import __version__

        where = str(self.directory)
        return PingResult(where, None, [], None, __version__, where, self.paused())


def parse_meta(pairs: Iterable[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings to a dict; a VALUE that is JSON (number, true, [...]) is decoded."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"--meta {pair!r}: expected KEY=VALUE")
        try:
            decoded: Any = orjson.loads(value)
            if isinstance(decoded, str):
                decoded = value
        except orjson.JSONDecodeError:
            decoded = value
        out[key.strip()] = decoded
    return out

