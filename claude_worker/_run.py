"""One run of the CLI for one request, in a thread of its own.

The thread starts the CLI (so that ``PR_SET_PDEATHSIG``, which follows the thread that
forked, fires only if the worker dies), reads its stdout and stderr, and waits for it on
a pidfd — with ``select()`` and a short tick to notice a kill request or the deadline.
Every second it notes the processes below the CLI (``<state>/run.json``). At the
deadline, or when :meth:`Run.kill` is called (``bridge cancel``, a stopping worker), the
CLI's group and every process of its tree get SIGTERM and, ``kill_grace`` later,
SIGKILL; once the CLI has exited, whatever is left of the tree is killed too (the worker
is a subreaper, so orphans of the tree are still found below it).

A ``--resume`` of a session the CLI no longer has (its HOME was wiped) ends at once with
"No conversation found": the session is forgotten and the run starts afresh, once.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bridge.runtime import redact

from ._process import (
    alive,
    descendants,
    group_members,
    kill_processes,
    pdeathsig,
    reap,
    record_run,
    signal_group,
)
from ._stream import Transcript

__all__ = ["Run", "RunSpec"]

TICK = 0.25
"""Longest wait in the select loop: how soon a kill request or the deadline is acted on."""

SCAN_EVERY = 1.0
"""Seconds between looks at the processes below the CLI (recorded for a restart)."""

STDERR_KEEP = 4096
CHUNK = 65536


@dataclass(frozen=True)
class RunSpec:
    """Everything one run needs."""

    request: str
    argv: Callable[[str | None], list[str]]
    """The argv for a given ``--resume`` session (None: a new session)."""
    resume: str | None
    env: dict[str, str]
    cwd: Path
    prompt_file: Path
    run_file: Path
    timeout: float
    kill_grace: float = 3.0


@dataclass
class Run:
    """A CLI run and what came of it (read the fields once :attr:`finished` is set)."""

    spec: RunSpec
    on_session: Callable[[str], None]
    on_session_lost: Callable[[], None]
    on_end: Callable[[], None]
    transcript: Transcript = field(default_factory=Transcript)
    pid: int | None = None
    exit_code: int | None = None
    timed_out: bool = False
    error: str | None = None
    """The CLI could not be started (why)."""
    resumed: str | None = None
    stderr: bytearray = field(default_factory=bytearray)
    finished: threading.Event = field(default_factory=threading.Event)
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0
    kill_reason: str | None = None
    tree: dict[int, int] = field(default_factory=dict)
    """Every process seen below the CLI: pid → start time."""
    _kill: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._main, name=f"run-{self.spec.request[-8:]}",
                                       daemon=True)
        self.thread.start()

    def kill(self, reason: str) -> None:
        """Stop the run (any thread): SIGTERM to its group, SIGKILL after the grace."""
        if self.kill_reason is None:
            self.kill_reason = reason
        self._kill.set()

    @property
    def stderr_tail(self) -> str:
        text = bytes(self.stderr).decode("utf-8", "replace").strip()
        return redact(text.splitlines()[-1] if text else "")[:300]

    def _main(self) -> None:
        try:
            deadline = self.started + self.spec.timeout
            resume = self.spec.resume
            for _ in range(2):
                self.resumed = resume
                self.transcript = Transcript()
                self._launch(self.spec.argv(resume), deadline)
                lost = (resume is not None and self.transcript.init is None
                        and any("No conversation found" in e for e in self.transcript.errors)
                        and not self.timed_out and self.kill_reason is None)
                if not lost:
                    break
                self.on_session_lost()
                resume = None
        except Exception as exc:  # noqa: BLE001 - reported as the run's failure
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.seconds = time.monotonic() - self.started
            self.finished.set()
            self.on_end()

    def _launch(self, argv: list[str], deadline: float) -> None:
        try:
            with self.spec.prompt_file.open("rb") as stdin:
                proc = subprocess.Popen(argv, cwd=self.spec.cwd, env=self.spec.env, stdin=stdin,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        start_new_session=True, close_fds=True,
                                        preexec_fn=pdeathsig)  # noqa: PLW1509 - see _process
        except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
            where = exc.filename if exc.filename is not None else argv[0]
            self.error = f"cannot run {argv[0]}: {exc.strerror} ({where})"
            return
        self.pid = proc.pid
        stdout, stderr = proc.stdout, proc.stderr
        if stdout is None or stderr is None:  # pragma: no cover - PIPE always makes them
            raise RuntimeError("no pipes to the CLI")
        try:
            record_run(self.spec.run_file, proc.pid, self.spec.request)
            self._watch(proc, stdout.fileno(), stderr.fileno(), deadline)
        finally:
            # Nothing of the run outlives it: the tools' leftovers, a stuck MCP server.
            self._scan(proc.pid)
            signal_group(proc.pid, signal.SIGKILL)
            if proc.returncode is None:
                proc.wait()
            # Orphans of the tree were reparented to the worker (a subreaper), which
            # starts no processes but the runs': whatever is below it now is the run's.
            self.tree.update(descendants(os.getpid()))
            end = time.monotonic() + 5.0
            while (alive(self.tree) or group_members(proc.pid)) and time.monotonic() < end:
                kill_processes(self.tree, signal.SIGKILL)
                reap(self.tree)
                time.sleep(0.01)
            reap(self.tree)
            self.spec.run_file.unlink(missing_ok=True)
            stdout.close()
            stderr.close()
            self.exit_code = proc.returncode

    def _scan(self, pid: int) -> None:
        """Note new processes below the CLI (and record them for a restart)."""
        found = descendants(pid)
        if not found.keys() <= self.tree.keys():
            self.tree.update(found)
            record_run(self.spec.run_file, pid, self.spec.request, self.tree)

    def _watch(self, proc: subprocess.Popen[bytes], out: int, err: int,
               deadline: float) -> None:
        os.set_blocking(out, False)
        os.set_blocking(err, False)
        pidfd = os.pidfd_open(proc.pid)
        open_fds = {out, err}
        exited = False
        term_at: float | None = None
        killed = False
        drain_until: float | None = None
        next_scan = time.monotonic() + SCAN_EVERY
        try:
            while open_fds or not exited:
                watch = [*open_fds] + ([] if exited else [pidfd])
                ready, _, _ = select.select(watch, [], [], TICK)
                for fd in ready:
                    if fd == pidfd:
                        exited = True
                        proc.wait()
                        continue
                    try:
                        data = os.read(fd, CHUNK)
                    except BlockingIOError:
                        continue
                    if not data:
                        open_fds.discard(fd)
                    elif fd == out:
                        self._stdout(data)
                    else:
                        self.stderr += data
                        del self.stderr[:-STDERR_KEEP]
                now = time.monotonic()
                if not exited:
                    if now >= next_scan:
                        self._scan(proc.pid)
                        next_scan = now + SCAN_EVERY
                    if term_at is None and (self._kill.is_set() or now >= deadline):
                        self.timed_out = not self._kill.is_set()
                        term_at = now
                        self._scan(proc.pid)
                        signal_group(proc.pid, signal.SIGTERM)
                        kill_processes(self.tree, signal.SIGTERM)
                    if term_at is not None and not killed and now >= term_at + \
                            self.spec.kill_grace:
                        killed = True
                        self._scan(proc.pid)
                        signal_group(proc.pid, signal.SIGKILL)
                        kill_processes(self.tree, signal.SIGKILL)
                elif open_fds:
                    # The CLI is gone but something it started still holds its output.
                    if drain_until is None:
                        drain_until = now + 1.0
                    elif now >= drain_until:
                        break
        finally:
            os.close(pidfd)
        for obj in self.transcript.close():
            self._seen(obj)

    def _stdout(self, data: bytes) -> None:
        for obj in self.transcript.feed(data):
            self._seen(obj)

    def _seen(self, obj: dict[str, object]) -> None:
        if obj.get("type") == "system" and obj.get("subtype") == "init" and \
                self.transcript.session_id:
            # Kept at once: a worker killed mid-run resumes this session next time.
            self.on_session(self.transcript.session_id)
