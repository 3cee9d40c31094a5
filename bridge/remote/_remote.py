"""RemoteBridge: a bridge on another host, with the same API as :class:`bridge.Bridge`.

Every call travels as one request over one long-lived SSH channel to
``bridge serve --stdio`` on the bridge's host, which performs it with that
host's own Bridge: remote appends take the very same ``flock`` as local writers,
and followers are pushed records as inotify sees them.

When the connection drops, the next call reconnects (capped exponential
backoff). A request that was in flight at that moment has an unknown outcome:
reads and sends with an idempotency key are simply retried, anything else
raises :class:`~bridge.ConnectionLost` saying so (retry it with an idempotency
key). Followers resume by themselves from the position their handler reached.
"""

from __future__ import annotations

import itertools
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, overload

from .._capabilities import Capabilities
from .._errors import (
    AuthenticationFailed,
    ConnectionLost,
    HostKeyError,
    InvalidInput,
    RemoteError,
    RemoteUnsupported,
)
from .._url import BridgeURL, parse_url
from ..archive import Hit, RotationResult
from ..format import Entry, validate_agent_name
from ..inspection import PingResult
from ..store import (
    DEFAULT_LEASE,
    DEFAULT_OLDER_THAN,
    LOG_NAME,
    BridgeStatus,
    Durability,
    Fold,
    History,
    MessageState,
    MessageView,
    PauseInfo,
    SendResult,
    StatusShortcuts,
)
from ._session import DEFAULT_HEARTBEAT_TIMEOUT, Session, clone
from ._ssh import SSHTarget, resolve_target
from ._wire import (
    MAX_REQUEST,
    doctor_from_wire,
    entry_from_wire,
    frame,
    history_from_wire,
    pause_from_wire,
    status_from_wire,
    view_from_wire,
)

if TYPE_CHECKING:
    from .._api import Backend
    from ..inspection import DoctorReport
    from ._remote_follow import RemoteFollower

__all__ = ["DEFAULT_RECONNECT_TIMEOUT", "RemoteBridge", "backoff_delays", "ping"]

DEFAULT_RECONNECT_TIMEOUT = 30.0
"""How long a call keeps reconnecting to a host that went away before it gives up."""

BACKOFF_FIRST = 0.2
BACKOFF_CAP = 5.0
"""Reconnect delays: at once, then 0.2 s doubling up to 5 s (each ±20 % so that many
agents cut off together do not come back in lockstep)."""

SEND_MANY_CHUNK = 1000
SEND_MANY_BYTES = 1 << 20
SEND_MANY_WINDOW = 4
"""send_many streams chunks of up to 1,000 items (1 MiB), with 4 chunks in flight."""

_PERMANENT = (HostKeyError, AuthenticationFailed, RemoteUnsupported)
"""Errors no retry can fix: the key, the account or the toolkit must change first."""


def backoff_delays() -> Iterator[float]:
    """0, then 0.2 s doubling up to 5 s, each with ±20 % jitter."""
    yield 0.0
    delay = BACKOFF_FIRST
    while True:
        yield delay * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not security
        delay = min(delay * 2, BACKOFF_CAP)


def ping(b: Backend, rounds: int = 5) -> PingResult:
    """``bridge ping``: what :meth:`ping` of any backend says (kept for 0.1 callers)."""
    return b.ping(rounds)


def _send_result(obj: list[Any]) -> SendResult:
    return SendResult(obj[0], obj[1], bool(obj[2]))


