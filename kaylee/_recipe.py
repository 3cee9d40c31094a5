"""What a recipe is, what it gets while it runs, and the configured command recipes.

A recipe has a name, declared parameters, a timeout, a retry limit and two
safety flags: ``idempotent`` (safe to run again after an interruption) and
``confirm`` (the owner must approve each run through Kami). :meth:`Recipe.run`
gets a :class:`TaskContext` and returns a :class:`Result`, or raises
:class:`RecipeFailed` (``retryable`` or not) or :class:`Interrupted`.
"""

from __future__ import annotations

import shlex
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from bridge.store import Perms, atomic_write

from ._errors import Interrupted, RecipeFailed
from ._params import ParamSpec, Template, render_argv, render_value
from ._run import CommandResult, base_environment, run_command

if TYPE_CHECKING:
    from bridge import Backend
    from bridge.runtime import AgentLogger, ModelRouter, PeerMonitor

    from ._config import RecipeConfig

__all__ = ["CommandRecipe", "Recipe", "Result", "TaskContext"]


@dataclass(frozen=True)
class Result:
    """A successful run: the outcome line, and what goes with it."""

    text: str
    output: str | None = None
    output_file: Path | None = None
    owner_text: str | None = None
    """Also sent to the owner (a digest, a review's summary)."""
    data: dict[str, Any] = field(default_factory=dict)
    """Extra metadata on the outcome message (a commit, a route)."""
    after_post: Callable[[], None] | None = None
    """Called once the outcome is on the bridge: state that must not move ahead of the
    outcome (the last reviewed commit). An outcome appended only after a restart (from
    the outbox) does not call it: the state stays behind and the work is done again."""


class Recipe(ABC):
    """A named piece of work Kaylee may run."""

    name: str = ""
    description: str = ""
    params: tuple[ParamSpec, ...] = ()
    idempotent: bool = False
    confirm: bool = False
    timeout: float = 600.0
    retries: int = 0

    def configure(self, section: Any) -> None:
        """Take ``confirm``, ``retries`` and ``timeout`` from a built-in's config section."""
        self.confirm = bool(section.confirm)
        self.retries = int(section.retries)
        self.timeout = float(section.timeout)

    def describe(self, values: Mapping[str, Any]) -> str:
        """``deploy target=site``: how a run is named in messages and logs."""
        shown = " ".join(f"{k}={render_value(v)}" for k, v in values.items())
        return f"{self.name} {shown}".rstrip()

    @abstractmethod
    def run(self, task: TaskContext) -> Result:
        """Do the work (in a worker thread). Raise RecipeFailed or Interrupted."""


