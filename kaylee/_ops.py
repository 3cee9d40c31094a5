"""The bridge's own upkeep as recipes: ``health-sweep``, ``rotate`` and ``report``."""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING

from bridge import (
    BridgeError,
    BridgeUnavailable,
    ConnectionLost,
    HostUnreachable,
    UnsupportedFilesystem,
    parse_duration,
)
from bridge.format import human_duration, parse_ts

from ._errors import RecipeFailed, RequestRefused
from ._params import ParamSpec
from ._recipe import Recipe, Result, TaskContext

if TYPE_CHECKING:
    from bridge import Fold

    from ._config import HealthSweepConfig, ReportConfig, RotateConfig

__all__ = ["HealthSweepRecipe", "ReportRecipe", "RotateRecipe", "digest", "retryable"]

FAILED = ("failed", "dead")
OPEN = ("pending", "claimed")


def retryable(exc: BridgeError) -> bool:
    """Whether a later attempt may succeed: the bridge was busy or out of reach (a lock
    held, a directory not mounted yet, a connection that dropped), not refused for good
    (a filesystem that cannot hold a bridge, a backend that cannot do it, a bad key)."""
    if isinstance(exc, UnsupportedFilesystem):
        return False
    return isinstance(exc, BridgeUnavailable | ConnectionLost | HostUnreachable)


class HealthSweepRecipe(Recipe):
    """One round of peer checks. Alerts fire on the edges only (down after ``failures``
    bad checks in a row, recovered once), through Kaylee's alert sinks."""

    name = "health-sweep"
    description = "check the peers' /health; alert the owner when one goes down or comes back"
    idempotent = True

    def __init__(self, config: HealthSweepConfig) -> None:
        self.configure(config)

    def run(self, task: TaskContext) -> Result:
        monitor = task.monitor()
        if monitor is None:
            raise RecipeFailed("no peers are configured ([[peers.peer]])")
        task.checkpoint("checking the peers")
        if task.dry_run:
            import httpx

            from bridge.runtime import check_peer

            with httpx.Client() as client:
                results = [check_peer(client, p.name, p.url,
                                      token=p.token.reveal() if p.token else None,
                                      timeout=monitor.timeout, slow=monitor.slow)
                           for p in monitor.peers]
        else:
            results = monitor.check_all()
        lines = [f"{r.peer}: {r.state} ({r.detail})" for r in results]
        bad = [r.peer for r in results if r.state in ("down", "degraded")]
        head = f"{len(results)} peer(s) checked" + (f"; not well: {', '.join(bad)}" if bad
                                                     else "; all well")
        if task.dry_run:
            head = f"dry run: {head}; no alerts were sent"
        return Result(head, output="\n".join(lines),
                      data={"peers": {r.peer: r.state for r in results}})


class RotateRecipe(Recipe):
    name = "rotate"
    description = "move finished messages older than a limit into the monthly archives"
    idempotent = True

    def __init__(self, config: RotateConfig) -> None:
        self.config = config
        self.params = (ParamSpec("older_than", pattern=r"[0-9]+(\.[0-9]+)?[smhdw]?",
                                 description="age of finished messages to move, e.g. 30d"),)
        self.configure(config)

    def run(self, task: TaskContext) -> Result:
        older = self.config.older_than
        if "older_than" in task.params:
            try:
                older = parse_duration(str(task.params["older_than"]))
            except ValueError as exc:
                raise RequestRefused(f"parameter 'older_than': {exc}") from None
        task.checkpoint("rotating")
        bridge = task.bridge()
        if not bridge.capabilities.rotate:
            # Its rotate() would raise RemoteUnsupported: say so before asking.
            raise RecipeFailed(f"rotation failed: the bridge at {bridge.directory} is reached "
                               "through a backend that cannot rotate it (the SFTP fallback, "
                               "for one); run bridge rotate on its host, where the toolkit "
                               "is installed")
        try:
            result = bridge.rotate(older_than=older, dry_run=task.dry_run,
                                   compress=self.config.compress)
        except BridgeError as exc:
            raise RecipeFailed(f"rotation failed: {exc}", retryable=retryable(exc)) from None
        age = human_duration(older)
        if result.moved_records == 0:
            return Result(f"{'dry run: ' if task.dry_run else ''}nothing to rotate: no finished "
                          f"messages older than {age}; {result.kept_records} records kept")
        verb = "dry run: would move" if task.dry_run else "moved"
        archives = ", ".join(sorted(result.archives)) or "the archives"
        text = (f"{verb} {result.moved_records} records ({result.moved_messages} messages, "
                f"{result.moved_bytes} bytes) older than {age} to {archives}; kept "
                f"{result.kept_records} records")
        if result.behind_cursors:
            text += f"; held back by cursors: {', '.join(sorted(result.behind_cursors))}"
        return Result(text, data={"moved_records": result.moved_records})


class ReportRecipe(Recipe):
    name = "report"
    description = "a digest of the bridge's activity: messages by agent and status, failures, " \
                  "work waiting longer than a day"
    idempotent = True

    def __init__(self, config: ReportConfig) -> None:
        self.config = config
        self.configure(config)

    def run(self, task: TaskContext) -> Result:
        task.checkpoint("reading the bridge")
        fold = task.bridge().fold()
        text = digest(fold, time.time(), window=self.config.window, stale=self.config.stale)
        first, _, rest = text.partition("\n")
        if task.dry_run:
            return Result(f"dry run: {first}; not sent to the owner", output=rest or None)
        return Result(first, output=rest or None, owner_text=f"📋 {text}")


def digest(fold: Fold, now: float, *, window: float = 86400.0, stale: float = 86400.0,
           max_items: int = 10) -> str:
    """The report's text: activity in the last ``window``, failures, old open work."""
    by_agent: dict[str, Counter[str]] = {}
    failures: list[tuple[str, str, str]] = []
    waiting: list[tuple[float, str, str, str]] = []
    total = 0
    for state in fold:
        try:
            written = parse_ts(state.ts)
        except ValueError:
            continue
        status = state.effective_status(now)
        if now - written <= window:
            total += 1
            by_agent.setdefault(state.sender, Counter())[status] += 1
            if status in FAILED:
                failures.append((state.id, status, state.reason or "no reason given"))
        if status in OPEN and now - written > stale:
            waiting.append((written, state.id, status, state.to or "anyone"))
    span = human_duration(window)
    lines = [f"Bridge report for the last {span}: {total} message(s), "
             f"{len(failures)} failure(s), {len(waiting)} waiting longer than "
             f"{human_duration(stale)}"]
    for agent in sorted(by_agent):
        counts = ", ".join(f"{n} {s}" for s, n in sorted(by_agent[agent].items()))
        lines.append(f"• {agent}: {counts}")
    if failures:
        lines.append("Failures:")
        lines += [f"• {mid} {status}: {reason[:160]}" for mid, status, reason in
                  failures[-max_items:]]
        if len(failures) > max_items:
            lines.append(f"  (and {len(failures) - max_items} more)")
    if waiting:
        waiting.sort()
        lines.append("Waiting:")
        lines += [f"• {mid} {status} for {to}, {human_duration(now - written)} old"
                  for written, mid, status, to in waiting[:max_items]]
        if len(waiting) > max_items:
            lines.append(f"  (and {len(waiting) - max_items} more)")
    return "\n".join(lines)
