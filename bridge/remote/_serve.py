"""``bridge serve --stdio``: the bridge host's end of the line protocol (docs/remote.md).

One process per SSH channel: requests on stdin, replies and pushed records on
stdout, the log on stderr (which the client relays to its own log). Remote
writers therefore append through this host's own :class:`Bridge`, under the
same ``flock`` as every local writer.

- The main thread reads stdin. Pings and credits are answered at once; every
  other request goes, in order, to one worker thread, so that a request waiting
  for the lock never delays a heartbeat.
- Each ``follow`` subscription has a thread that waits on inotify (a
  :class:`Follower`) and pushes new records while the client has credit, so a
  slow consumer bounds the memory on both sides.
- The process exits when stdin reaches EOF, when stdout breaks, or when nothing
  arrived for ``idle_timeout`` seconds (a client pings every few seconds): no
  orphan outlives its connection, even one that vanished without a FIN.
- A malformed, oversized or unknown request gets an error reply and a line in
  the log (its length, never its content), and serving goes on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import select
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from .._errors import BridgeError, BridgeUnavailable, InvalidInput, ProtocolMismatch
from ..delivery import Follower
from ..format import (
    BadLine,
    Entry,
    check_record,
    decode_line,
    iter_lines_reverse,
    line_start_before,
    read_epoch,
)
from ..inspection import compute_stats, run_doctor
from ..local import DEFAULT_MAX_RECORD_BYTES, Bridge
from ..store import SendResult, default_directory
from ._wire import (
    BANNER_EVENT,
    MAX_REPLY,
    MAX_REQUEST,
    PROTOCOL_NAME,
    PUSH_BYTES,
    VERSIONS,
    LineSplitter,
    Oversized,
    entry_to_wire,
    error_to_wire,
    frame,
    history_to_wire,
    request_id_of,
    status_to_wire,
    view_to_wire,
)

__all__ = ["DEFAULT_IDLE_TIMEOUT", "Server", "serve_stdio"]

log = logging.getLogger("bridge.serve")

DEFAULT_IDLE_TIMEOUT = 60.0
"""Exit after this long without a single line from the client (it pings every few seconds)."""

SERVE_LOCK_TIMEOUT = 30.0
"""How long a remote request waits for the bridge lock before failing with LockTimeout."""

PUSH_BATCH = 500
"""At most this many records per pushed ``recs`` event."""

QUEUED_REQUESTS = 256
"""Requests waiting for the worker; when full, stdin is not read, and SSH's flow control
holds the client back instead of this process's memory growing."""

MAX_SUBSCRIPTIONS = 64
"""Follows one connection may hold (each is a thread and an inotify watch)."""

_INLINE_OPS = frozenset({"ping", "credit"})

SEARCH_CAP = 10_000
"""At most this many search hits in one reply."""


def _result(res: SendResult) -> list[Any]:
    return [res.id, res.offset, res.duplicate]