@dataclass
class TaskContext:
    """What a running recipe may use. Built by Kaylee for each run."""

    task_id: str
    recipe: Recipe
    params: dict[str, Any]
    dry_run: bool
    attempt: int
    log: AgentLogger
    state_dir: Path
    stop: threading.Event
    is_paused: Callable[[], bool]
    progress_sink: Callable[[str], None]
    bridge_getter: Callable[[], Backend]
    models: Callable[[], ModelRouter]
    monitor: Callable[[], PeerMonitor | None]
    output_limit: int = 16384
    output_file_limit: int = 64 << 20
    stop_grace: float = 15.0
    started: float = field(default_factory=time.monotonic)
    _commands: int = 0

    @property
    def deadline(self) -> float:
        return self.started + self.recipe.timeout

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def progress(self, text: str) -> None:
        """Tell the requester how it goes (one short line)."""
        self.log.info("task.progress", task=self.task_id, text=text)
        self.progress_sink(text)

    def checkpoint(self, step: str) -> None:
        """Between steps: stop if Kaylee is stopping, wait while the bridge is paused,
        fail if the recipe's time is up."""
        waited = False
        while True:
            if self.stop.is_set():
                raise Interrupted(step)
            if self.remaining() <= 0:
                raise RecipeFailed(f"out of time before {step} (timeout "
                                   f"{self.recipe.timeout:g}s)")
            if not self.is_paused():
                break
            if not waited:
                self.log.info("task.paused", task=self.task_id, before=step)
                self.progress(f"paused before {step}; waiting for the resume")
                waited = True
            self.stop.wait(0.5)
        if waited:
            self.log.info("task.resumed", task=self.task_id, before=step)
        self.log.info("task.step", task=self.task_id, step=step)

    def bridge(self) -> Backend:
        return self.bridge_getter()

    def read_state(self, name: str) -> dict[str, str]:
        """A small JSON map the recipe keeps in Kaylee's state directory (``name``.json)."""
        try:
            data = orjson.loads((self.state_dir / f"{name}.json").read_bytes())
        except (FileNotFoundError, orjson.JSONDecodeError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def write_state(self, name: str, key: str, value: str) -> None:
        """Set one entry of that map (atomically, 0600)."""
        data = self.read_state(name)
        data[key] = value
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(self.state_dir / f"{name}.json", orjson.dumps(data), Perms())

    def run(self, argv: Sequence[str], *, cwd: Path | None = None,
            env: Mapping[str, str] | None = None, timeout: float | None = None,
            limit: int | None = None, keep_head: bool = False) -> CommandResult:
        """Run one command within the recipe's remaining time; output beyond the cap goes
        to ``<state>/output/<task>.<n>.log``."""
        self._commands += 1
        left = max(0.1, self.remaining())
        side = self.state_dir / "output" / f"{self.task_id}.{self._commands}.log"
        self.log.info("task.command", task=self.task_id, argv=list(argv),
                      cwd=str(cwd) if cwd else None)
        result = run_command(argv, timeout=min(left, timeout) if timeout else left, cwd=cwd,
                             env=base_environment(env), limit=limit or self.output_limit,
                             side_file=side, file_limit=self.output_file_limit, stop=self.stop,
                             stop_grace=self.stop_grace, keep_head=keep_head)
        self.log.info("task.command_done", task=self.task_id, exit_code=result.exit_code,
                      timed_out=result.timed_out, seconds=round(result.seconds, 3),
                      output_bytes=result.output_bytes,
                      output_file=str(result.output_file) if result.output_file else None)
        if result.interrupted:
            raise Interrupted(f"{Path(result.argv[0]).name} (stopped)")
        return result


class CommandRecipe(Recipe):
    """A recipe from ``[[recipe]]``: one or more argv lists with ``{param}`` placeholders."""

    def __init__(self, config: RecipeConfig, specs: Sequence[ParamSpec]) -> None:
        key = f"recipe {config.name}"
        self.config = config
        self.name = config.name
        self.description = config.description
        self.params = tuple(specs)
        self.idempotent = config.idempotent
        self.confirm = config.confirm
        self.timeout = config.timeout
        self.retries = config.retries
        self.commands = config.commands(key)
        self.env = config.environment(key)

    def _environment(self, task: TaskContext) -> dict[str, str]:
        env = {}
        for key, value in self.env.items():
            rendered = Template(value).render(task.params)
            if rendered is not None:
                env[key] = rendered
        env["KAYLEE_TASK_ID"] = task.task_id
        env["KAYLEE_ATTEMPT"] = str(task.attempt)
        return env

    def run(self, task: TaskContext) -> Result:
        commands = [render_argv(c, task.params) for c in self.commands]
        env = self._environment(task)
        cwd = self.config.cwd
        if task.dry_run:
            if not self.config.dry_run_argv:
                lines = "\n".join(f"  {shlex.join(c)}" for c in commands)
                where = f" in {cwd}" if cwd else ""
                return Result(f"dry run: nothing was run; it would run{where}:\n{lines}")
            commands = [render_argv(self.config.dry_run_argv, task.params)]
        outputs: list[str] = []
        last: CommandResult | None = None
        for i, argv in enumerate(commands, 1):
            step = f"step {i} of {len(commands)}" if len(commands) > 1 else "the command"
            task.checkpoint(step)
            if len(commands) > 1:
                task.progress(f"{step}: {Path(argv[0]).name}")
            last = task.run(argv, cwd=cwd, env=env)
            if last.output:
                outputs.append(last.output if len(commands) == 1 else
                               f"--- {step} ---\n{last.output}")
            if not last.ok:
                retryable = ((last.exit_code in self.config.retry_exit_codes)
                             or (last.timed_out and self.config.retry_on_timeout))
                raise RecipeFailed(f"{step}: {last.failure(self.timeout)}", retryable=retryable,
                                   output=_joined(outputs, task.output_limit),
                                   output_file=last.output_file)
        seconds = time.monotonic() - task.started
        what = "dry run" if task.dry_run else f"{len(commands)} command(s)"
        return Result(f"{what} finished in {seconds:.1f}s",
                      output=_joined(outputs, task.output_limit),
                      output_file=last.output_file if last else None)


def _joined(outputs: list[str], limit: int) -> str | None:
    text = "\n".join(outputs).strip("\n")
    if not text:
        return None
    if len(text) > limit:
        text = "[...]\n" + text[-limit:]
    return text
