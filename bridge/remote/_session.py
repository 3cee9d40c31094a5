"""One SSH connection running ``bridge serve --stdio``: requests, replies and pushed records.

A session is used from any number of threads and has two of its own:

- the reader waits on the channel, matches replies to requests by id, hands
  pushed records to their subscription's queue, relays the server's stderr to
  the log, and keeps the heartbeat: when nothing arrived for a quarter of the
  deadline it sends a ping, and when nothing at all arrived for the whole
  deadline the host is declared gone (paramiko's own keepalive only sends and
  never notices a dead peer). A line that is not the protocol ends the session
  too: it is reported, never waited on.
- the writer sends queued lines, so that no caller (nor the heartbeat) ever
  blocks on a full SSH window while holding anything.

A session never reconnects; :class:`bridge.RemoteBridge` replaces a dead one.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import select
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import orjson

from .._errors import (
    BridgeError,
    ConnectionLost,
    ProtocolError,
    ProtocolMismatch,
    RemoteError,
    RemoteUnsupported,
)
from ..format import json_kind
from ._errors import map_paramiko_errors
from ._ssh import SSHTarget, exec_channel, open_client
from ._wire import (
    BANNER_EVENT,
    MAX_REPLY,
    PROTOCOL_NAME,
    VERSIONS,
    LineSplitter,
    Oversized,
    error_from_wire,
    frame,
)

if TYPE_CHECKING:
    import paramiko

__all__ = ["DEFAULT_HEARTBEAT_TIMEOUT", "Lost", "Session"]

log = logging.getLogger("bridge.remote")

DEFAULT_HEARTBEAT_TIMEOUT = 10.0
"""A host that sends nothing for this long (pings included) is declared gone."""

TICK = 0.1
"""How often the reader looks at the clock while the channel is quiet."""

STARTUP_TIMEOUT = 20.0
"""How long the remote command may take to print the protocol banner (shell start included)."""


class Lost:
    """Put in a subscription's queue when the session ends; ``error`` says why."""

    __slots__ = ("error",)

    def __init__(self, error: RemoteError) -> None:
        self.error = error


class _Pending:
    __slots__ = ("error", "event", "partial", "result")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.result: Any = None
        self.error: BridgeError | None = None
        self.partial: Any = None


def clone(exc: BridgeError) -> BridgeError:
    """A fresh copy to raise in one more thread (tracebacks are per raise)."""
    copy = type(exc).__new__(type(exc))
    Exception.__init__(copy, str(exc))
    copy.exit_code = exc.exit_code
    return copy


