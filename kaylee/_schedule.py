"""The scheduler: cron jobs that become requests on the bridge.

A job is ``[[job]]`` in the config: a name, a cron expression, a recipe and its
parameters, and what to do about runs missed while Kaylee was down, paused or
the clock jumped (``catch_up = "skip"``, the default, or ``"once"``). When a
slot comes, the job is *enqueued*: Kaylee sends herself a request naming the
recipe, with the idempotency key ``job:<name>:<slot>``, and runs it like any
other request — leases, retries, outcome and all. The request and its outcome
are the run's record on the bridge (``bridge tail --from kaylee``).

Rules:

* a slot is on time when it is at most ``grace`` old; an older slot, and every
  slot between the last one handled and now, was missed. ``skip`` logs the
  missed slots; ``once`` runs the latest of them, once. Either way at most one
  run per job per tick: a clock jumping forward a day cannot start a burst;
* a job never overlaps itself: while its previous run is open (pending or
  claimed), a new slot is skipped with a log line;
* the last slot handled is kept in ``schedule.json``; a slot is never handled
  twice. A clock that moves back is noticed (logged once) and the job goes on
  from the new now; a slot that comes round again has the same idempotency
  key, so its run is not sent twice;
* a job that cannot work (a bad cron expression, an unknown recipe, bad
  parameters, an unknown setting) is disabled and reported; the others run.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from bridge import InvalidInput
from bridge.format import format_ts, parse_ts
from bridge.store import Perms, atomic_write

from ._cron import Cron, parse_cron
from ._params import validate_params

if TYPE_CHECKING:
    from bridge.runtime import AgentLogger

    from ._recipe import Recipe

__all__ = ["Job", "Scheduler"]

JOB_KEYS = frozenset({"name", "cron", "recipe", "params", "catch_up", "dry_run", "enabled"})
JOB_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")


@dataclass(frozen=True)
class Job:
    """One valid scheduled job."""

    name: str
    cron: Cron
    recipe: str
    params: dict[str, Any]
    catch_up: str = "skip"
    dry_run: bool = False


@dataclass
class JobState:
    last_slot: float | None = None
    last_run: str | None = None


@dataclass(frozen=True)
class Due:
    """A slot to run now."""

    job: Job
    slot: float
    late: bool
    missed: int

    @property
    def key(self) -> str:
        return f"job:{self.job.name}:{format_ts(self.slot)}"


@dataclass
class Scheduler:
    """Decides which jobs are due; keeps what it decided in ``state_file``."""

    jobs: list[Job]
    disabled: dict[str, str]
    tz: tzinfo
    state_file: Path | None
    log: AgentLogger
    grace: float = 120.0
    states: dict[str, JobState] = field(default_factory=dict)
    next_due: dict[str, float] = field(default_factory=dict)
    _clock_warned: bool = False

    @classmethod
    def build(cls, raw: tuple[Any, ...], recipes: Mapping[str, Recipe], *, tz: tzinfo,
              state_file: Path | None, log: AgentLogger, grace: float = 120.0) -> Scheduler:
        """Parse the jobs; a broken one is disabled with the reason, not fatal."""
        jobs: list[Job] = []
        disabled: dict[str, str] = {}
        for i, table in enumerate(raw):
            label = f"job[{i}]"
            if isinstance(table, dict) and isinstance(table.get("name"), str):
                label = table["name"]
            try:
                job = _parse_job(table, recipes)
            except InvalidInput as exc:
                disabled[label] = str(exc)
                continue
            if job is None:
                continue
            if job.name in {j.name for j in jobs} or job.name in disabled:
                disabled[f"{job.name} (second)"] = f"a job named {job.name!r} is defined twice"
                continue
            jobs.append(job)
        scheduler = cls(jobs, disabled, tz, state_file, log, grace)
        scheduler._load()
        return scheduler

    def _load(self) -> None:
        if self.state_file is None:
            return
        try:
            data = orjson.loads(self.state_file.read_bytes())
            entries = data["jobs"]
            for name, entry in entries.items():
                slot = entry.get("last_slot")
                run = entry.get("last_run")
                self.states[name] = JobState(parse_ts(slot) if isinstance(slot, str) else None,
                                             run if isinstance(run, str) else None)
        except FileNotFoundError:
            return
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as exc:
            # A damaged state file must not stop the schedule: start from now.
            self.states = {}
            self.log.warning("schedule.state_unreadable", file=str(self.state_file),
                             error=str(exc), effect="every job starts from now")

    def _save(self) -> None:
        if self.state_file is None:
            return
        data = {"jobs": {name: {"last_slot": format_ts(s.last_slot) if s.last_slot else None,
                                "last_run": s.last_run} for name, s in self.states.items()}}
        self.state_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(self.state_file, orjson.dumps(data, option=orjson.OPT_INDENT_2), Perms())

    def due(self, now: float, *, is_open: Callable[[str], bool]) -> list[Due]:
        """The jobs to enqueue now; records the slots as handled (call :meth:`ran` with the
        request id of each enqueued run)."""
        out: list[Due] = []
        changed = False
        for job in self.jobs:
            state = self.states.setdefault(job.name, JobState())
            if state.last_slot is None:
                state.last_slot = now  # a new job starts from now, it has missed nothing
                changed = True
                self.log.info("job.scheduled", job=job.name, cron=job.cron.expr,
                              next=format_ts(job.cron.next_after(now, self.tz)))
            elif now < state.last_slot - 1.0:
                if not self._clock_warned:
                    self.log.warning("clock.moved_back", job=job.name,
                                     last_slot=format_ts(state.last_slot), now=format_ts(now))
                    self._clock_warned = True
                state.last_slot = now
                changed = True
            first = job.cron.next_after(state.last_slot, self.tz)
            if first > now:
                self.next_due[job.name] = first
                continue
            latest = job.cron.last_at_or_before(now, self.tz) or first
            earlier = job.cron.count_between(state.last_slot, latest - 1, self.tz)
            late = now - latest > self.grace
            state.last_slot = latest
            changed = True
            self.next_due[job.name] = job.cron.next_after(latest, self.tz)
            missed = earlier + (1 if late else 0)
            if late and job.catch_up == "skip":
                self.log.warning("job.missed", job=job.name, missed=missed,
                                 latest=format_ts(latest), policy="skip")
                continue
            if earlier:
                self.log.warning("job.missed", job=job.name, missed=earlier,
                                 policy="skip" if not late else "once")
            if state.last_run is not None and is_open(state.last_run):
                self.log.warning("job.overlap", job=job.name, slot=format_ts(latest),
                                 running=state.last_run, effect="this slot is skipped")
                continue
            if late:
                self.log.info("job.catch_up", job=job.name, slot=format_ts(latest),
                              missed=missed)
            out.append(Due(job, latest, late, missed))
        if changed:
            self._save()
        return out

    def ran(self, due: Due, request_id: str) -> None:
        """Remember the request of a run (the next slot waits while it is open)."""
        self.states.setdefault(due.job.name, JobState()).last_run = request_id
        self._save()

    def next_time(self) -> float | None:
        """When the next job is due (None without jobs)."""
        return min(self.next_due.values(), default=None)

    def summary(self) -> dict[str, Any]:
        """For /health: each job's next slot, and the disabled ones with the reason."""
        jobs: dict[str, Any] = {
            job.name: {"next": format_ts(self.next_due[job.name])
                       if job.name in self.next_due else None}
            for job in self.jobs}
        for name, reason in self.disabled.items():
            jobs[name] = {"disabled": reason}
        return jobs


