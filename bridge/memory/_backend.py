"""A bridge held in this process: the same contract as a file, without the file.

For tests and fakes (huey's MemoryStorage, dramatiq's StubBroker): an agent's
tests can run against ``connect("memory://NAME")`` in microseconds, and every
connect to the same NAME in one process shares one bridge, so two "clients"
can race for a claim. Records are composed, checked and folded by the same
code as the file backend (bridge.format, bridge.store); positions are the byte
offsets the records would have in a file, so they order and compare the same
way. Nothing survives the process; there are no archives to rotate into.
"""

from __future__ import annotations

import itertools
import threading
import time
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from .._capabilities import Capabilities
from .._errors import InvalidInput, NotFound, RemoteUnsupported
from .._url import BridgeURL, parse_url
from .._version import __version__
from ..archive import Hit, Matcher
from ..delivery import FollowLoop
from ..format import (
    DEFAULT_MAX_RECORD_BYTES,
    PROTOCOL_VERSION,
    REPLY_INHERITS,
    BatchItem,
    Entry,
    Message,
    compose_batch_item,
    compose_event,
    compose_message,
    compose_record,
    compose_status,
    decode_line,
    encode,
    format_ts,
    new_id,
    now_ts,
    validate_agent_name,
)
from ..inspection import DoctorReport, Finding, PingResult, stats_of
from ..store import (
    DEFAULT_LEASE,
    DEFAULT_OLDER_THAN,
    BridgeStatus,
    Durability,
    Fold,
    History,
    MessageState,
    MessageView,
    PauseInfo,
    SendResult,
    StatusShortcuts,
    check_claim,
    check_lease,
    check_open,
    check_release,
    check_terminal_status,
)

__all__ = ["MemoryBridge", "MemoryFollower", "forget"]

Start = Literal["beginning", "end"] | int


