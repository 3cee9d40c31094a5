"""Kaylee: the autonomous worker that finishes what she starts.

The main loop (the runtime's) stays short so it keeps pinging the watchdog:
recipes run in worker threads, and the loop does the bookkeeping around them.

Every iteration, paused or not (:meth:`Kaylee.housekeeping`): append the
outcomes of finished tasks (or keep them in the outbox while the bridge is
away), send progress lines, renew the lease of every running task.

When not paused (:meth:`Kaylee.step`): take back her own claims whose lease ran
out (a previous Kaylee died while running them), read answers addressed to her
(confirmations), enqueue due jobs, then claim requests addressed to her while
fewer than ``concurrency`` tasks run.

A request's life (the bridge's statuses in brackets)::

    pending ──claim──▶ claimed ──▶ running ──▶ done                [done]
       ▲                  │            ├─────▶ failed / refused    [failed]
       │                  │            ├─────▶ retry ──────────────[pending, not_before]──┐
       │                  │            ├─────▶ dead (retries used up)   [dead]            │
       │                  │            └─────▶ interrupted: idempotent → handed back      │
       │                  │                    [pending]; otherwise failed "interrupted"  │
       │                  └─ confirm: ask the owner ───────────────[pending, not_before]  │
       └──────────────────────────────────────────────────────────────────────────────────┘
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from bridge import BridgeError, MessageView, NotFound, StateConflict
from bridge.format import format_ts, human_duration, ulid
from bridge.runtime import Agent, Alert, AlertSink, Ledger, ModelRouter
from bridge.runtime import notify as sd_notify

from ._config import KayleeConfig
from ._confirm import find_confirmation, thread_of
from ._errors import Interrupted, RecipeFailed, RequestRefused
from ._outcome import INHERITED, Outbox, Outcome, is_bridge_down, post
from ._owner import DirectChannel, Owner
from ._params import validate_params
from ._recipe import Recipe, TaskContext
from ._recipes import build_recipes
from ._requests import Request, parse_request
from ._schedule import Due, Scheduler

if TYPE_CHECKING:
    from bridge import Backend
    from bridge.runtime import PeerMonitor

__all__ = ["Kaylee"]

INTERRUPTIONS = 2
"""Takes allowed beyond a recipe's attempts for runs cut short by a stopping (or crashed)
Kaylee: enough for a restart or two, not a crash loop caused by the recipe itself."""


@dataclass
class Task:
    """A claimed request that is running."""

    id: str
    recipe: Recipe
    request: Request
    params: dict[str, Any]
    what: str
    requester: str
    attempt: int
    attempts: int
    dry_run: bool
    inherit: dict[str, Any]
    renewed: float
    started: float = field(default_factory=time.monotonic)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    cancelled: str | None = None


def _digest(text: str) -> str:
    """The same short digest in every process (``hash()`` of a str is salted per process,
    so a key built from it would change, and the owner be told again, on every restart)."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class Kaylee(Agent):
    """The worker agent (``kaylee run``)."""

    name = "kaylee"
    peers_in_thread = False  # the health-sweep job checks the peers, leaving a record

    def __init__(self, config: KayleeConfig, *, notify: Callable[[str], bool] = sd_notify,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 direct: DirectChannel | None = None) -> None:
        state_dir = config.state_path()
        if config.peers.state_file is None:
            # Alert edges survive restarts (and --once runs from cron) in the state directory.
            config = replace(config, peers=replace(config.peers,
                                                   state_file=state_dir / "peers.json"))
        super().__init__(config, notify=notify, clock=clock)
        self.kconfig = config
        self.me = config.name
        self.wall = wall
        self.state_dir = state_dir
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.recipes = build_recipes(config)
        self.scheduler = Scheduler.build(config.job, self.recipes, tz=config.zone(),
                                         state_file=self.state_dir / "schedule.json",
                                         log=self.log, grace=config.schedule_grace)
        for job, reason in self.scheduler.disabled.items():
            self.log.error("job.disabled", job=job, reason=reason)
        self.running: dict[str, Task] = {}
        self.finished: queue.SimpleQueue[tuple[str, Outcome]] = queue.SimpleQueue()
        self.updates: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self.outbox = Outbox(self.state_dir / "outbox")
        self.pending: list[Outcome] = self.outbox.load(self.log)
        if self.pending:
            self.log.info("outbox.loaded", outcomes=len(self.pending))
        self._router: ModelRouter | None = None
        self._router_lock = threading.Lock()
        self._closers: list[Callable[[], object]] = []
        self._once = False
        self._set_up = False
        peer = next((p for p in config.peers.peer if p.name == config.owner.agent), None)
        self.owner = Owner(config.owner, chat=config.owner_chat(), bridge=lambda: self.bridge,
                           log=self.log,
                           direct=direct if direct is not None else self._direct_channel(),
                           peer=peer, monitor=self._monitor, peer_timeout=config.peers.timeout)

    # -- the runtime's hooks ----------------------------------------------------------------------

    def run(self, *, once: bool = False, max_iterations: int | None = None) -> int:
        self._once = once
        try:
            return super().run(once=once, max_iterations=max_iterations)
        finally:
            self.close_clients()

    def close_clients(self) -> None:
        """Close the HTTP clients Kaylee made (the model API, Green API)."""
        if self._router is not None:
            self._router.close()
            self._router = None
        while self._closers:
            self._closers.pop()()

    def setup(self) -> None:
        """Once the bridge is open: report disabled jobs (once per start), tidy old output."""
        if self._set_up:
            return
        self._set_up = True
        for job, reason in self.scheduler.disabled.items():
            self._queue_note("job-disabled", f"Kaylee: the job {job!r} is disabled and will not "
                             f"run: {reason}", key=f"job-disabled:{job}:{_digest(reason)}")
        self._prune_output()
        self.log.info("kaylee.ready", recipes=sorted(self.recipes),
                      jobs=[j.name for j in self.scheduler.jobs],
                      concurrency=self.kconfig.concurrency, dry_run=self.kconfig.dry_run)

    def health_fields(self) -> dict[str, Any]:
        now = time.monotonic()
        tasks = dict(self.running)  # one C-level copy: the loop may change it meanwhile
        running = [{"task": t.id, "recipe": t.recipe.name, "seconds": round(now - t.started, 1)}
                   for t in tasks.values()]
        return {"kaylee": {"running": running, "outbox": len(self.pending),
                           "dryRun": self.kconfig.dry_run, "recipes": sorted(self.recipes),
                           "jobs": self.scheduler.summary()}}

    def alert_sinks(self) -> list[AlertSink]:
        return [self._alert]

    def _alert(self, alert: Alert) -> None:
        self._queue_note("alert", f"Kaylee: {alert.text}",
                         key=f"alert:{alert.result.peer}:{alert.kind}:{alert.result.checked}")

    def count_backlog(self) -> int | None:
        if self.bridge is None:
            return None
        return sum(1 for v in self.bridge.inbox(self.me, include_claimed=False)
                   if v.message.type == "request" and v.message.to == self.me)

    # -- every iteration, paused or not -----------------------------------------------------------

    def housekeeping(self) -> None:
        # Finished tasks first, then progress lines: a task's progress was queued before
        # its result, so taking them in this order posts every "⏳ started" before the
        # "✅" it leads to, even for a task that finished in between.
        finished: list[Outcome] = []
        while True:
            try:
                task_id, outcome = self.finished.get_nowait()
            except queue.Empty:
                break
            task = self.running.pop(task_id, None)
            if task is not None and task.cancelled is not None:
                self.log.info("task.dropped", task=task_id, because=task.cancelled)
                continue
            finished.append(outcome)
        self._take_updates()
        self.pending.extend(finished)
        self._flush()
        self._renew_leases()

    def _take_updates(self) -> None:
        """Progress lines and notes from the worker threads, in the order they came."""
        while True:
            try:
                self.pending.append(self.updates.get_nowait())
            except queue.Empty:
                break

    def _flush(self) -> None:
        """Append waiting outcomes in order; keep the rest in the outbox if the bridge fails."""
        while self.pending:
            outcome = self.pending[0]
            bridge = self.bridge
            try:
                post(outcome, self._bridge_now(), self.owner, self.me, self.log)
            except Exception as exc:
                if not is_bridge_down(exc):
                    raise
                for waiting in self.pending:
                    self.outbox.keep(waiting)
                self.log.warning("outbox.kept", outcomes=len(self.pending), error=str(exc))
                if bridge is None:
                    return
                raise
            self.pending.pop(0)
            self.outbox.drop(outcome)
            self._log_outcome(outcome)
            if outcome.after_post is not None:
                outcome.after_post()

    def _log_outcome(self, o: Outcome) -> None:
        if o.kind in ("note", "progress"):
            return
        level = self.log.info if o.kind in ("done", "handback") else self.log.warning
        level(f"task.{o.kind}", task=o.task, recipe=o.recipe, attempt=o.attempt,
              requester=o.requester, job=o.job, reason=o.reason)
        if o.kind == "done":
            self.activity()
        elif o.kind not in ("retry", "handback"):
            self.record_error(f"{o.what}: {o.reason}")

    def _renew_leases(self) -> None:
        if not self.running or self.bridge is None:
            return
        lease = self.kconfig.lease
        now = time.monotonic()
        for task in list(self.running.values()):
            if task.cancelled is not None or now - task.renewed < lease / 3:
                continue
            try:
                self.bridge.claim(task.id, lease=lease)
            except (StateConflict, NotFound) as exc:
                # Someone cancelled it (or finished it by force): stop working on it.
                task.cancelled = str(exc)
                task.stop.set()
                self.log.warning("task.cancelled", task=task.id, reason=str(exc))
                continue
            task.renewed = now

    # -- when not paused --------------------------------------------------------------------------

    def step(self) -> bool:
        bridge = self._bridge_now()
        now = self.wall()
        did = False
        waiting = {o.task for o in self.pending}  # outcomes not appended yet: not interrupted
        for view in bridge.inbox(self.me, include_claimed=True):
            msg, state = view.message, view.state
            if msg.type != "request":
                if msg.to == self.me:
                    did = self._read(view) or did
            elif (msg.to == self.me and state.status == "claimed" and state.claimed_by == self.me
                  and view.id not in self.running and view.id not in waiting
                  and state.lease_expired(now)):
                self._recover(view)
                did = True
        for due in self.scheduler.due(now, is_open=self._is_open):
            self._enqueue(due)
            did = True
        if len(self.running) < self.kconfig.concurrency:
            did = self._take_work(bridge, now) or did
        return did

    def _take_work(self, bridge: Backend, now: float) -> bool:
        did = False
        for view in bridge.inbox(self.me, include_claimed=False):
            if len(self.running) >= self.kconfig.concurrency:
                break
            if (view.message.type != "request" or view.message.to != self.me
                    or not view.state.available(now)):
                continue
            try:
                claimed = bridge.claim(view.id, lease=self.kconfig.lease)
            except StateConflict:
                continue
            self.log.info("task.claimed", task=view.id, requester=view.message.sender,
                          attempts=claimed.state.attempts)
            self._start(claimed)
            did = True
        return did

    def _read(self, view: MessageView) -> bool:
        """A response or notification addressed to Kaylee: a confirmation answer starts its
        task; everything is then marked done (read)."""
        bridge = self._bridge_now()
        msg = view.message
        started = False
        if msg.type == "response" and msg.reply_to:
            try:
                ask = bridge.get(msg.reply_to)
            except NotFound:
                ask = None
            meta = ask.message.metadata if ask is not None else {}
            if ask is not None and meta.get("kaylee") == "confirm" and ask.message.sender == \
                    self.me:
                if len(self.running) >= self.kconfig.concurrency:
                    return False  # busy: the answer stays unread until a task finishes
                started = self._answered(ask, view)
        try:
            bridge.done(view.id, reason="read by kaylee")
        except StateConflict:
            return started  # someone else holds it: not ours to mark
        self.log.debug("message.read", id=view.id, sender=msg.sender, type=msg.type)
        return True

    def _answered(self, ask: MessageView, answer: MessageView) -> bool:
        task_id = ask.message.metadata.get("task")
        if not isinstance(task_id, str):
            return False
        if answer.message.sender != self.kconfig.owner.agent:
            self.log.warning("confirm.ignored", task=task_id, answer=answer.id,
                             sender=answer.message.sender,
                             reason=f"only {self.kconfig.owner.agent} may confirm")
            return False
        bridge = self._bridge_now()
        try:
            claimed = bridge.claim(task_id, lease=self.kconfig.lease)
        except (StateConflict, NotFound) as exc:
            self.log.info("confirm.late", task=task_id, reason=str(exc))
            return False
        if task_id in self.running:
            return False
        self._start(claimed)
        return True

    def _is_open(self, request_id: str) -> bool:
        try:
            return not self._bridge_now().get(request_id).state.terminal
        except NotFound:
            return False

    def _enqueue(self, due: Due) -> None:
        bridge = self._bridge_now()
        job = due.job
        recipe = self.recipes[job.recipe]
        meta: dict[str, Any] = {"recipe": job.recipe, "params": job.params, "job": job.name,
                                "slot": format_ts(due.slot)}
        if job.dry_run:
            meta["dry_run"] = True
        if due.late:
            meta["caught_up"] = due.missed
        content = recipe.describe(job.params) + (" --dry-run" if job.dry_run else "")
        sent = bridge.send(content, to=self.me, type="request", metadata=meta,
                                idempotency_key=due.key)
        self.scheduler.ran(due, sent.id)
        self.log.info("job.enqueued", job=job.name, slot=format_ts(due.slot), request=sent.id,
                      duplicate=sent.duplicate, caught_up=due.late)

    # -- starting, running and finishing a task ---------------------------------------------------

    def _outcome(self, view: MessageView, kind: str, text: str, *, what: str | None = None,
                 tell_owner: bool = True, **fields: Any) -> Outcome:
        """An outcome for the request ``view`` (the chat metadata copied for Kami)."""
        meta = view.message.metadata or {}
        return Outcome(kind, view.id, view.message.sender, what or view.message.content[:80],
                       text, inherit={k: meta[k] for k in INHERITED if k in meta},
                       job=meta.get("job") if isinstance(meta.get("job"), str) else None,
                       tell_owner=tell_owner, **fields)

    def _finish(self, outcome: Outcome) -> None:
        self._take_updates()  # progress said before the outcome goes before it
        self.pending.append(outcome)
        self._flush()

    def _start(self, view: MessageView) -> None:
        """Check a claimed request, settle its confirmation, and start it."""
        try:
            request = parse_request(view.message, self.recipes)
            recipe = self.recipes[request.recipe]
            params = validate_params(recipe.params, request.params)
        except RequestRefused as exc:
            self.log.warning("task.refused", task=view.id, reason=str(exc))
            self._finish(self._outcome(view, "refused", str(exc)))
            return
        what = recipe.describe(params)
        dry_run = request.dry_run or self.kconfig.dry_run
        if dry_run:
            what += " (dry run)"
        asked = 0
        if recipe.confirm and not dry_run:
            settled = self._confirmation(view, recipe, what, params)
            if settled is None:
                return
            asked = settled
        attempts = recipe.retries + 1
        attempt = max(1, view.state.attempts - asked)
        base = self._outcome(view, "failed", "", what=what, recipe=recipe.name,
                             attempt=attempt, attempts=attempts)
        if attempt > attempts + INTERRUPTIONS:
            base.kind = "dead"
            base.text = (f"it was taken {attempt} times (runs cut short by a stopping Kaylee "
                         f"included); the limit is {attempts + INTERRUPTIONS}")
            self._finish(base)
            return
        task = Task(view.id, recipe, request, params, what, view.message.sender, attempt,
                    attempts, dry_run, base.inherit, renewed=time.monotonic())
        self.log.info("task.started", task=task.id, recipe=recipe.name, params=params,
                      attempt=attempt, of=attempts, dry_run=dry_run, requester=task.requester)
        if task.requester != self.me:
            self._progress(task, f"started (attempt {attempt} of {attempts})"
                           if attempts > 1 else "started")
        if self._once:
            self.running[task.id] = task
            outcome = self._execute(task, base)
            self.running.pop(task.id, None)
            self._finish(outcome)
            return
        task.thread = threading.Thread(target=self._worker, args=(task, base),
                                       name=f"task-{task.id[-8:]}", daemon=True)
        self.running[task.id] = task
        task.thread.start()

    def _confirmation(self, view: MessageView, recipe: Recipe, what: str,
                      params: dict[str, Any]) -> int | None:
        """None while waiting (or settled as declined); else how many takes the question
        cost (they do not count as attempts)."""
        bridge = self._bridge_now()
        owner = self.kconfig.owner
        found = find_confirmation(thread_of(bridge, view.id), view.id, self.me, owner.agent)
        for ignored in found.ignored:
            self.log.warning("confirm.ignored", task=view.id, answer=ignored.id,
                             sender=ignored.message.sender,
                             reason=f"only {owner.agent} may confirm")
        now = self.wall()
        if found.ask is None:
            timeout = self.kconfig.confirm_timeout
            meta: dict[str, Any] = {"kaylee": "confirm", "task": view.id, "recipe": recipe.name,
                                    "params": params, "requester": view.message.sender}
            if self.owner.chat:
                meta["whatsapp_sender"] = self.owner.chat
            ask = bridge.send(f"🔐 Kaylee asks: may she run “{what}”? Requested by "
                              f"{view.message.sender}. Answer yes or no within "
                              f"{human_duration(timeout)}.", to=owner.agent, type="request",
                              reply_to=view.id, metadata=meta, expires_in=timeout,
                              idempotency_key=f"confirm:{view.id}")
            bridge.release(view.id, delay=timeout,
                           reason=f"awaiting the owner's confirmation ({ask.id})")
            self.log.info("confirm.asked", task=view.id, ask=ask.id, owner=owner.agent)
            if view.message.sender != self.me:
                self._send_progress(view, what, f"waiting for the owner's confirmation "
                                                f"(asked through {owner.agent})")
            return None
        if found.answer is not None:
            if found.approved:
                self.log.info("confirm.approved", task=view.id, answer=found.answer.id)
                return 1
            self.log.info("confirm.declined", task=view.id, answer=found.answer.id)
            self._finish(self._outcome(view, "failed", "the owner declined it "
                                       f"(answer: {found.answer.message.content[:80]!r})",
                                       what=what, recipe=recipe.name, tell_owner=False))
            return None
        if found.expired(now):
            self.log.warning("confirm.timeout", task=view.id, ask=found.ask.id)
            try:
                bridge.set_status(found.ask.id, "expired", reason="no answer in time")
            except StateConflict:
                pass
            self._finish(self._outcome(view, "failed", "no confirmation from the owner within "
                                       f"{human_duration(self.kconfig.confirm_timeout)}",
                                       what=what, recipe=recipe.name))
            return None
        left = (found.ask.state.expires or now) - now
        bridge.release(view.id, delay=max(1.0, left),
                       reason=f"awaiting the owner's confirmation ({found.ask.id})")
        return None

    def _worker(self, task: Task, base: Outcome) -> None:
        outcome = self._execute(task, base)
        self.finished.put((task.id, outcome))
        self.wake_up()

    def _execute(self, task: Task, base: Outcome) -> Outcome:
        """Run the recipe and turn what happened into an outcome (never raises)."""
        ctx = TaskContext(task_id=task.id, recipe=task.recipe, params=task.params,
                          dry_run=task.dry_run, attempt=task.attempt, log=self.log,
                          state_dir=self.state_dir, stop=task.stop,
                          is_paused=lambda: self.paused,
                          progress_sink=lambda text: self._progress(task, text),
                          bridge_getter=self._bridge_now, models=self._models,
                          monitor=self._monitor, output_limit=self.kconfig.output_limit,
                          output_file_limit=self.kconfig.output_file_limit,
                          stop_grace=self.kconfig.stop_grace)
        o = base
        try:
            result = task.recipe.run(ctx)
        except RecipeFailed as exc:
            o.text, o.output = exc.reason, exc.output
            o.output_file = str(exc.output_file) if exc.output_file else None
            if exc.retryable and task.attempt < task.attempts:
                o.kind, o.delay = "retry", self._backoff(task.attempt)
                o.text = (f"attempt {task.attempt} of {task.attempts} failed: {exc.reason}; "
                          f"trying again in {human_duration(o.delay)}")
            elif exc.retryable:
                o.kind = "dead"
        except RequestRefused as exc:
            o.kind, o.text = "refused", str(exc)
        except Interrupted as exc:
            if task.recipe.idempotent or task.dry_run:
                o.kind = "handback"
                o.text = (f"Kaylee is stopping ({exc}); it will run again (the recipe is "
                          "idempotent)")
            else:
                o.kind = "interrupted"
                o.text = (f"Kaylee was stopped {exc}; {task.recipe.name} is not idempotent, so "
                          "it is not run again: check what it did")
        except Exception as exc:
            self.log.exception("task.crashed", task=task.id, recipe=task.recipe.name)
            o.text = f"internal error: {type(exc).__name__}: {exc}"
        else:
            o.kind, o.text, o.output = "done", result.text, result.output
            o.output_file = str(result.output_file) if result.output_file else None
            o.owner_text, o.data, o.after_post = result.owner_text, result.data, \
                result.after_post
        o.data = {**o.data, "seconds": round(time.monotonic() - task.started, 3)}
        return o

    def _backoff(self, attempt: int) -> float:
        return float(min(self.kconfig.backoff * 2 ** (attempt - 1), self.kconfig.max_backoff))

    def _recover(self, view: MessageView) -> None:
        """Kaylee's own claim whose lease ran out and that no thread of hers runs: a previous
        Kaylee died while running it."""
        bridge = self._bridge_now()
        lease_end = format_ts(view.state.lease_until or 0)
        previous = next((v for v in thread_of(bridge, view.id)
                         if v.message.sender == self.me and v.message.reply_to == view.id
                         and (v.message.metadata or {}).get("kaylee") == "outcome"), None)
        if previous is not None:
            kind = previous.message.metadata.get("outcome")
            status = {"done": "done", "dead": "dead"}.get(str(kind), "failed")
            self.log.info("task.recovered", task=view.id, how="outcome already reported",
                          status=status)
            try:
                bridge.set_status(view.id, status, reason="outcome already reported before a "
                                                          "restart")
            except StateConflict:
                pass
            return
        try:
            request = parse_request(view.message, self.recipes)
            recipe = self.recipes[request.recipe]
            safe = recipe.idempotent or request.dry_run or self.kconfig.dry_run
        except RequestRefused:
            safe = True  # never ran: it is refused again, properly
        if safe:
            self.log.warning("task.recovered", task=view.id, how="run again", lease_end=lease_end)
            bridge.release(view.id, reason="interrupted: Kaylee stopped while it ran; running it "
                                           "again (safe to repeat)")
            return
        self.log.warning("task.recovered", task=view.id, how="failed as interrupted",
                         lease_end=lease_end)
        bridge.claim(view.id, lease=self.kconfig.lease)
        self._finish(self._outcome(
            view, "interrupted", f"Kaylee stopped while it ran (lease ended {lease_end}); "
            f"{recipe.name} is not idempotent, so it is not run again: check what it did",
            what=recipe.describe(request.params), recipe=recipe.name,
            attempt=view.state.attempts))

    # -- progress, notes, helpers -----------------------------------------------------------------

    def _progress(self, task: Task, text: str) -> None:
        """From any thread: a progress line for the requester (not for Kaylee's own jobs)."""
        if task.requester == self.me:
            return
        self.updates.put(Outcome("progress", task.id, task.requester, task.what, text,
                                 inherit=task.inherit, key=f"progress:{ulid()}"))
        self.wake_up()

    def _send_progress(self, view: MessageView, what: str, text: str) -> None:
        meta = view.message.metadata or {}
        self.pending.append(Outcome("progress", view.id, view.message.sender, what, text,
                                    inherit={k: meta[k] for k in INHERITED if k in meta},
                                    key=f"progress:{ulid()}"))

    def _queue_note(self, kind: str, text: str, *, key: str) -> None:
        self.updates.put(Outcome("note", key, self.me, kind, text, key=key))
        self.wake_up()

    def _bridge_now(self) -> Backend:
        bridge = self.bridge
        if bridge is None:
            raise BridgeError("the bridge is unreachable")
        return bridge

    def _models(self) -> ModelRouter:
        with self._router_lock:
            if self._router is None:
                models = self.kconfig.models
                path = models.ledger or self.state_dir / "ledger.json"
                self._router = ModelRouter(models, ledger=Ledger.load(path))
            return self._router

    def _monitor(self) -> PeerMonitor | None:
        if self.monitor is None:
            self.monitor = self.build_monitor()
        return self.monitor

    def _prune_output(self) -> None:
        directory = self.state_dir / "output"
        cutoff = time.time() - self.kconfig.output_keep
        try:
            entries = list(directory.iterdir())
        except FileNotFoundError:
            return
        for path in entries:
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except OSError:
                continue

    def _direct_channel(self) -> DirectChannel | None:
        """How to reach the owner's phone without Kami: the Green API sink (``[whatsapp]``),
        else ``[owner] command`` (a program given ``{"chat", "text", "kind"}`` as JSON on its
        stdin), else nothing (notes wait on the bridge for Kami)."""
        config = self.kconfig
        if config.whatsapp.configured:
            from bridge.runtime.greenapi import GreenApiSink

            client = config.whatsapp.client()
            self._closers.append(client.close)
            sink = GreenApiSink(client, config.whatsapp.owners)

            def to_whatsapp(text: str, meta: dict[str, Any]) -> None:
                sink.send_text(text)

            return to_whatsapp
        argv = config.owner.command
        if not argv:
            return None
        import subprocess

        import orjson

        def to_command(text: str, meta: dict[str, Any]) -> None:
            payload = orjson.dumps({"chat": config.owner_chat(), "text": text,
                                    "kind": meta.get("kaylee")})
            subprocess.run(list(argv), input=payload, timeout=30, check=True, capture_output=True)

        return to_command

    # -- stopping -------------------------------------------------------------------------------

    def hand_back(self) -> None:
        """Stop the running tasks (each recipe gets ``stop_grace`` to finish its command),
        then append their outcomes: idempotent ones are handed back, others failed as
        interrupted. Whatever cannot be appended stays in the outbox."""
        for task in self.running.values():
            task.stop.set()
        deadline = time.monotonic() + self.kconfig.stop_grace + 6.0
        for task in list(self.running.values()):
            if task.thread is not None:
                task.thread.join(timeout=max(0.0, deadline - time.monotonic()))
                if task.thread.is_alive():
                    self.log.error("task.stuck", task=task.id,
                                   effect="its lease will run out and it is taken back at the "
                                          "next start")
        try:
            self.housekeeping()
        except (BridgeError, OSError) as exc:
            self.log.error("outbox.kept_at_stop", outcomes=len(self.pending), error=str(exc))