class Session:
    """A connected ``bridge serve --stdio`` on ``target``, after the hello handshake.

    Raises (from the constructor) what connecting raises: HostUnreachable,
    HostKeyError, AuthenticationFailed, RemoteUnsupported (no toolkit at
    ``command``, or no common protocol version), ProtocolError.
    """

    def __init__(self, target: SSHTarget, command: str, hello: dict[str, Any], *,
                 heartbeat_timeout: float = DEFAULT_HEARTBEAT_TIMEOUT) -> None:
        self.target = target
        self.command = command
        self.deadline = heartbeat_timeout
        self.interval = heartbeat_timeout / 4
        self.error: RemoteError | None = None
        self.banner: dict[str, Any] | None = None
        self.info: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._subs: dict[int, queue.SimpleQueue[Any]] = {}
        self._out: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._banner_seen = threading.Event()
        self._dead = threading.Event()
        self._closing = False
        self._established = False  # until then a failure is raised, not logged
        self._ping: int | None = None
        self._stderr_tail: deque[str] = deque(maxlen=5)
        self.client = open_client(target)
        try:
            # exec: the login shell hands its process over, so nothing sits between
            # sshd and the server (and nothing survives the channel).
            self.channel: paramiko.Channel = exec_channel(
                self.client, f"exec {command} serve --stdio", timeout=target.connect_timeout,
                where=target.hostname)
            self.last_rx = time.monotonic()
            self._reader = threading.Thread(target=self._read_loop, daemon=True,
                                            name=f"bridge-read {target.hostname}")
            self._writer = threading.Thread(target=self._write_loop, daemon=True,
                                            name=f"bridge-write {target.hostname}")
            self._reader.start()
            self._writer.start()
            self._handshake(hello)
        except BaseException:
            self.close()
            raise

    # -- handshake ----------------------------------------------------------------------

    def _handshake(self, hello: dict[str, Any]) -> None:
        started = time.monotonic()
        while not self._banner_seen.wait(0.05):
            if self._dead.is_set():
                raise self._startup_failure()
            if time.monotonic() - started > STARTUP_TIMEOUT:
                raise RemoteUnsupported(
                    f"{self.target.hostname}: {self.command!r} printed no bridge protocol "
                    f"banner within {STARTUP_TIMEOUT:g} s; check that it is kami-bridge's "
                    "`bridge` command (?command= in the URL, or $BRIDGE_REMOTE_COMMAND)")
        if self._dead.is_set():
            raise self._startup_failure()
        banner = self.banner or {}
        theirs = banner.get("versions")
        common = [v for v in VERSIONS if isinstance(theirs, list) and v in theirs]
        if not common:
            raise ProtocolMismatch(
                f"{self.target.hostname} runs kami-bridge {banner.get('server', '?')}, which "
                f"speaks line protocol version(s) {theirs}; this client speaks "
                f"{list(VERSIONS)}: install the same kami-bridge release on both sides")
        self.version = max(common)
        self.info = self.call("hello", {**hello, "version": self.version})
        self._established = True

    def _startup_failure(self) -> RemoteError:
        """Why the remote command ended before (or instead of) speaking the protocol."""
        if isinstance(self.error, ProtocolError):
            return self.error
        status = None
        with map_paramiko_errors(self.target.hostname, "starting the bridge server"):
            # The status arrives just before the close; set on either.
            if self.channel.status_event.wait(2.0) and self.channel.exit_status >= 0:
                status = self.channel.exit_status  # (-1: closed without one)
        said = " / ".join(self._stderr_tail) or "nothing on stderr"
        host = self.target.hostname
        if status in (126, 127):
            return RemoteUnsupported(
                f"{host} has no kami-bridge toolkit at {self.command!r} (exit {status}: "
                f"{said}); install it there, or name its path with ?command=/path/to/bridge "
                "in the URL or $BRIDGE_REMOTE_COMMAND; without it use ?transport=sftp "
                "(docs/remote.md)")
        if status is not None:
            return RemoteUnsupported(
                f"{self.command!r} on {host} exited with status {status} instead of serving "
                f"({said}); it may be a kami-bridge without `serve`: upgrade it there")
        return self.error or ConnectionLost(f"{host} closed the connection during the handshake")

    # -- requests -------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return not self._dead.is_set()

    def start(self, op: str, args: dict[str, Any] | None = None) -> _Pending:
        """Send a request; :meth:`result` waits for its reply (requests can be pipelined)."""
        pending = _Pending()
        with self._lock:
            error = self.error
            if error is not None:
                raise clone(error)
            rid = next(self._ids)
            self._pending[rid] = pending
        self._send({"id": rid, "op": op, "args": args or {}})
        return pending

    def result(self, pending: _Pending) -> Any:
        # No timeout of its own: the heartbeat ends the wait when the host goes
        # silent, and a live host may rightly take long (a lock wait on the host).
        pending.event.wait()
        error = pending.error
        if error is not None:
            # The session's own error is shared by every request it failed: copy it.
            raise clone(error) if id(error) == id(self.error) else error
        return pending.result

    def call(self, op: str, args: dict[str, Any] | None = None) -> Any:
        """One request, waiting for its reply; a reply's error is raised as its own class."""
        return self.result(self.start(op, args))

    def notify(self, op: str, args: dict[str, Any]) -> None:
        """A request without a reply (commit, credit); dropped if the session is gone."""
        if self.alive:
            self._send({"op": op, "args": args})

    def subscribe(self, sub: int, sink: queue.SimpleQueue[Any], args: dict[str, Any]
                  ) -> dict[str, Any]:
        """Start a ``follow``: pushed events for ``sub`` (and a :class:`Lost`) go to ``sink``."""
        with self._lock:
            self._subs[sub] = sink
        try:
            reply: dict[str, Any] = self.call("follow", {**args, "sub": sub})
        except BaseException:
            with self._lock:
                self._subs.pop(sub, None)
            raise
        if self._dead.is_set():  # died between the reply and now: make sure sink hears it
            sink.put(Lost(self.error or ConnectionLost("session ended")))
        return reply

    def unsubscribe(self, sub: int) -> None:
        with self._lock:
            known = self._subs.pop(sub, None) is not None
        if known:
            self.notify("unfollow", {"sub": sub})

    def _send(self, obj: Any) -> None:
        self._out.put(frame(obj))

    # -- threads -------------------------------------------------------------------------

    def _write_loop(self) -> None:
        while True:
            item = self._out.get()
            if item is None:
                return
            chunks, size, stop = [item], len(item), False
            while size < (1 << 18):
                try:
                    more = self._out.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                chunks.append(more)
                size += len(more)
            try:
                # No link: on this channel every failure means the session is gone.
                with map_paramiko_errors(self.target.hostname, "sending requests"):
                    self.channel.sendall(b"".join(chunks))
            except RemoteError as exc:
                self._fail(exc)
                return
            if stop:
                return

    def _read_loop(self) -> None:
        chan = self.channel
        splitter = LineSplitter(MAX_REPLY)
        try:
            # No link: on this channel every failure means the session is gone.
            with map_paramiko_errors(self.target.hostname, "reading replies"):
                while not self._closing:
                    select.select([chan], [], [], TICK)
                    now = time.monotonic()
                    if chan.recv_stderr_ready():
                        self._relay_stderr(chan.recv_stderr(1 << 16))
                    if chan.recv_ready():
                        data = chan.recv(1 << 16)
                        self.last_rx = now
                        for line in splitter.feed(data):
                            self._dispatch(line)
                    elif chan.eof_received or chan.closed:
                        # sshd may send EOF before the exit status; wait for it a moment
                        # (it says why a command ended: 127 is "no such command").
                        chan.status_event.wait(1.0)
                        while chan.recv_stderr_ready():
                            self._relay_stderr(chan.recv_stderr(1 << 16))
                        self._ended()
                    if self._banner_seen.is_set():  # before it the server is still starting
                        self._heartbeat(now)
        except RemoteError as exc:
            self._fail(exc)
        except Exception as exc:  # the thread's last word: the session ends
            # Not paramiko's (those are translated above): a bug here, kept in the log.
            log.error("the reader of %s failed", self.target.hostname, exc_info=True)
            self._fail(ConnectionLost(f"the connection to {self.target.hostname} broke: "
                                      f"{exc or type(exc).__name__}"))
        finally:
            # Closed by this thread, the one select()ing on it: the channel's wake-up pipe
            # is released now rather than whenever the garbage collector finds the cycle.
            with self._quietly("closing the session"):
                chan.close()

    def _ended(self) -> None:
        raise ConnectionLost(f"{self.target.hostname} closed the connection")

    def _heartbeat(self, now: float) -> None:
        silent = now - self.last_rx
        if silent > self.deadline:
            raise ConnectionLost(
                f"no answer from {self.target.hostname} for {silent:.1f} s (heartbeat "
                f"deadline {self.deadline:g} s): the host is frozen or unreachable")
        if silent >= self.interval and self._ping is None:
            self._ping = next(self._ids)
            self._send({"id": self._ping, "op": "ping"})

    def _dispatch(self, line: bytes) -> None:
        host = self.target.hostname
        if isinstance(line, Oversized):
            raise ProtocolError(f"{host} sent a line of {line.size} bytes, over the "
                                f"{MAX_REPLY}-byte limit; connection reset")
        try:
            msg = orjson.loads(line)
        except orjson.JSONDecodeError:
            if not self._banner_seen.is_set():
                raise ProtocolError(
                    f"{self.command!r} on {host} printed {bytes(line[:60])!r} instead of the "
                    "bridge protocol banner; does the account's shell startup print text? "
                    "(docs/remote.md §2)") from None
            raise ProtocolError(f"{host} sent a line that is not JSON "
                                f"({bytes(line[:40])!r}...); connection reset") from None
        if not isinstance(msg, dict):
            raise ProtocolError(f"{host} sent {json_kind(msg)} instead of a JSON object; "
                                "connection reset")
        if not self._banner_seen.is_set():
            if msg.get("ev") != BANNER_EVENT or msg.get("protocol") != PROTOCOL_NAME:
                raise ProtocolError(f"{self.command!r} on {host} did not start with the bridge "
                                    f"protocol banner (got {bytes(line[:60])!r})")
            self.banner = msg
            self._banner_seen.set()
            return
        if "id" in msg:
            self._reply(msg)
        elif isinstance(msg.get("ev"), str):
            with self._lock:
                sink = self._subs.get(msg.get("sub"))  # type: ignore[arg-type]
            if sink is not None:
                sink.put(msg)
        else:
            raise ProtocolError(f"{host} sent a message that is neither a reply nor an event; "
                                "connection reset")

    def _reply(self, msg: dict[str, Any]) -> None:
        rid = msg["id"]
        if rid is not None and rid == self._ping:
            self._ping = None
            return
        with self._lock:
            pending = self._pending.pop(rid, None)
        if pending is None:
            if isinstance(msg.get("err"), dict):
                log.warning("%s: %s", self.target.hostname, msg["err"].get("message"))
                return
            raise ProtocolError(f"{self.target.hostname} answered request {rid!r}, which "
                                "was never sent; connection reset")
        if isinstance(msg.get("err"), dict):
            pending.error = error_from_wire(msg["err"])
            pending.partial = msg["err"].get("partial")
        elif "ok" in msg:
            pending.result = msg["ok"]
        else:
            pending.error = ProtocolError(f"{self.target.hostname} sent a reply with neither "
                                          "ok nor err")
        pending.event.set()

    def _relay_stderr(self, data: bytes) -> None:
        for raw in data.decode("utf-8", "replace").splitlines():
            text = raw.strip()
            if not text:
                continue
            self._stderr_tail.append(text[:200])
            level = logging.WARNING if text.lower().startswith(("warning", "error")) \
                else logging.DEBUG
            log.log(level, "%s: %s", self.target.hostname, text)

    @contextlib.contextmanager
    def _quietly(self, doing: str) -> Iterator[None]:
        """paramiko's errors while ending the session: translated, then dropped (it is over)."""
        with contextlib.suppress(RemoteError), map_paramiko_errors(self.target.hostname, doing):
            yield

    def _fail(self, error: RemoteError) -> None:
        with self._lock:
            if self.error is not None:
                return
            self.error = error
            pending, self._pending = self._pending, {}
            sinks = list(self._subs.values())
        if self._established and not self._closing:
            log.warning("%s", error)  # before anyone can see the session dead
        self._dead.set()
        for p in pending.values():
            p.error = error
            p.event.set()
        for sink in sinks:
            sink.put(Lost(error))
        self._out.put(None)
        # Closing the transport unblocks a writer stuck on a full window or socket.
        with self._quietly("closing the connection"):
            self.client.close()

    def close(self) -> None:
        """End the session: the server sees EOF on its stdin and exits."""
        self._closing = True
        channel = getattr(self, "channel", None)
        writer = getattr(self, "_writer", None)
        if (channel is not None and self.alive and writer is not None
                and writer is not threading.current_thread()):
            # What is queued goes out before the server sees EOF: a notification (a
            # follower's last commit) has no reply that would have waited for it.
            self._out.put(None)
            writer.join(2)
        if channel is not None and self.alive:
            with self._quietly("closing the session"):  # already gone: nothing left to tell
                channel.shutdown_write()
        self._fail(ConnectionLost(f"the connection to {self.target.hostname} was closed"))
        for name in ("_reader", "_writer"):
            thread = getattr(self, name, None)
            if thread is not None and thread is not threading.current_thread():
                thread.join(2)
        reader = getattr(self, "_reader", None)
        if channel is not None and (reader is None or not reader.is_alive()):
            with self._quietly("closing the session"):
                channel.close()