class _Log:
    """One named bridge: its lines, their fold, cursors and pause state."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.mutex = threading.RLock()
        self.changed = threading.Condition(self.mutex)
        self.starts: list[int] = []  # offset of each line, for bisect
        self.lines: list[bytes] = []
        self.entries: list[Entry] = []  # every line is valid: appends are checked
        self.size = 0
        self.fold = Fold()
        self.cursors: dict[str, int] = {}
        self.pause: PauseInfo | None = None
        self.epoch = new_id("memory")
        self.append([encode({"v": PROTOCOL_VERSION, "t": "epoch", "id": self.epoch,
                             "ts": now_ts(), "from": "memory", "epoch": self.epoch})])

    def append(self, lines: Sequence[bytes]) -> int:
        """Add complete, valid lines; the offset of the first."""
        with self.mutex:
            first = self.size
            for line in lines:
                record = decode_line(line)
                if isinstance(record, str):  # pragma: no cover - composed lines decode
                    raise InvalidInput(f"record rejected: {record}")
                entry = Entry(self.size, self.size + len(line), record)
                self.starts.append(self.size)
                self.lines.append(line)
                self.entries.append(entry)
                self.fold.apply(entry)
                self.size = entry.end
            self.changed.notify_all()
            return first

    def index_at(self, position: int) -> int:
        """The index of the first line starting at or after ``position``."""
        return bisect_right(self.starts, position - 1)

    def line_of(self, offset: int) -> bytes:
        i = bisect_right(self.starts, offset) - 1
        if i < 0 or self.starts[i] != offset:
            raise NotFound(f"no record at position {offset} of memory://{self.name}")
        return self.lines[i]


_LOGS: dict[str, _Log] = {}
_LOGS_MUTEX = threading.Lock()


def _log_named(name: str) -> _Log:
    with _LOGS_MUTEX:
        log = _LOGS.get(name)
        if log is None:
            log = _LOGS[name] = _Log(name)
        return log


def forget(name: str) -> bool:
    """Drop the bridge NAME (the next connect starts empty); True if it existed."""
    with _LOGS_MUTEX:
        return _LOGS.pop(name, None) is not None


class MemoryBridge(StatusShortcuts):
    """``memory://NAME``: a bridge in this process's memory (see the module doc).

    Args:
        url: ``memory://NAME`` (or a parsed :class:`BridgeURL`).
        agent: the name written as ``from`` unless a call says otherwise.
        durability: accepted for the contract; memory has nothing to flush.
        max_record_bytes: the size limit of one encoded message.
        create: False refuses a NAME no one has opened yet in this process.
    """

    capabilities = Capabilities(local_files=False, rotate=False, search_archives=False,
                                repair=False, groups=False, remote=False)

    def __init__(self, url: str | BridgeURL, *, agent: str = "cli",
                 durability: Durability = "always",
                 max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES, create: bool = True,
                 group: str | int | None = None, lock_timeout: float | None = None) -> None:
        del lock_timeout  # nothing to wait for: the mutex is held for microseconds
        self.url = url if isinstance(url, BridgeURL) else parse_url(url)
        if self.url.scheme != "memory" or not self.url.host:
            raise InvalidInput(f"{url}: expected memory://NAME")
        if group is not None:
            raise RemoteUnsupported(f"{self.url}: a bridge in memory has no files to share "
                                    "with a group")
        name = self.url.host
        with _LOGS_MUTEX:
            known = name in _LOGS
        if not create and not known:
            raise NotFound(f"no bridge {self.url} in this process (open it with create=True)")
        self._log = _log_named(name)
        self.agent = validate_agent_name(agent)
        self.max_record_bytes = max_record_bytes
        self._durability: Durability = durability
        self.directory = Path(f"/memory/{name}")
        """A name for messages and reports; nothing exists at this path."""
        self.log_path = self.directory / "messages.jsonl"
        self._closed = False
        self._followers: list[MemoryFollower] = []

    @property
    def durability(self) -> Durability:
        return self._durability

    def __repr__(self) -> str:
        return f"MemoryBridge({str(self.url)!r}, agent={self.agent!r})"

    # -- helpers -------------------------------------------------------------------------

    def _name(self, name: str | None, what: str) -> str:
        return self.agent if name is None else validate_agent_name(name, what)

    def _view(self, state: MessageState) -> MessageView:
        record = decode_line(self._log.line_of(state.offset))
        if isinstance(record, str):  # pragma: no cover - every line was composed here
            raise NotFound(f"message {state.id} is no longer readable: {record}")
        return MessageView(Message.from_record(record), state)

    def _open_state(self, ref: str, who: str, *, force: bool = False) -> MessageState:
        state = self._log.fold.get(ref)
        if state is None:
            raise NotFound(f"no message {ref} in {self.url}")
        check_open(state, who, time.time(), force=force)
        return state

    def _check_open(self) -> None:
        if self._closed:
            raise InvalidInput(f"{self.url} is closed")

    # -- writing -------------------------------------------------------------------------

    def send(self, content: str, *, to: str | None = None, type: str = "request",
             reply_to: str | None = None, priority: str | None = None,
             metadata: Mapping[str, Any] | None = None, idempotency_key: str | None = None,
             expires_in: float | None = None, sender: str | None = None) -> SendResult:
        """Append a message (see :meth:`bridge.Bridge.send`)."""
        self._check_open()
        who = self._name(sender, "sender")
        mid, line = compose_message(content, who, to, type, reply_to, priority, metadata,
                                    idempotency_key, expires_in, self.max_record_bytes)
        with self._log.mutex:
            if idempotency_key is not None:
                original = self._log.fold.idempotency.get((who, idempotency_key))
                if original is not None:
                    return SendResult(original, self._log.fold.messages[original].offset, True)
            return SendResult(mid, self._log.append([line]))

    def send_many(self, items: Iterable[Mapping[str, Any]], *,
                  chunk: int = 1000) -> Iterator[SendResult]:
        """Append many messages in order; a bad item stops the batch (see Bridge.send_many)."""
        self._check_open()
        del chunk  # one append per item costs nothing here
        for pos, item in enumerate(items, 1):
            mid, line, who, key = compose_batch_item(pos, item, self.agent,
                                                     self.max_record_bytes)
            yield self._append_item((mid, line, who, key))

    def _append_item(self, item: BatchItem) -> SendResult:
        mid, line, who, key = item
        with self._log.mutex:
            if key is not None:
                original = self._log.fold.idempotency.get((who, key))
                if original is not None:
                    return SendResult(original, -1, True)
            return SendResult(mid, self._log.append([line]))

    def reply(self, ref: str, content: str, *, sender: str | None = None,
              metadata: Mapping[str, Any] | None = None) -> SendResult:
        """Answer ``ref`` and mark it done, in one append."""
        self._check_open()
        who = self._name(sender, "sender")
        with self._log.mutex:
            original = self._view(self._open_state(ref, who)).message
            meta: dict[str, Any] = {k: original.metadata[k] for k in REPLY_INHERITS
                                    if k in original.metadata}
            meta.update(metadata or {})
            mid, line = compose_message(content, who, original.sender, "response", ref, None,
                                        meta, None, None, self.max_record_bytes)
            _, done = compose_status(ref, "done", who)
            return SendResult(mid, self._log.append([line, done]))

    def set_status(self, ref: str, status: str, *, reason: str | None = None,
                   sender: str | None = None, force: bool = False) -> str:
        """Append a terminal status for ``ref`` (see :meth:`bridge.Bridge.set_status`)."""
        self._check_open()
        check_terminal_status(status)
        who = self._name(sender, "sender")
        with self._log.mutex:
            self._open_state(ref, who, force=force or status == "cancelled")
            sid, line = compose_status(ref, status, who, reason=reason)
            self._log.append([line])
        return sid

    def claim(self, ref: str, *, lease: float = DEFAULT_LEASE,
              sender: str | None = None) -> MessageView:
        """Take ``ref`` for ``lease`` seconds (see :meth:`bridge.Bridge.claim`)."""
        self._check_open()
        who = self._name(sender, "claimer")
        check_lease(lease)
        with self._log.mutex:
            state = self._open_state(ref, who)
            now = time.time()
            check_claim(state, now)
            _, line = compose_status(ref, "claimed", who, lease_until=format_ts(now + lease))
            self._log.append([line])
            return self._view(self._log.fold.messages[ref])

    def claim_next(self, agent: str | None = None, *, lease: float = DEFAULT_LEASE,
                   types: Iterable[str] = ("request",)) -> MessageView | None:
        """Claim the first available message for ``agent`` (priority, then age), or None."""
        self._check_open()
        who = self._name(agent, "agent")
        wanted = frozenset(types)
        with self._log.mutex:
            now = time.time()
            for state in self._log.fold.inbox(who, now, include_claimed=False):
                if state.type in wanted and state.available(now):
                    return self.claim(state.id, lease=lease, sender=who)
        return None

    def release(self, ref: str, *, delay: float | None = None, reason: str | None = None,
                sender: str | None = None) -> None:
        """Hand a claimed message back (optionally not to be taken for ``delay`` seconds)."""
        self._check_open()
        who = self._name(sender, "sender")
        with self._log.mutex:
            check_release(self._open_state(ref, who))
            nb = format_ts(time.time() + delay) if delay else None
            _, line = compose_status(ref, "pending", who, not_before=nb, reason=reason)
            self._log.append([line])

    def append_record(self, record: Mapping[str, Any]) -> int:
        """Append any valid record as is."""
        self._check_open()
        line = compose_record(record, self.max_record_bytes)
        return self._log.append([line])

    def event(self, name: str, **fields: Any) -> None:
        """Append an ``event`` record."""
        self._check_open()
        self._log.append([compose_event(self.agent, name, fields)])

    # -- reading -------------------------------------------------------------------------

    def fold(self) -> Fold:
        """The folded state (shared and live: read it, do not change it)."""
        return self._log.fold

    def get(self, message_id: str) -> MessageView:
        """A message and its state. Raises NotFound."""
        with self._log.mutex:
            state = self._log.fold.get(message_id)
            if state is None:
                raise NotFound(f"no message {message_id} in {self.url}")
            return self._view(state)

    def inbox(self, agent: str, *, include_claimed: bool = True) -> list[MessageView]:
        """Open messages addressed to ``agent`` (see :meth:`bridge.Fold.inbox`)."""
        validate_agent_name(agent, "agent")
        with self._log.mutex:
            states = self._log.fold.inbox(agent, time.time(), include_claimed=include_claimed)
            return [self._view(s) for s in states]

    def dead_letters(self, agent: str) -> list[MessageView]:
        """Messages for ``agent`` that were given up on (status ``dead``)."""
        validate_agent_name(agent, "agent")
        with self._log.mutex:
            return [self._view(s) for s in self._log.fold
                    if s.status == "dead" and s.addressed_to(agent)]

    def thread(self, message_id: str) -> list[MessageView]:
        """The message and every message answering it, oldest first. Raises NotFound."""
        with self._log.mutex:
            if self._log.fold.get(message_id) is None:
                raise NotFound(f"no message {message_id} in {self.url}")
            return [self._view(s) for s in self._log.fold.thread(message_id)]

    def history(self, message_id: str) -> History:
        """The message, its status records, and its thread."""
        with self._log.mutex:
            view = self.get(message_id)
            changes = [e.record for e in self._log.entries
                       if e.record.get("t") == "status" and e.record.get("ref") == message_id]
            return History(view, changes, self.thread(message_id))

    def tail(self, count: int, predicate: Callable[[dict[str, Any]], bool] | None = None
             ) -> tuple[list[Entry], int]:
        """The last ``count`` records (matching ``predicate``), oldest first, and the end."""
        with self._log.mutex:
            found: list[Entry] = []
            if count > 0:
                for entry in reversed(self._log.entries):
                    if predicate is None or predicate(entry.record):
                        found.append(entry)
                        if len(found) >= count:
                            break
            found.reverse()
            return found, self._log.size

    def raw_line(self, entry: Entry) -> bytes:
        """The exact bytes of an entry's record, newline included."""
        with self._log.mutex:
            return self._log.line_of(entry.offset)

    def follow(self, consumer: str | None = None, **kwargs: Any) -> MemoryFollower:
        """A follower of the log; the arguments of :class:`bridge.Follower` (``start``,
        ``poll_interval``, ``watch``, ``on_bad_line``), of which only ``start`` matters:
        appends wake followers at once, and no line here is bad."""
        unknown = set(kwargs) - {"start", "poll_interval", "watch", "on_bad_line"}
        if unknown:
            raise TypeError(f"follow() got unknown argument(s): {', '.join(sorted(unknown))}")
        follower = MemoryFollower(self._log, consumer, kwargs.get("start", "beginning"))
        self._followers.append(follower)
        return follower

    # -- control -------------------------------------------------------------------------

    def paused(self) -> PauseInfo | None:
        return self._log.pause

    def is_paused(self) -> bool:
        return self._log.pause is not None

    def pause(self, reason: str | None = None, *, by: str | None = None) -> PauseInfo:
        """Pause (the first pause stands, as for a file) and note it in the log."""
        who = self._name(by, "name")
        with self._log.mutex:
            if self._log.pause is not None:
                return self._log.pause
            self._log.pause = PauseInfo(by=who, reason=reason, since=now_ts())
            self._audit("pause", by=who, reason=reason)
            return self._log.pause

    def resume(self, *, by: str | None = None) -> bool:
        """Resume; True if the bridge was paused."""
        who = self._name(by, "name")
        with self._log.mutex:
            was = self._log.pause is not None
            self._log.pause = None
            if was:
                self._audit("resume", by=who)
            return was

    # -- inspection and maintenance ------------------------------------------------------

    def status(self) -> BridgeStatus:
        with self._log.mutex:
            fold = self._log.fold
            return BridgeStatus(directory=self.directory, paused=self._log.pause,
                                counts=fold.counts(time.time()), size=self._log.size,
                                records=fold.records, bad_lines=0, last_activity=fold.last_ts,
                                epoch=fold.epoch, durability=self._durability,
                                extra={"transport": "memory"})

    def doctor(self, *, repair: bool = False) -> DoctorReport:
        """The fold's findings (orphan statuses, odd transitions) and expired messages."""
        if repair:
            raise RemoteUnsupported(f"{self.url}: a bridge in memory has nothing to repair")
        with self._log.mutex:
            fold = self._log.fold
            report = DoctorReport(path=str(self.url), size=self._log.size,
                                  lines=len(self._log.lines), records=fold.records,
                                  messages=len(fold.messages))
            for issue in fold.issues:
                orphan = issue.kind == "orphan"
                report.findings.append(Finding("error" if orphan else "warning",
                                               "orphan-status" if orphan else issue.kind,
                                               issue.reason, issue.offset, None, issue.ref))
            now = time.time()
            expired = sum(1 for s in fold.messages.values()
                          if not s.terminal and s.effective_status(now) == "expired")
            if expired:
                report.findings.append(Finding(
                    "warning", "expired",
                    f"{expired} open message(s) are past their expiry (shown as expired)"))
            return report

    def stats(self) -> dict[str, Any]:
        with self._log.mutex:
            return stats_of(list(self._log.entries), self._log.size)

    def rotate(self, *, older_than: float | None = DEFAULT_OLDER_THAN,
               max_size: int | None = None, compress: bool = False, dry_run: bool = False,
               progress: Callable[[int, int], None] | None = None) -> Any:
        """Refused: a bridge in memory has no archives (``capabilities.rotate`` is False)."""
        del older_than, max_size, compress, dry_run, progress
        raise RemoteUnsupported(f"{self.url}: a bridge in memory has no archives to rotate "
                                "into (it ends with the process)")

    def search(self, text: str, *, regex: bool = False, ignore_case: bool = False,
               since: float | None = None, until: float | None = None,
               sender: str | None = None, to: str | None = None, archives: bool = False,
               limit: int | None = None) -> Iterator[Hit]:
        """Messages whose content matches ``text``, newest first (no archives here)."""
        if archives:
            raise RemoteUnsupported(f"{self.url}: a bridge in memory has no archives to "
                                    "search (search without archives)")
        matcher = Matcher(text, regex=regex, ignore_case=ignore_case, since=since,
                          until=until, sender=sender, to=to)
        with self._log.mutex:
            lines = list(reversed(self._log.lines))
        hits = (Hit(rec, line, self.log_path.name) for line in lines
                if (rec := matcher.match(line.rstrip(b"\n"))) is not None)
        return hits if limit is None else itertools.islice(hits, max(0, limit))

    def ping(self, rounds: int = 5) -> PingResult:
        del rounds
        return PingResult(str(self.url), None, [], None, __version__, str(self.directory),
                          self._log.pause)

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Stop this client's followers; the bridge itself lives on for other clients."""
        self._closed = True
        for follower in self._followers:
            follower.close()
        self._followers.clear()

    def __enter__(self) -> MemoryBridge:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class MemoryFollower(FollowLoop):
    """Follows a :class:`MemoryBridge`'s log; the same behaviour as :class:`bridge.Follower`."""

    def __init__(self, log: _Log, consumer: str | None, start: Start) -> None:
        self._log = log
        self.consumer = consumer
        self._stop = threading.Event()
        with log.mutex:
            saved = log.cursors.get(consumer) if consumer is not None else None
            if saved is not None:
                self._pos = saved
            elif start == "beginning":
                self._pos = 0
            elif start == "end":
                self._pos = log.size
            elif isinstance(start, int) and start >= 0:
                self._pos = start
            else:
                raise InvalidInput(f"start must be beginning, end or a position, not {start!r}")
        self.committed = self._pos

    @property
    def position(self) -> int:
        """Just after the last record handed out (not necessarily committed)."""
        return self._pos

    @property
    def epoch(self) -> str | None:
        return self._log.epoch

    def poll(self, limit: int = 1000) -> list[Entry]:
        """The records appended since the last call (at most ``limit``), without waiting."""
        with self._log.mutex:
            i = self._log.index_at(self._pos)
            out = self._log.entries[i:i + max(0, limit)]
        if out:
            self._pos = out[-1].end
        return out

    def wait(self, timeout: float | None = None, limit: int = 1000) -> list[Entry]:
        """Like :meth:`poll`, waiting up to ``timeout`` seconds (None: until stopped)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._log.changed:
            while not self._stop.is_set():
                if self._log.size > self._pos:
                    break
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return []
                self._log.changed.wait(left if left is not None else 0.5)
            else:
                return []
        return self.poll(limit)

    def raw_line(self, entry: Entry) -> bytes:
        with self._log.mutex:
            return self._log.line_of(entry.offset)

    def commit(self, upto: Entry | int | None = None) -> None:
        """Store the position (default: after the last record handed out) for the consumer."""
        offset = self._pos if upto is None else upto.end if isinstance(upto, Entry) else upto
        self.committed = offset
        if self.consumer is not None:
            with self._log.mutex:
                self._log.cursors[self.consumer] = offset

    def stop(self) -> None:
        self._stop.set()
        with self._log.changed:
            self._log.changed.notify_all()

    def close(self) -> None:
        self.stop()