class _Output:
    """stdout, written one whole line at a time from any thread."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._lock = threading.Lock()
        self.broken = threading.Event()

    def send(self, obj: Any) -> bool:
        return self.send_raw(frame(obj))

    def send_raw(self, line: bytes) -> bool:
        data = memoryview(line)
        with self._lock:
            if self.broken.is_set():
                return False
            try:
                while data:
                    data = data[os.write(self.fd, data):]
            except OSError as exc:
                log.info("the client went away (%s)", exc.strerror or exc)
                self.broken.set()
                return False
        return True


class _Subscription:
    """One ``follow``: a Follower on this host, pushing records while the client has credit."""

    def __init__(self, sub: int, follower: Follower, out: _Output) -> None:
        self.sub = sub
        self.follower = follower
        self.out = out
        self.credit = 0
        self._cond = threading.Condition()
        self._stopped = False
        self.thread = threading.Thread(target=self._run, name=f"follow-{sub}", daemon=True)

    def grant(self, n: int) -> None:
        with self._cond:
            self.credit += n
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self.follower.stop()

    def on_bad_line(self, bad: BadLine) -> None:
        log.warning("skipped line at offset %d: %s", bad.offset, bad.reason)
        self.out.send({"ev": "bad", "sub": self.sub,
                       "items": [[bad.offset, bad.end, bad.reason, bad.line_no]]})

    def _push(self, entries: list[Entry]) -> bool:
        """Send ``entries`` as ``recs`` events of at most PUSH_BYTES each (False: stdout broke).

        A record too large for any line of the protocol is reported as a bad line,
        so that the client skips it instead of resetting the connection over it forever.
        """
        head = b'{"ev":"recs","sub":%d,"items":[' % self.sub
        batch: list[bytes] = []
        size = 0
        for entry in entries:
            item = orjson.dumps(entry_to_wire(entry))
            if len(item) + len(head) + 4 > MAX_REPLY:
                if batch and not self.out.send_raw(head + b",".join(batch) + b"]}\n"):
                    return False
                batch, size = [], 0
                self.on_bad_line(BadLine(entry.offset, entry.end, f"a record of {len(item)} "
                                         "bytes is too large for the line protocol"))
                continue
            if batch and size + len(item) > PUSH_BYTES:
                if not self.out.send_raw(head + b",".join(batch) + b"]}\n"):
                    return False
                batch, size = [], 0
            batch.append(item)
            size += len(item) + 1
        return not batch or self.out.send_raw(head + b",".join(batch) + b"]}\n")

    def _run(self) -> None:
        epoch = self.follower.epoch
        try:
            while True:
                with self._cond:
                    while self.credit <= 0 and not self._stopped:
                        self._cond.wait()
                    if self._stopped:
                        return
                    allowed = min(self.credit, PUSH_BATCH)
                entries = self.follower.wait(timeout=1.0, limit=allowed)
                if not entries:
                    continue
                if self.follower.epoch != epoch:
                    # Rotation moved the follower to a new file: the client's resume
                    # position refers to that file from now on.
                    epoch = self.follower.epoch
                    try:
                        ino: int | None = os.stat(self.follower.path).st_ino
                    except FileNotFoundError:
                        ino = None
                    self.out.send({"ev": "file", "sub": self.sub, "epoch": epoch, "inode": ino})
                if not self._push(entries):
                    return
                with self._cond:
                    self.credit -= len(entries)
        except BridgeError as exc:
            self.out.send({"ev": "closed", "sub": self.sub, "err": error_to_wire(exc)})
        except Exception as exc:
            log.exception("follow %d failed", self.sub)
            self.out.send({"ev": "closed", "sub": self.sub, "err": error_to_wire(exc)})
        finally:
            self.follower.close()


class Server:
    """Serves one client on a pair of file descriptors (stdin and stdout of ``bridge serve``).

    Args:
        directory: pin the bridge: the client may open only this one (the
            ``authorized_keys`` lock-down passes it); None lets the client name it.
        idle_timeout: exit after this many seconds without a line from the client.
    """

    def __init__(self, *, directory: Path | None = None, in_fd: int = 0, out_fd: int = 1,
                 idle_timeout: float = DEFAULT_IDLE_TIMEOUT) -> None:
        self.pinned = directory
        self.in_fd = in_fd
        self.out = _Output(out_fd)
        self.idle_timeout = idle_timeout
        self.bridge: Bridge | None = None
        self.version = 1
        """The line protocol version the client chose in hello (it decides the view shape)."""
        self.subs: dict[int, _Subscription] = {}
        self._work: queue.Queue[dict[str, Any] | None] = queue.Queue(QUEUED_REQUESTS)
        self._failed_batches: set[str] = set()
        self._after_reply: Callable[[], None] | None = None
        self._ops: dict[str, Callable[..., Any]] = {
            name[4:]: getattr(self, name) for name in dir(self) if name.startswith("_op_")}

    # -- the loop ------------------------------------------------------------------------

    def run(self) -> int:
        """Serve until the client leaves; returns the process exit code (0)."""
        from .._version import __version__

        self.out.send({"ev": BANNER_EVENT, "protocol": PROTOCOL_NAME, "versions": list(VERSIONS),
                       "server": __version__})
        worker = threading.Thread(target=self._work_loop, name="requests", daemon=True)
        worker.start()
        try:
            self._read_loop()
        finally:
            with contextlib.suppress(queue.Full):  # a worker stuck with a full queue is a daemon
                self._work.put(None, timeout=1)
            for sub in list(self.subs.values()):
                sub.stop()
            # Let the request in hand finish (an append holds the lock for microseconds;
            # a lock wait is bounded by SERVE_LOCK_TIMEOUT).
            worker.join(SERVE_LOCK_TIMEOUT + 5)
            for sub in list(self.subs.values()):
                sub.thread.join(5)
            if self.bridge is not None:
                self.bridge.close()
        return 0

    def _read_loop(self) -> None:
        splitter = LineSplitter(MAX_REQUEST)
        last = time.monotonic()
        while not self.out.broken.is_set():
            ready, _, _ = select.select([self.in_fd], [], [], 1.0)
            now = time.monotonic()
            if not ready:
                if now - last > self.idle_timeout:
                    log.warning("no request for %.0f s: the client is gone; exiting",
                                self.idle_timeout)
                    return
                continue
            data = os.read(self.in_fd, 1 << 16)
            if not data:
                log.info("the client closed the channel; exiting")
                return
            last = now
            for line in splitter.feed(data):
                self._accept(line)

    def _accept(self, line: bytes) -> None:
        if isinstance(line, Oversized):
            log.warning("refused a request of %d bytes (limit %d)", line.size, MAX_REQUEST)
            self._reply_error(request_id_of(line), InvalidInput(
                f"request of {line.size} bytes refused: the limit is {MAX_REQUEST} bytes"))
            return
        try:
            req = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            log.warning("refused a malformed request of %d bytes: %s", len(line),
                        str(exc).split(":", 1)[0])
            self._reply_error(request_id_of(line), InvalidInput("request is not JSON"))
            return
        rid = req.get("id") if isinstance(req, dict) else None
        if not isinstance(req, dict) or not isinstance(req.get("op"), str) or not (
                rid is None or (isinstance(rid, int) and not isinstance(rid, bool))):
            log.warning("refused a request of %d bytes: not {\"id\": int, \"op\": str}",
                        len(line))
            self._reply_error(rid if isinstance(rid, int) else None, InvalidInput(
                'a request is {"id": N, "op": NAME, "args": {...}}'))
            return
        if req["op"] in _INLINE_OPS:
            self._handle(req)
        else:
            self._work.put(req)

    def _work_loop(self) -> None:
        while True:
            req = self._work.get()
            if req is None:
                return
            self._handle(req)
            # Set by follow (only ever on this thread): start pushing once the reply is out.
            after, self._after_reply = self._after_reply, None
            if after is not None:
                after()

    def _check(self, op: str, args: Any) -> Callable[..., Any]:
        fn = self._ops.get(op)
        if fn is None:
            raise InvalidInput(f"unknown operation {op!r}")
        if not isinstance(args, dict):
            raise InvalidInput(f"{op}: args must be an object")
        if self.bridge is None and op not in ("hello", "ping"):
            raise InvalidInput(f"{op}: say hello first")
        return fn

    def _handle(self, req: dict[str, Any]) -> None:
        rid = req.get("id")
        op = req["op"]
        args = req.get("args") or {}
        try:
            result = self._check(op, args)(**args)
        except BridgeError as exc:
            self._reply_error(rid, exc, getattr(exc, "partial", None))
            return
        except (TypeError, ValueError, KeyError) as exc:
            log.warning("refused %s: bad arguments (%s)", op, exc)
            self._reply_error(rid, InvalidInput(f"{op}: bad arguments ({exc})"))
            return
        except OSError as exc:
            log.warning("%s failed: %s", op, exc)
            self._reply_error(rid, exc)
            return
        except Exception as exc:
            log.exception("%s failed", op)
            self._reply_error(rid, exc)
            return
        if rid is None:
            return
        line = frame({"id": rid, "ok": result})
        if len(line) > MAX_REPLY:
            log.warning("%s: a reply of %d bytes is over the limit", op, len(line))
            self._reply_error(rid, InvalidInput(
                f"{op}: the answer is {len(line)} bytes, over the line protocol's {MAX_REPLY}-"
                "byte limit for one reply"))
            return
        self.out.send_raw(line)

    def _reply_error(self, rid: int | None, exc: BaseException,
                     partial: list[Any] | None = None) -> None:
        err = error_to_wire(exc)
        if isinstance(exc, OSError) and not isinstance(exc, BridgeError):
            err = {"type": "BridgeIOError", "exit": 7,
                   "message": f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename
                                                          else "")}
        if partial is not None:
            err["partial"] = partial
        # A notification (no id) that failed still gets an answer: the client logs it.
        self.out.send({"id": rid, "err": err})

    def _need(self) -> Bridge:
        if self.bridge is None:  # pragma: no cover - _check refuses ops before hello
            raise InvalidInput("say hello first")
        return self.bridge

    # -- session ---------------------------------------------------------------------------

    def _op_hello(self, *, version: int, dir: str | None = None, agent: str = "cli",
                  create: bool = True, durability: str = "always", group: str | None = None,
                  lock_timeout: float | None = None, client: str | None = None,
                  max_record_bytes: int | None = None) -> dict[str, Any]:
        from .._version import __version__

        if version not in VERSIONS:
            raise ProtocolMismatch(
                f"the client speaks protocol version {version}, this host {list(VERSIONS)} "
                f"(kami-bridge {__version__}): install the same kami-bridge release on both")
        if self.bridge is not None:
            raise InvalidInput("hello: already open")
        directory = self._choose_directory(dir)
        if durability not in ("always", "batch", "none"):
            raise InvalidInput("durability must be always, batch or none")
        kwargs: dict[str, Any] = {}
        if max_record_bytes is not None:
            # A client may lower the host's limit, never raise it.
            kwargs["max_record_bytes"] = min(int(max_record_bytes), DEFAULT_MAX_RECORD_BYTES)
        self.bridge = Bridge(directory, agent=agent, durability=durability,  # type: ignore[arg-type]
                             group=group, create=bool(create),
                             lock_timeout=SERVE_LOCK_TIMEOUT if lock_timeout is None
                             else min(float(lock_timeout), SERVE_LOCK_TIMEOUT), **kwargs)
        self.version = version
        log.info("serving %s for %s (client %s)", self.bridge.directory, agent, client or "?")
        return {"version": version, "server": __version__, "dir": str(self.bridge.directory),
                "filesystem": self.bridge.filesystem, "max_line": MAX_REQUEST,
                "max_record_bytes": self.bridge.max_record_bytes}

    def _choose_directory(self, requested: str | None) -> Path:
        wanted = Path(requested).expanduser() if requested else None
        if self.pinned is None:
            return wanted or default_directory()
        pinned = self.pinned.expanduser()
        if wanted is not None and os.path.realpath(wanted) != os.path.realpath(pinned):
            raise BridgeUnavailable(
                f"this account may open only {pinned} (serve --dir), not {wanted}; use that "
                "path in the URL, or leave the path out")
        return pinned

    def _op_ping(self) -> dict[str, Any]:
        return {"paused": self.bridge.is_paused() if self.bridge is not None else None,
                "time": time.time()}

    # -- writing ---------------------------------------------------------------------------

    def _op_send(self, **kw: Any) -> list[Any]:
        return _result(self._need().send(**kw))

    def _op_send_many(self, *, items: list[Any], base: int = 0, batch: str | None = None
                      ) -> list[list[Any]]:
        if batch is not None and batch in self._failed_batches:
            raise InvalidInput("skipped: an earlier item of this batch was refused")
        if not isinstance(items, list):
            raise InvalidInput("send_many: items must be a list")
        done: list[list[Any]] = []
        try:
            for res in self._need().send_many(items):
                done.append(_result(res))
        except InvalidInput as exc:
            if batch is not None:
                self._failed_batches.add(batch)
            # Positions as the client counts them (across every request of the batch).
            text = str(exc)
            head, sep, rest = text.partition(": ")
            if sep and head.startswith("item ") and head[5:].isdigit():
                text = f"item {int(head[5:]) + base}: {rest}"
            err = InvalidInput(text)
            err.partial = done  # type: ignore[attr-defined]
            raise err from None
        return done

    def _op_reply(self, **kw: Any) -> list[Any]:
        return _result(self._need().reply(**kw))

    def _op_set_status(self, **kw: Any) -> str:
        return self._need().set_status(**kw)

    def _op_claim(self, **kw: Any) -> dict[str, Any]:
        return view_to_wire(self._need().claim(**kw), self.version)

    def _op_claim_next(self, *, types: list[str] | None = None, **kw: Any
                       ) -> dict[str, Any] | None:
        view = self._need().claim_next(types=types or ("request",), **kw)
        return None if view is None else view_to_wire(view, self.version)

    def _op_release(self, **kw: Any) -> None:
        self._need().release(**kw)

    def _op_append_record(self, *, record: dict[str, Any]) -> int:
        return self._need().append_record(record)

    def _op_event(self, *, name: str, fields: dict[str, Any] | None = None) -> None:
        self._need().event(name, **(fields or {}))

    # -- reading ---------------------------------------------------------------------------

    def _op_get(self, *, id: str) -> dict[str, Any]:
        return view_to_wire(self._need().get(id), self.version)

    def _op_inbox(self, *, agent: str, include_claimed: bool = True) -> list[dict[str, Any]]:
        return [view_to_wire(v, self.version) for v in self._need().inbox(agent,
                                                            include_claimed=include_claimed)]

    def _op_dead_letters(self, *, agent: str) -> list[dict[str, Any]]:
        return [view_to_wire(v, self.version) for v in self._need().dead_letters(agent)]

    def _op_history(self, *, id: str) -> dict[str, Any]:
        return history_to_wire(self._need().history(id), self.version)

    def _op_tail(self, *, count: int, before: int | None = None) -> dict[str, Any]:
        """The last ``count`` valid records before offset ``before`` (default: the end).

        ``start`` is where the scan stopped: the client pages backwards from it
        when its own filter wants more (0: the beginning was reached).
        """
        b = self._need()
        try:
            fd = os.open(b.log_path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return {"items": [], "end": 0, "start": 0}
        try:
            end = line_start_before(fd, os.fstat(fd).st_size)
            upto = end if before is None else min(int(before), end)
            found: list[list[Any]] = []
            start = upto
            if count > 0:
                for off, nxt, line in iter_lines_reverse(fd, upto):
                    start = off
                    obj = decode_line(line)
                    if isinstance(obj, str) or check_record(obj) is not None:
                        continue
                    found.append([off, nxt, obj])
                    if len(found) >= count:
                        break
                else:
                    start = 0
            found.reverse()
            return {"items": found, "end": end, "start": start}
        finally:
            os.close(fd)

    def _op_raw_line(self, *, offset: int, end: int) -> str:
        line = self._need().raw_line(Entry(int(offset), int(end), {}))
        return line.decode("utf-8", "replace")

    def _op_fold(self) -> dict[str, Any]:
        fold = self._need().fold()
        return {"messages": [asdict(s) for s in fold.messages.values()], "epoch": fold.epoch,
                "offset": fold.offset, "records": fold.records, "last_ts": fold.last_ts}

    def _op_status(self) -> dict[str, Any]:
        return status_to_wire(self._need().status(), self.version)

    def _op_doctor(self) -> dict[str, Any]:
        return run_doctor(self._need()).to_dict()

    def _op_stats(self) -> dict[str, Any]:
        return compute_stats(self._need())

    def _op_rotate(self, *, older_than: float | None = None, max_size: int | None = None,
                   compress: bool = False, dry_run: bool = False) -> dict[str, Any]:
        from ..archive import rotate

        return rotate(self._need(), older_than=older_than, max_size=max_size,
                      compress=bool(compress), dry_run=bool(dry_run)).to_dict()

    def _op_search(self, *, text: str, limit: int = 50, **filters: Any) -> list[dict[str, Any]]:
        from ..archive import search

        # Bounded: a reply is one line, and the client asked for at most `limit`.
        cap = max(1, min(int(limit) if limit else SEARCH_CAP, SEARCH_CAP))
        hits = []
        for hit in search(self._need(), text, **filters):
            hits.append({"record": hit.record, "line": hit.line.decode("utf-8", "replace"),
                         "source": hit.source})
            if len(hits) >= cap:
                break
        return hits

    # -- pause -----------------------------------------------------------------------------

    def _op_pause(self, *, reason: str | None = None, by: str | None = None) -> dict[str, Any]:
        return self._need().pause(reason, by=by).to_dict()

    def _op_resume(self, *, by: str | None = None) -> bool:
        return self._need().resume(by=by)

    def _op_paused(self) -> dict[str, Any] | None:
        info = self._need().paused()
        return None if info is None else info.to_dict()

    def _op_is_paused(self) -> bool:
        return self._need().is_paused()

    # -- following -------------------------------------------------------------------------

    def _op_follow(self, *, sub: int, consumer: str | None = None,
                   start: str | int = "beginning", poll_interval: float = 0.25,
                   watch: bool = True, resume: dict[str, Any] | None = None,
                   credit: int = 0) -> dict[str, Any]:
        b = self._need()
        if not isinstance(sub, int) or sub in self.subs:
            raise InvalidInput(f"follow: subscription {sub!r} is taken")
        if len(self.subs) >= MAX_SUBSCRIPTIONS:
            raise InvalidInput(f"follow: at most {MAX_SUBSCRIPTIONS} follows per connection")
        if start not in ("beginning", "end") and not (isinstance(start, int) and start >= 0):
            raise InvalidInput("follow: start must be beginning, end or an offset")
        if resume is not None:
            follower = self._resume(b, consumer, resume, poll_interval, watch)
        else:
            follower = Follower(b, consumer, start=start,  # type: ignore[arg-type]
                                poll_interval=poll_interval, watch=watch)
        subscription = _Subscription(sub, follower, self.out)
        follower.on_bad_line = subscription.on_bad_line
        self.subs[sub] = subscription
        try:
            ino = os.stat(b.log_path).st_ino
        except FileNotFoundError:
            ino = None
        subscription.credit = max(0, int(credit))
        # The thread starts once the reply is out: no record may overtake it.
        self._after_reply = subscription.thread.start
        return {"position": follower.position, "committed": follower.committed,
                "epoch": follower.epoch, "inode": ino}

    def _resume(self, b: Bridge, consumer: str | None, resume: dict[str, Any],
                poll_interval: float, watch: bool) -> Follower:
        """A follower continuing exactly where the client's last handed-out record ended.

        The client's position is the truth (it knows what its handler saw); it
        refers to the file it was reading, named by epoch (or inode). If that is
        still the live file, reading continues there; if the file was replaced
        meanwhile, the position is moved the way a local follower moves it.
        """
        offset = int(resume["offset"])
        epoch, inode = resume.get("epoch"), resume.get("inode")
        if consumer is not None and resume.get("committed") is not None:
            # Commits are pipelined; one lost with the connection is replayed here.
            from ..store import Cursor

            b.cursors.save(Cursor(consumer, int(resume["committed"]), epoch, inode))
        start = offset
        try:
            fd = os.open(b.log_path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            fd = -1
        if fd >= 0:
            try:
                live_epoch, live_ino = read_epoch(fd), os.fstat(fd).st_ino
            finally:
                os.close(fd)
            same = (epoch == live_epoch) if (epoch and live_epoch) else inode == live_ino
            if not same:
                from ..archive import relocate_offset

                moved = relocate_offset(b.directory, epoch, offset, live_epoch)
                if moved is None:
                    log.warning("the live file was replaced while the client was away "
                                "(epoch %s -> %s) with no rotation map; reading it from the "
                                "start", epoch, live_epoch)
                start = 0 if moved is None else moved
        follower = Follower(b, None, start=start, poll_interval=poll_interval, watch=watch)
        follower.consumer = consumer  # commits go to the consumer's cursor from here on
        return follower

    def _op_unfollow(self, *, sub: int) -> None:
        subscription = self.subs.pop(sub, None)
        if subscription is not None:
            subscription.stop()

    def _op_commit(self, *, sub: int, offset: int) -> None:
        subscription = self.subs.get(sub)
        if subscription is not None:
            subscription.follower.commit(int(offset))

    def _op_credit(self, *, sub: int, n: int) -> None:
        subscription = self.subs.get(sub)
        if subscription is not None:
            subscription.grant(int(n))


def serve_stdio(directory: Path | None = None, *, idle_timeout: float = DEFAULT_IDLE_TIMEOUT
                ) -> int:
    """Serve the line protocol on stdin/stdout until the client leaves (``bridge serve``)."""
    return Server(directory=directory, idle_timeout=idle_timeout).run()


def serve_command(directory: Path | None = None, *,
                  idle_timeout: float = DEFAULT_IDLE_TIMEOUT) -> int:
    """``bridge serve --stdio`` as a process: its log lines on stderr, then :func:`serve_stdio`.

    Called by the console script's fast path and by the typer command alike.
    """
    import logging
    import sys

    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(levelname)s bridge serve[%(process)d]: %(message)s")
    return serve_stdio(directory, idle_timeout=idle_timeout)