class RemoteBridge(StatusShortcuts):
    """A bridge on another host, reached over SSH; the API of :class:`bridge.Bridge`.

    Args:
        url: ``ssh://[user@]host[:port]/path`` (or a parsed :class:`BridgeURL`).
        agent: the name written as ``from`` unless a call says otherwise.
        durability, group, lock_timeout, create, max_record_bytes: as for
            :class:`Bridge`, applied on the host (lock waits are capped at 30 s there).
        remote_command: the toolkit's command on the host; default: the URL's
            ``command=``, else ``$BRIDGE_REMOTE_COMMAND``, else ``bridge``.
        heartbeat_timeout: a host silent for this long is declared gone (pings go
            out every quarter of it).
        ssh_config, known_hosts, identity_file, connect_timeout: override
            ~/.ssh/config, the known_hosts files, the key, the connect timeout.
        reconnect_timeout: how long a call keeps reconnecting after the connection
            dropped before raising.

    Raises (at once): HostUnreachable, UnknownHostKey, HostKeyChanged,
    AuthenticationFailed, RemoteUnsupported, ProtocolMismatch, BridgeUnavailable.
    """

    def __init__(
        self,
        url: str | BridgeURL,
        *,
        agent: str = "cli",
        durability: Durability = "always",
        group: str | None = None,
        lock_timeout: float | None = None,
        create: bool = True,
        max_record_bytes: int | None = None,
        check_fs: bool = True,
        remote_command: str | None = None,
        heartbeat_timeout: float = DEFAULT_HEARTBEAT_TIMEOUT,
        ssh_config: str | os.PathLike[str] | None = None,
        known_hosts: str | os.PathLike[str] | None = None,
        identity_file: str | os.PathLike[str] | None = None,
        connect_timeout: float | None = None,
        reconnect_timeout: float = DEFAULT_RECONNECT_TIMEOUT,
    ) -> None:
        del check_fs  # the host checks its own filesystem
        self.url = url if isinstance(url, BridgeURL) else parse_url(url)
        if self.url.host is None:
            raise InvalidInput(f"{url}: not an ssh:// URL (open a local bridge with Bridge)")
        if self.url.transport != "serve":
            raise InvalidInput(f"{self.url}: transport={self.url.transport} is opened with "
                               "bridge.connect()")
        self.agent = validate_agent_name(agent)
        self.target: SSHTarget = resolve_target(
            self.url.host, user=self.url.user, port=self.url.port, config_path=ssh_config,
            known_hosts=known_hosts, identity_file=identity_file,
            connect_timeout=connect_timeout)
        self.command = (remote_command or self.url.command
                        or os.environ.get("BRIDGE_REMOTE_COMMAND") or "bridge")
        self.heartbeat_timeout = heartbeat_timeout
        self.reconnect_timeout = reconnect_timeout
        self._hello = {"dir": self.url.path, "agent": self.agent, "create": create,
                       "durability": durability, "group": group, "lock_timeout": lock_timeout,
                       "max_record_bytes": max_record_bytes, "client": _version()}
        self._durability = durability
        self._connecting = threading.Lock()
        self._closed = threading.Event()
        self._subs = itertools.count(1)
        self.reconnects = 0
        """How many times a dropped connection was replaced (for monitoring and tests)."""
        started = time.perf_counter()
        self._current: Session | None = self._open()
        self.connect_ms = (time.perf_counter() - started) * 1000
        info = self._current.info
        self.directory = Path(info["dir"])
        self.log_path = self.directory / LOG_NAME
        self.filesystem: str | None = info.get("filesystem")
        self.max_record_bytes: int = info.get("max_record_bytes") or (1 << 20)
        self._max_line: int = info.get("max_line") or MAX_REQUEST

    # -- connection ------------------------------------------------------------------------

    def _open(self) -> Session:
        return Session(self.target, self.command, self._hello,
                       heartbeat_timeout=self.heartbeat_timeout)

    @overload
    def session(self, *, reconnect_for: float | None = None, cancel: None = None) -> Session: ...

    @overload
    def session(self, *, reconnect_for: float | None = None,
                cancel: threading.Event) -> Session | None: ...

    def session(self, *, reconnect_for: float | None = None,
                cancel: threading.Event | None = None) -> Session | None:
        """The live session, reconnecting (with backoff) if the last one died.

        ``reconnect_for``: give up after this many seconds (None: the bridge's
        ``reconnect_timeout``; ``float("inf")``: until closed). ``cancel``: an
        event that, once set, makes the reconnecting stop and return None.
        """
        current = self._current
        if current is not None and current.alive:
            return current
        limit = self.reconnect_timeout if reconnect_for is None else reconnect_for
        give_up = time.monotonic() + limit
        last: RemoteError | None = current.error if current is not None else None
        for delay in backoff_delays():
            if time.monotonic() + delay > give_up:
                raise clone(last) if last is not None else ConnectionLost(
                    f"cannot reach {self.url}")
            if not self._pause(delay, cancel):
                return None
            # One thread connects at a time, and only while it tries: a follower that
            # reconnects for ever never keeps other callers from their own deadline.
            if not self._connecting.acquire(timeout=max(0.0, min(give_up - time.monotonic(),
                                                                 1e6))):
                continue
            try:
                current = self._current
                if current is not None and current.alive:
                    return current  # another thread reconnected meanwhile
                if self._closed.is_set():
                    raise ConnectionLost(f"{self.url} is closed")
                try:
                    self._current = self._open()
                except _PERMANENT:
                    raise
                except RemoteError as exc:
                    last = exc
                    continue
                self.reconnects += 1
                return self._current
            finally:
                self._connecting.release()
        raise AssertionError("unreachable")  # pragma: no cover - the delays never end

    def _pause(self, delay: float, cancel: threading.Event | None) -> bool:
        """Sleep ``delay`` seconds; False if ``cancel`` was set meanwhile, raises if closed."""
        until = time.monotonic() + delay
        while True:
            if self._closed.is_set():
                raise ConnectionLost(f"{self.url} is closed")
            if cancel is not None and cancel.is_set():
                return False
            left = until - time.monotonic()
            if left <= 0:
                return True
            self._closed.wait(min(left, 0.1))

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed.is_set()

    @property
    def connected(self) -> bool:
        """Whether the current connection is up (the next call reconnects if not)."""
        current = self._current
        return current is not None and current.alive

    def _call(self, op: str, args: dict[str, Any] | None = None, *, retry: bool = False) -> Any:
        while True:
            session = self.session()
            try:
                return session.call(op, args)
            except ConnectionLost as exc:
                if session.alive:  # the host itself reported it: not ours to retry
                    raise
                if retry:
                    continue
                raise ConnectionLost(
                    f"{exc}; the {op} may or may not have been applied on the host (check, "
                    "or send with an idempotency key, which makes a retry safe)") from None

    def close(self) -> None:
        """Close the connection (the host's server exits); the object is unusable afterwards."""
        self._closed.set()
        with self._connecting:
            if self._current is not None:
                self._current.close()

    def __enter__(self) -> RemoteBridge:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RemoteBridge({str(self.url)!r}, agent={self.agent!r})"

    @property
    def durability(self) -> Durability:
        return self._durability

    capabilities = Capabilities(local_files=False, rotate=True, search_archives=True,
                                repair=False, groups=True, remote=True)
    """What this backend can do (see :class:`bridge.Capabilities`): everything the host's
    bridge can, but repair stays a job for ``bridge doctor --repair`` run on the host."""

    def ping(self, rounds: int = 5) -> PingResult:
        """Round trips of a heartbeat request, the host's version and pause state."""
        session = self.session()
        rtts = []
        answer: dict[str, Any] = {}
        for _ in range(max(1, rounds)):
            t0 = time.perf_counter()
            answer = session.call("ping")
            rtts.append((time.perf_counter() - t0) * 1000)
        return PingResult(str(self.url), self.connect_ms, rtts, session.version,
                          str(session.info.get("server")), str(self.directory),
                          self.paused() if answer.get("paused") else None)

    # -- sending -----------------------------------------------------------------------------

    def send(self, content: str, *, to: str | None = None, type: str = "request",
             reply_to: str | None = None, priority: str | None = None,
             metadata: Mapping[str, Any] | None = None, idempotency_key: str | None = None,
             expires_in: float | None = None, sender: str | None = None) -> SendResult:
        """Append a message on the host and return its id (see :meth:`Bridge.send`).

        Sent again after a dropped connection only with an ``idempotency_key``.
        """
        args = {"content": content, "to": to, "type": type, "reply_to": reply_to,
                "priority": priority, "metadata": dict(metadata) if metadata else None,
                "idempotency_key": idempotency_key, "expires_in": expires_in,
                "sender": self._who(sender)}
        self._check_size(args)
        return _send_result(self._call("send", args, retry=idempotency_key is not None))

    def _who(self, name: str | None) -> str:
        # None is "this client's agent"; anything else, "" included, goes to the host
        # to be checked like a local bridge checks it.
        return self.agent if name is None else name

    def _check_size(self, args: Mapping[str, Any]) -> None:
        try:
            size = len(frame(args))
        except TypeError as exc:
            raise InvalidInput(f"message cannot be encoded as JSON: {exc}") from None
        if size > self._max_line - 256:
            raise InvalidInput(f"request of {size} bytes is over the {self._max_line}-byte "
                               "limit of the line protocol (put large payloads in a file)")

    def send_many(self, items: Iterable[Mapping[str, Any]], *, chunk: int = SEND_MANY_CHUNK
                  ) -> Iterator[SendResult]:
        """Append many messages (see :meth:`Bridge.send_many`), streamed over the channel.

        Chunks are pipelined; after a refused item the host appends nothing more
        of the batch, the items before it are appended and yielded, and
        InvalidInput names its position.
        """
        session = self.session()
        batch = os.urandom(8).hex()
        inflight: list[Any] = []  # pending replies, oldest first
        sent = 0

        def flush(buf: list[dict[str, Any]]) -> None:
            nonlocal sent
            inflight.append(session.start("send_many", {"items": buf, "base": sent,
                                                          "batch": batch}))
            sent += len(buf)

        def collect(pending: Any) -> Iterator[SendResult]:
            try:
                results = session.result(pending)
            except InvalidInput:
                for res in pending.partial or []:
                    yield _send_result(res)
                raise
            except ConnectionLost as exc:
                raise ConnectionLost(f"{exc}; items after the last id printed may or may not "
                                     "have been appended") from None
            for res in results:
                yield _send_result(res)

        buf: list[dict[str, Any]] = []
        size = 0
        try:
            for item in items:
                obj = self._batch_item(item, sent + len(buf) + 1)
                encoded = len(frame(obj))
                if buf and (len(buf) >= chunk or size + encoded > SEND_MANY_BYTES):
                    flush(buf)
                    buf, size = [], 0
                    while len(inflight) >= SEND_MANY_WINDOW:
                        yield from collect(inflight.pop(0))
                buf.append(obj)
                size += encoded
        except InvalidInput:
            # A bad item from the iterator: everything before it still goes in.
            if buf:
                flush(buf)
            while inflight:
                yield from collect(inflight.pop(0))
            raise
        if buf:
            flush(buf)
        while inflight:
            yield from collect(inflight.pop(0))

    def _batch_item(self, item: Any, pos: int) -> dict[str, Any]:
        if not isinstance(item, Mapping):
            raise InvalidInput(f"item {pos}: expected a JSON object")
        obj = dict(item)
        if "from" not in obj and "sender" not in obj:
            obj["sender"] = self.agent
        return obj

    def reply(self, ref: str, content: str, *, sender: str | None = None,
              metadata: Mapping[str, Any] | None = None) -> SendResult:
        """Answer ``ref`` and mark it done, in one write on the host (see :meth:`Bridge.reply`)."""
        args = {"ref": ref, "content": content, "sender": self._who(sender),
                "metadata": dict(metadata) if metadata else None}
        self._check_size(args)
        return _send_result(self._call("reply", args))

    def set_status(self, ref: str, status: str, *, reason: str | None = None,
                   sender: str | None = None, force: bool = False) -> str:
        """Append a terminal status for ``ref`` (see :meth:`Bridge.set_status`)."""
        result: str = self._call("set_status", {"ref": ref, "status": status, "reason": reason,
                                                "sender": self._who(sender),
                                                "force": force})
        return result

    def claim(self, ref: str, *, lease: float = DEFAULT_LEASE, sender: str | None = None
              ) -> MessageView:
        """Take ``ref`` for ``lease`` seconds (see :meth:`Bridge.claim`)."""
        return view_from_wire(self._call("claim", {"ref": ref, "lease": lease,
                                                   "sender": self._who(sender)}))

    def claim_next(self, agent: str | None = None, *, lease: float = DEFAULT_LEASE,
                   types: Iterable[str] = ("request",)) -> MessageView | None:
        """Claim the first available message for ``agent``, or None."""
        got = self._call("claim_next", {"agent": self._who(agent), "lease": lease,
                                        "types": list(types)})
        return None if got is None else view_from_wire(got)

    def release(self, ref: str, *, delay: float | None = None, reason: str | None = None,
                sender: str | None = None) -> None:
        """Hand a claimed message back."""
        self._call("release", {"ref": ref, "delay": delay, "reason": reason,
                               "sender": self._who(sender)})

    def append_record(self, record: Mapping[str, Any]) -> int:
        """Append any valid record as is; returns its offset."""
        self._check_size(record)
        offset: int = self._call("append_record", {"record": dict(record)})
        return offset

    def event(self, name: str, **fields: Any) -> None:
        """Append an ``event`` record."""
        self._call("event", {"name": name, "fields": fields})

    # -- reading -------------------------------------------------------------------------------

    def get(self, message_id: str) -> MessageView:
        """A message and its state. Raises NotFound."""
        return view_from_wire(self._call("get", {"id": message_id}, retry=True))

    def inbox(self, agent: str, *, include_claimed: bool = True) -> list[MessageView]:
        """Open messages addressed to ``agent``."""
        return [view_from_wire(v) for v in self._call(
            "inbox", {"agent": agent, "include_claimed": include_claimed}, retry=True)]

    def dead_letters(self, agent: str) -> list[MessageView]:
        """Messages for ``agent`` given up on (``dead``) still in the live file."""
        return [view_from_wire(v) for v in self._call("dead_letters", {"agent": agent},
                                                      retry=True)]

    def thread(self, message_id: str) -> list[MessageView]:
        """The message and every message that answers it, oldest first, as the host sees it."""
        return self.history(message_id).thread

    def history(self, message_id: str) -> History:
        """The message, its status records and its thread."""
        return history_from_wire(self._call("history", {"id": message_id}, retry=True))

    def tail(self, count: int, predicate: Callable[[dict[str, Any]], bool] | None = None
             ) -> tuple[list[Entry], int]:
        """The last ``count`` valid records (matching ``predicate``), oldest first, and the
        offset just after the last complete line (see :meth:`Bridge.tail`).

        The predicate runs here: records come in pages, newest first, until
        enough matched or the beginning was reached.
        """
        page = count if predicate is None else max(count, 200)
        first = self._call("tail", {"count": page}, retry=True)
        end: int = first["end"]
        if predicate is None:
            return [entry_from_wire(i) for i in first["items"]], end
        found: list[Entry] = []
        reply = first
        while True:
            for item in reversed(reply["items"]):
                entry = entry_from_wire(item)
                if predicate(entry.record):
                    found.append(entry)
                    if len(found) >= count:
                        found.reverse()
                        return found, end
            before = reply["start"]
            if before <= 0:
                break
            page = min(page * 2, 10_000)
            reply = self._call("tail", {"count": page, "before": before}, retry=True)
        found.reverse()
        return found, end

    def raw_line(self, entry: Entry) -> bytes:
        """The exact bytes of an entry's line in the live file, newline included."""
        text: str = self._call("raw_line", {"offset": entry.offset, "end": entry.end},
                               retry=True)
        return text.encode("utf-8")

    def fold(self) -> Fold:
        """A snapshot of the host's fold (message states; no content) as of this call."""
        got = self._call("fold", retry=True)
        fold = Fold(epoch=got["epoch"], offset=got["offset"], records=got["records"],
                    last_ts=got["last_ts"])
        for raw in got["messages"]:
            state = MessageState(**raw)
            fold.messages[state.id] = state
            if not state.terminal:
                fold.open[state.id] = state
            if state.reply_to is not None:
                fold.replies.setdefault(state.reply_to, []).append(state.id)
        return fold

    def follow(self, consumer: str | None = None, **kwargs: Any) -> RemoteFollower:
        """A follower of the host's log, pushed records as they are appended.

        Takes the arguments of :class:`bridge.Follower`; the cursor of a named
        consumer lives on the host, as for local consumers.
        """
        from ._remote_follow import RemoteFollower

        return RemoteFollower(self, consumer, **kwargs)

    def next_subscription(self) -> int:
        return next(self._subs)

    # -- pause -----------------------------------------------------------------------------

    def paused(self) -> PauseInfo | None:
        """Who paused the bridge and why, or None."""
        return pause_from_wire(self._call("paused", retry=True))

    def is_paused(self) -> bool:
        """Whether the PAUSE file exists on the host (one round trip)."""
        return bool(self._call("is_paused", retry=True))

    def pause(self, reason: str | None = None, *, by: str | None = None) -> PauseInfo:
        """Create PAUSE on the host and note it in the log."""
        info = pause_from_wire(self._call("pause", {"reason": reason, "by": self._who(by)}))
        return info or PauseInfo(by=self._who(by), reason=reason)

    def resume(self, *, by: str | None = None) -> bool:
        """Remove PAUSE on the host; True if the bridge was paused."""
        return bool(self._call("resume", {"by": self._who(by)}))

    # -- summary -----------------------------------------------------------------------------

    def status(self) -> BridgeStatus:
        """Pause state, message counts, size and last activity, as the host sees them."""
        return status_from_wire(self._call("status", retry=True))

    def doctor(self, *, repair: bool = False) -> DoctorReport:
        """``bridge doctor`` run on the host (repair is refused: run it there)."""
        if repair:
            raise RemoteUnsupported(
                f"{self.url}: repair a remote bridge on its host (ssh in and run "
                "bridge doctor --repair)")
        return doctor_from_wire(self._call("doctor", retry=True))

    def stats(self) -> dict[str, Any]:
        """``bridge stats`` computed on the host."""
        result: dict[str, Any] = self._call("stats", retry=True)
        return result

    def rotate(self, *, older_than: float | None = DEFAULT_OLDER_THAN,
               max_size: int | None = None, compress: bool = False, dry_run: bool = False,
               progress: Callable[[int, int], None] | None = None) -> RotationResult:
        """``bridge rotate`` run on the host (under the host's locks).

        ``progress`` is called once, at the end: the copying happens on the host.
        """
        result = RotationResult(**self._call("rotate", {
            "older_than": older_than, "max_size": max_size, "compress": compress,
            "dry_run": dry_run}))
        if progress is not None:
            total = result.moved_bytes + result.kept_bytes
            progress(total, total)
        return result

    def search(self, text: str, *, regex: bool = False, ignore_case: bool = False,
               since: float | None = None, until: float | None = None,
               sender: str | None = None, to: str | None = None, archives: bool = False,
               limit: int | None = None) -> Iterator[Hit]:
        """``bridge search`` run on the host, newest first, at most ``limit`` hits.

        One reply carries the hits, so the host caps them (10,000 by default);
        ``limit=None`` asks for that many.
        """
        filters = {"regex": regex, "ignore_case": ignore_case, "since": since, "until": until,
                   "sender": sender, "to": to, "archives": archives}
        asked = 0 if limit is None else max(0, limit)
        if limit is not None and asked == 0:
            return iter(())
        items = self._call("search", {"text": text, "limit": asked, **filters}, retry=True)
        return iter([Hit(i["record"], i["line"].encode(), i["source"]) for i in items])


def _version() -> str:
    from .._version import __version__

    return __version__
