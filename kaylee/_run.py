"""Running one command of a recipe: its own process group, a timeout, capped output.

The command runs with ``start_new_session`` so it and everything it starts form
a process group of their own. At the timeout (or when Kaylee is stopping and
the grace period is over) the group gets SIGTERM, then SIGKILL after
``kill_grace``: a hung recipe cannot outlive its limit, and neither can its
children. Background processes still holding the output pipe after the
command itself exited are killed too — a recipe must not leave daemons behind
(start services with systemd).

Output (stdout and stderr, merged in order) is read as it comes. Up to
``limit`` bytes are kept for the outcome message; beyond that the whole output
streams into a side file (mode 0600, at most ``file_limit`` bytes) and the
message carries its last ``limit`` bytes and the file's path.

One thread waits on the output pipe and the process (a pidfd) with select():
nothing is polled while a command runs.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bridge.runtime import redact
from bridge.store import Perms, open_private

from ._errors import RecipeFailed

__all__ = ["CommandResult", "base_environment", "run_command"]

PASSED_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "HOME", "USER", "LOGNAME")
"""The only variables of Kaylee's own environment a recipe sees (its secrets stay hers)."""

CHUNK = 65536


def base_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A recipe's environment: a few of Kaylee's variables, then the recipe's own."""
    env = {k: os.environ[k] for k in PASSED_ENVIRONMENT if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class CommandResult:
    """How a command ended and what it printed."""

    argv: list[str]
    exit_code: int | None
    timed_out: bool
    interrupted: bool
    output: str
    output_bytes: int
    output_file: Path | None
    seconds: float
    leftovers_killed: bool = False
    truncated: bool = False
    """More was printed than ``output`` holds."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.interrupted

    def failure(self, timeout: float) -> str:
        """One line saying how it failed."""
        name = Path(self.argv[0]).name if self.argv else "command"
        if self.timed_out:
            return f"{name} did not finish within {timeout:g}s and was killed with its processes"
        if self.interrupted:
            return f"{name} was stopped because Kaylee is stopping"
        if self.exit_code is not None and self.exit_code < 0:
            return f"{name} was killed by signal {-self.exit_code}"
        return f"{name} exited with status {self.exit_code}"


class _Output:
    """Keeps the first ``limit`` bytes; past them, streams everything to a side file and
    keeps only the last ``limit`` bytes in memory."""

    def __init__(self, limit: int, side_file: Path | None, file_limit: int,
                 keep_head: bool = False) -> None:
        self.limit = limit
        self.keep_head = keep_head
        self.head = b""
        self.side_file = side_file
        self.file_limit = file_limit
        self.total = 0
        self.buffer = bytearray()
        self.tail: deque[bytes] = deque()
        self.tail_bytes = 0
        self.fd: int | None = None
        self.written = 0
        self.cut = False

    def write(self, data: bytes) -> None:
        self.total += len(data)
        if self.fd is None and len(self.buffer) + len(data) <= self.limit:
            self.buffer += data
            return
        if len(self.head) < self.limit:
            self.head = (bytes(self.buffer) + data)[: self.limit]
        if self.fd is None and self.side_file is not None:
            self.side_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.fd = open_private(self.side_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, Perms())
            self._to_file(bytes(self.buffer))
        if self.buffer:
            self.tail.append(bytes(self.buffer))
            self.tail_bytes += len(self.buffer)
            self.buffer = bytearray()
        self._to_file(data)
        self.tail.append(data)
        self.tail_bytes += len(data)
        while self.tail and self.tail_bytes - len(self.tail[0]) >= self.limit:
            self.tail_bytes -= len(self.tail.popleft())

    def _to_file(self, data: bytes) -> None:
        if self.fd is None or self.cut:
            return
        room = self.file_limit - self.written
        if len(data) > room:
            data = data[:room]
            self.cut = True
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        self.written += len(data)
        if self.cut:
            os.write(self.fd, f"\n[output cut here: the side file is limited to "
                              f"{self.file_limit} bytes]\n".encode())

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def text(self) -> str:
        if not self.tail:
            return redact(self.buffer.decode("utf-8", "replace"))
        where = f"; the whole output is in {self.side_file}" if self.written else ""
        if self.keep_head:
            note = f"\n[... {self.total - len(self.head)} more bytes not shown{where}]"
            return redact(self.head.decode("utf-8", "replace")) + note
        data = b"".join(self.tail)[-self.limit:]
        note = f"[... {self.total - len(data)} earlier bytes not shown{where}]\n"
        return note + redact(data.decode("utf-8", "replace"))



def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def run_command(
    argv: Sequence[str],
    *,
    timeout: float,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    limit: int = 16384,
    side_file: Path | None = None,
    file_limit: int = 64 << 20,
    stop: threading.Event | None = None,
    stop_grace: float = 15.0,
    kill_grace: float = 5.0,
    keep_head: bool = False,
) -> CommandResult:
    """Run ``argv`` (never through a shell) and return how it ended.

    Raises:
        RecipeFailed: the command could not be started (missing program, bad cwd).
    """
    args = [str(a) for a in argv]
    started = time.monotonic()
    try:
        proc = subprocess.Popen(args, cwd=cwd, env=dict(env) if env is not None else None,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                close_fds=True)
    except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
        missing = exc.filename if exc.filename is not None else args[0]
        raise RecipeFailed(f"cannot run {args[0]}: {exc.strerror} ({missing})") from None
    if proc.stdout is None:  # pragma: no cover - stdout=PIPE always makes one
        raise RecipeFailed(f"cannot read the output of {args[0]}")
    out = _Output(limit, side_file, file_limit, keep_head)
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    pidfd = os.pidfd_open(proc.pid)
    deadline = started + timeout
    exited = eof = timed_out = interrupted = leftovers = False
    term_at: float | None = None
    killed = False
    stop_at: float | None = None
    drain_until: float | None = None
    try:
        while not (exited and eof):
            watch = ([] if eof else [fd]) + ([] if exited else [pidfd])
            ready, _, _ = select.select(watch, [], [], 0.25)
            if fd in ready:
                try:
                    data = os.read(fd, CHUNK)
                except BlockingIOError:
                    data = None
                if data == b"":
                    eof = True
                elif data:
                    out.write(data)
            if pidfd in ready:
                exited = True
                proc.wait()
            now = time.monotonic()
            if not exited:
                if stop is not None and stop.is_set() and stop_at is None:
                    stop_at = now + stop_grace
                if term_at is None and now >= deadline:
                    timed_out, term_at = True, now
                    _signal_group(proc.pid, signal.SIGTERM)
                elif term_at is None and stop_at is not None and now >= stop_at:
                    interrupted, term_at = True, now
                    _signal_group(proc.pid, signal.SIGTERM)
                if term_at is not None and not killed and now >= term_at + kill_grace:
                    killed = True
                    _signal_group(proc.pid, signal.SIGKILL)
            elif not eof:
                # The command is gone but something it started still holds the pipe.
                if drain_until is None:
                    drain_until = now + 1.0
                elif now >= drain_until and not leftovers:
                    leftovers = True
                    _signal_group(proc.pid, signal.SIGKILL)
                    drain_until = now + 1.0
                elif now >= drain_until:
                    break  # a process outside the group holds it: stop reading
        if term_at is not None:
            # Whatever the leader did, nothing of the group may survive a kill.
            _signal_group(proc.pid, signal.SIGKILL)
    finally:
        os.close(pidfd)
        out.close()
        proc.stdout.close()
        if proc.returncode is None:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
    return CommandResult(args, proc.returncode, timed_out, interrupted, out.text(), out.total,
                         side_file if out.written else None, time.monotonic() - started,
                         leftovers, out.total > limit)