def _parse_job(table: Any, recipes: Mapping[str, Recipe]) -> Job | None:
    if not isinstance(table, dict):
        raise InvalidInput(f"expected a table, got {table!r}")
    unknown = sorted(set(table) - JOB_KEYS)
    if unknown:
        raise InvalidInput(f"unknown setting(s) {', '.join(unknown)}")
    name = table.get("name")
    if not isinstance(name, str) or not JOB_NAME.fullmatch(name):
        raise InvalidInput(f"name {name!r} is missing or not a job name (lower-case letters, "
                           "digits, - and _)")
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise InvalidInput(f"enabled must be true or false, not {enabled!r}")
    if not enabled:
        return None
    cron = parse_cron(table.get("cron"))  # type: ignore[arg-type]
    recipe = table.get("recipe")
    if not isinstance(recipe, str) or recipe not in recipes:
        raise InvalidInput(f"recipe {recipe!r} is not one Kaylee runs "
                           f"({', '.join(sorted(recipes))})")
    params = table.get("params", {})
    if not isinstance(params, dict):
        raise InvalidInput("params must be a table of name = value")
    validate_params(recipes[recipe].params, params)
    catch_up = table.get("catch_up", "skip")
    if catch_up not in ("skip", "once"):
        raise InvalidInput(f"catch_up must be \"skip\" or \"once\", not {catch_up!r}")
    dry_run = table.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise InvalidInput(f"dry_run must be true or false, not {dry_run!r}")
    return Job(name, cron, recipe, dict(params), catch_up, dry_run)
