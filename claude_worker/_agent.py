"""The headless Claude worker: requests for ``claude`` that no interactive session took.

The runtime's loop stays short (it pings the watchdog); a run of the CLI goes on in a
thread of its own (:mod:`claude_worker._run`) and the loop does the bookkeeping around it.

Every iteration, paused or not (:meth:`ClaudeWorker.housekeeping`): post the outcome of a
run that ended (kept in ``<state>/outcome.json`` until it is on the bridge); while a run
goes on, renew its claim every third of the lease and watch its request — cancelled, and
the run is killed.

When not paused (:meth:`ClaudeWorker.step`): once after a start, hand back the requests a
previous worker was running when it died; then, with no run going on, take the oldest
request addressed to ``claude`` that is open, unclaimed and older than ``delay``:
claim it, check the day's budget, tell the requester it is being worked on, start the CLI.

A request's life (the bridge's statuses in brackets)::

    pending ──(older than delay)──▶ claimed by claude.worker ──▶ answered      [done]
       ▲                              │  (renewed while it runs)  ├▶ the model answered
       │                              │                           │  with the tool: nothing
       │                              │                           │  more is posted  [done]
       │                              │                           ├▶ timeout, max turns,
       │                              │                           │  error, budget   [failed]
       │                              │                           └▶ bridge cancel: killed
       │                              │                                          [cancelled]
       └── worker stopped (SIGTERM) or killed and restarted: handed back, taken again ─┘
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from bridge import BridgeError, MessageView, NotFound, StateConflict, parse_ts
from bridge.format import REPLY_INHERITS, human_duration
from bridge.runtime import Agent, Ledger
from bridge.runtime import notify as sd_notify
from bridge.store import Perms, atomic_write, default_directory

from ._config import ClaudeWorkerConfig
from ._process import become_subreaper, build_argv, child_environment, kill_orphan, mcp_config
from ._prompt import build_prompt
from ._run import Run, RunSpec
from ._sessions import SessionStore, conversation_key

if TYPE_CHECKING:
    from bridge import Backend

__all__ = ["COST_KEY", "ClaudeWorker", "Outcome"]

COST_KEY = "cost_microusd"
"""The ledger's entry for the day's spend: the runtime's Ledger counts integers, so USD
are kept in millionths."""

PROGRESS_TEXT = "⏳ Working on it…"
REMEMBERED = 1000
"""Request ids kept for "logged once" events (deferred, held by a session)."""


@dataclass
class Outcome:
    """What a run (or a refusal) leaves to post: persisted until it is on the bridge."""

    kind: str  # "answer" | "failed" | "handback" | "dropped"
    request: str
    requester: str
    text: str
    inherit: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Job:
    """The request being worked on and its run."""

    view: MessageView
    run: Run
    key: str
    project: str
    attempt: int
    renewed: float
    cancelled: str | None = None
    stopping: bool = False


class ClaudeWorker(Agent):
    """The worker agent (``claude-worker run``)."""

    name = "claude-worker"

    def __init__(self, config: ClaudeWorkerConfig, *,
                 notify: Callable[[str], bool] = sd_notify,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(config, notify=notify, clock=clock)
        self.wconfig = config
        self.s = config.claude_worker
        self.state_dir = config.state_path()
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.state_dir.chmod(0o700)
        self.home = self.state_dir / "home"
        self.home.mkdir(exist_ok=True, mode=0o700)
        self.run_file = self.state_dir / "run.json"
        self.prompt_file = self.state_dir / "prompt.txt"
        self.outcome_file = self.state_dir / "outcome.json"
        # Before anything else: a run a killed predecessor left behind is stopped.
        become_subreaper()
        self.orphaned = kill_orphan(self.run_file, self.log.warning)
        self.sessions = SessionStore(self.state_dir / "sessions.json", warn=self.log.warning)
        self.ledger = Ledger.load(self.state_dir / "ledger.json")
        self.projects = self.s.project_dirs()
        self.job: Job | None = None
        self.outcome: Outcome | None = self._load_outcome()
        self._recovered = False
        self._once = False
        self._logged: dict[str, None] = {}
        self._timer: threading.Timer | None = None
        self._timer_at = 0.0
        if not self.s.api_key:
            self.degraded("no Anthropic API key: LoadCredential=anthropic-api-key (or "
                          "$CLAUDE_WORKER_ANTHROPIC_API_KEY)")

    # -- the runtime's hooks ----------------------------------------------------------------------

    def run(self, *, once: bool = False, max_iterations: int | None = None) -> int:
        self._once = once
        return super().run(once=once, max_iterations=max_iterations)

    def setup(self) -> None:
        self.log.info("worker.ready", takes_for=self.s.agent, identity=self.s.identity,
                      delay=self.s.delay, projects=sorted(self.projects),
                      sessions=len(self.sessions), budget_usd=self.s.daily_budget_usd,
                      orphaned=self.orphaned)

    def teardown(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def health_fields(self) -> dict[str, Any]:
        job = self.job
        running = None
        if job is not None:
            running = {"request": job.view.id, "project": job.project,
                       "seconds": round(time.monotonic() - job.run.started, 1),
                       "resumed": job.run.resumed is not None}
        return {"worker": {"running": running, "sessions": len(self.sessions),
                           "spentTodayUsd": round(self.spent_today(), 6),
                           "dailyBudgetUsd": self.s.daily_budget_usd,
                           "identity": self.s.identity, "agent": self.s.agent,
                           "outcomeWaiting": self.outcome is not None}}

    def count_backlog(self) -> int | None:
        if self.bridge is None:
            return None
        return sum(1 for v in self.bridge.inbox(self.s.agent, include_claimed=False)
                   if v.message.type == "request" and v.message.to == self.s.agent)

    # -- every iteration, paused or not -----------------------------------------------------------

    def housekeeping(self) -> None:
        bridge = self.bridge
        job = self.job
        if job is not None and job.run.finished.is_set():
            self.job = None
            self._keep(self._finish(job))
        elif job is not None and bridge is not None:
            self._watch(bridge, job)
        if self.outcome is not None and bridge is not None:
            self._post(bridge, self.outcome)
            self.outcome = None
            self.outcome_file.unlink(missing_ok=True)

    def _watch(self, bridge: Backend, job: Job) -> None:
        """Kill the run when its request is cancelled (or taken by someone else); renew."""
        if job.cancelled is not None:
            return
        try:
            state = bridge.get(job.view.id).state
        except NotFound:
            state = None
        now = time.time()
        if state is None or state.status == "cancelled":
            job.cancelled = "cancelled" if state is not None else "gone from the bridge"
        elif (state.status == "claimed" and state.claimed_by != self.s.identity
              and not state.lease_expired(now)):
            job.cancelled = f"taken over by {state.claimed_by}"
        if job.cancelled is not None:
            self.log.warning("run.cancelled", request=job.view.id, reason=job.cancelled)
            job.run.kill(job.cancelled)
            return
        if state is not None and not state.terminal and \
                time.monotonic() - job.renewed >= self.s.lease / 3:
            try:
                bridge.claim(job.view.id, lease=self.s.lease, sender=self.s.identity)
            except StateConflict as exc:
                self.log.warning("lease.not_renewed", request=job.view.id, reason=str(exc))
            job.renewed = time.monotonic()

    # -- when not paused --------------------------------------------------------------------------

    def step(self) -> bool:
        bridge = self.bridge
        if bridge is None or self.job is not None or self.outcome is not None:
            return False
        if not self._recovered:
            self._recovered = True
            if self._recover(bridge):
                return True
        view = self._next(bridge)
        if view is None:
            return False
        if not self.s.api_key:
            self._once_per(view.id, "nokey", "request.not_taken", request=view.id,
                           reason="no Anthropic API key")
            return False
        self._take(bridge, view)
        return True

    def _next(self, bridge: Backend) -> MessageView | None:
        """The oldest request for the agent that is open, unclaimed and older than the delay;
        the loop is woken when the next one comes of age."""
        now = time.time()
        next_due: float | None = None
        for view in bridge.inbox(self.s.agent, include_claimed=True):
            msg, state = view.message, view.state
            if msg.type != "request" or msg.to != self.s.agent:
                continue
            if state.status == "claimed" and not state.lease_expired(now):
                if state.claimed_by != self.s.identity:
                    self._once_per(view.id, "held", "request.held", request=view.id,
                                   by=state.claimed_by)
                continue
            if not state.available(now):
                continue
            try:
                due = parse_ts(msg.ts) + self.s.delay
            except ValueError:
                due = now
            if due > now:
                self._once_per(view.id, "deferred", "request.deferred", request=view.id,
                               due_in=round(due - now, 3))
                next_due = due if next_due is None else min(next_due, due)
                continue
            return view
        if next_due is not None:
            self._wake_at(next_due)
        return None

    def _take(self, bridge: Backend, view: MessageView) -> None:
        s = self.s
        try:
            view = bridge.claim(view.id, lease=s.lease, sender=s.identity)
        except StateConflict as exc:
            self.log.info("request.not_taken", request=view.id, reason=str(exc))
            return
        attempt = max(1, view.state.attempts)
        self.log.info("request.claimed", request=view.id, requester=view.message.sender,
                      attempt=attempt)
        meta = view.message.metadata or {}
        asked = meta.get("project")
        project = asked if isinstance(asked, str) and asked else s.default_project
        if project is None and len(self.projects) == 1:
            project = next(iter(self.projects))
        if project is not None and project not in self.projects:
            known = ", ".join(sorted(self.projects)) or "none"
            self._refuse(view, f"there is no project {project!r} here (projects: {known})")
            return
        name = project or "work"
        cwd = self.projects[project] if project is not None else self.state_dir / "work"
        if project is None:
            cwd.mkdir(exist_ok=True, mode=0o700)
        elif not cwd.is_dir():
            self._refuse(view, f"the directory of project {name!r} ({cwd}) does not exist")
            return
        if attempt > s.max_attempts:
            self._refuse(view, f"it was taken {attempt} times without an answer (the worker "
                               "stopped or restarted while it ran); the limit is "
                               f"{s.max_attempts}")
            return
        spent = self.spent_today()
        if spent >= s.daily_budget_usd:
            self._over_budget(bridge, view, spent)
            return
        if s.progress:
            self._progress(bridge, view)
        key = conversation_key(view.message.sender, self._conversation(bridge, view), name)
        resume = self.sessions.get(key)
        prompt = build_prompt(view, agent=s.agent, project=name, cwd=str(cwd), attempt=attempt)
        atomic_write(self.prompt_file, prompt.encode(), Perms(), durable=False)
        mcp = mcp_config(s, self._mcp_bridge())
        left = s.daily_budget_usd - spent
        spec = RunSpec(request=view.id,
                       argv=lambda sid: build_argv(s, mcp=mcp, resume=sid, budget_left=left),
                       resume=resume, env=child_environment(s, self.home), cwd=cwd,
                       prompt_file=self.prompt_file, run_file=self.run_file, timeout=s.timeout)
        run = Run(spec, on_session=lambda sid: self._session(key, sid),
                  on_session_lost=lambda: self._session_lost(key), on_end=self.wake_up)
        self.job = Job(view, run, key, name, attempt, renewed=time.monotonic())
        run.start()
        self.log.info("run.started", request=view.id, requester=view.message.sender,
                      project=name, resume=resume is not None, attempt=attempt)
        if self._once:
            run.finished.wait(s.timeout + s.stop_grace + 30.0)

    def _conversation(self, bridge: Backend, view: MessageView) -> str:
        """The WhatsApp chat, else the root of the request's thread."""
        chat = (view.message.metadata or {}).get("whatsapp_sender")
        if isinstance(chat, str) and chat:
            return chat
        root, seen = view, {view.id}
        for _ in range(1000):  # bounded: threads are short; a cycle written by hand stops
            parent = root.message.reply_to
            if parent is None or parent in seen:
                break
            try:
                root = bridge.get(parent)
            except NotFound:
                break
            seen.add(root.id)
        return root.id

    def _mcp_bridge(self) -> str:
        if self.s.mcp_bridge:
            return self.s.mcp_bridge
        if self.wconfig.bridge:
            return self.wconfig.bridge
        return str(default_directory())

    def _session(self, key: str, session_id: str) -> None:
        self.sessions.put(key, session_id)
        self.log.info("session.saved", session=session_id, sessions=len(self.sessions))

    def _session_lost(self, key: str) -> None:
        self.sessions.forget(key)
        self.log.warning("session.lost", effect="the CLI no longer has it; starting afresh")

    def _recover(self, bridge: Backend) -> bool:
        """Requests this identity holds with no run here: a previous worker was running them
        when it stopped or died (its processes were killed at start). They are handed back,
        to be taken again as any request (the session they began is resumed)."""
        did = False
        for view in bridge.inbox(self.s.agent, include_claimed=True):
            state = view.state
            if view.message.type != "request" or state.status != "claimed" or \
                    state.claimed_by != self.s.identity:
                continue
            self.log.warning("run.recovered", request=view.id, attempts=state.attempts)
            try:
                bridge.release(view.id, sender=self.s.identity,
                               reason="interrupted: the Claude worker stopped while it ran; "
                                      "taking it again")
            except StateConflict:
                continue
            did = True
        return did

    # -- outcomes ---------------------------------------------------------------------------------

    def _finish(self, job: Job) -> Outcome:
        """What the ended run means for its request (cost recorded first)."""
        run, view, s = job.run, job.view, self.s
        t = run.transcript
        if t.result is not None:
            self.ledger.add(COST_KEY, round(t.cost_usd * 1_000_000))
            for name, tokens in t.usage.items():
                if tokens:
                    self.ledger.add(name, tokens)
            self.ledger.add("runs", 1)
        data = {"seconds": round(run.seconds, 3), "turns": t.turns,
                "cost_usd": round(t.cost_usd, 6)}
        self.log.info("run.ended", request=view.id, exit_code=run.exit_code,
                      subtype=t.subtype, is_error=t.is_error, timed_out=run.timed_out,
                      killed=run.kill_reason, mcp=t.mcp_status("bridge"), **data)
        if t.init is not None and t.mcp_status("bridge") not in (None, "connected"):
            self.log.warning("mcp.unavailable", request=view.id, status=t.mcp_status("bridge"))
        if job.cancelled is not None:
            return self._outcome(view, "dropped", job.cancelled, data)
        if job.stopping and (run.kill_reason is not None or t.result is None):
            return self._outcome(view, "handback", "the Claude worker stopped while it ran; it "
                                 "will be taken again", data)
        reason: str | None = None
        if run.timed_out:
            reason = (f"the run did not finish within {human_duration(s.timeout)} and was "
                      "stopped with its processes")
        elif run.error is not None:
            reason = f"the Claude Code CLI could not run: {run.error}"
        elif t.result is None:
            tail = run.stderr_tail
            reason = (f"the Claude Code CLI exited with status {run.exit_code} without a "
                      "result" + (f": {tail}" if tail else ""))
        elif t.subtype == "error_max_turns":
            reason = f"it reached the limit of {s.max_turns} turns without a final answer"
        elif t.subtype == "error_max_budget_usd":
            reason = "it reached what was left of today's budget before a final answer"
        elif t.is_error or run.exit_code != 0:
            detail = (t.errors[:1] or [t.text[:200]])[0]
            reason = f"the Claude Code CLI reported an error ({t.subtype})" + \
                (f": {detail}" if detail else "")
        elif not t.text.strip():
            reason = "the model finished without a final answer"
        if reason is not None:
            return self._outcome(view, "failed", reason, data)
        return self._outcome(view, "answer", t.text.strip(), data)

    def _outcome(self, view: MessageView, kind: str, text: str,
                 data: dict[str, Any] | None = None) -> Outcome:
        meta = view.message.metadata or {}
        return Outcome(kind, view.id, view.message.sender, text,
                       {k: meta[k] for k in REPLY_INHERITS if k in meta}, data or {})

    def _keep(self, outcome: Outcome) -> None:
        """Persist an outcome until it is posted (a crash in between posts it at the start)."""
        self.outcome = outcome
        atomic_write(self.outcome_file, orjson.dumps(asdict(outcome)), Perms())

    def _load_outcome(self) -> Outcome | None:
        try:
            data = orjson.loads(self.outcome_file.read_bytes())
            return Outcome(**data)
        except FileNotFoundError:
            return None
        except (OSError, orjson.JSONDecodeError, TypeError) as exc:
            self.log.error("outcome.damaged", file=str(self.outcome_file), error=str(exc))
            self.outcome_file.unlink(missing_ok=True)
            return None

    def _refuse(self, view: MessageView, reason: str) -> None:
        """Fail a claimed request without a run (posted by the next housekeeping)."""
        self._keep(self._outcome(view, "failed", reason))

    def _post(self, bridge: Backend, o: Outcome) -> None:
        """Put an outcome on the bridge. Every step is refused when repeated (the request is
        final, or the idempotency key is known), so posting again after a crash is safe —
        and an answer the model already gave with the MCP tool is not given twice."""
        s = self.s
        if o.kind == "answer":
            try:
                sent = bridge.reply(o.request, o.text, sender=s.identity,
                                    metadata={"on_behalf": s.agent, "claude_worker": "answer",
                                              **o.data})
            except StateConflict as exc:
                self.log.info("answer.not_posted", request=o.request, reason=str(exc))
                return
            except NotFound:
                self.log.warning("answer.not_posted", request=o.request, reason="not found")
                return
            self.activity()
            self.log.info("answer.posted", request=o.request, id=sent.id, **o.data)
        elif o.kind == "failed":
            try:
                state = bridge.get(o.request).state
            except NotFound:
                return
            if state.terminal:
                self.log.info("failure.not_posted", request=o.request, status=state.status,
                              reason=o.text)
                return
            bridge.send(f"❌ Could not answer: {o.text}", to=o.requester, type="response",
                        reply_to=o.request,
                        metadata={**o.inherit, "on_behalf": s.agent, "claude_worker": "failed"},
                        idempotency_key=f"failed:{o.request}", sender=s.identity)
            try:
                bridge.fail(o.request, o.text, sender=s.identity)
            except StateConflict:
                pass
            self.record_error(o.text)
            self.log.warning("request.failed", request=o.request, reason=o.text, **o.data)
        elif o.kind == "handback":
            try:
                bridge.release(o.request, reason=o.text, sender=s.identity)
            except (StateConflict, NotFound):
                pass
            self.log.info("request.handed_back", request=o.request)
        else:
            self.log.info("request.dropped", request=o.request, reason=o.text)

    def _progress(self, bridge: Backend, view: MessageView) -> None:
        """"Working on it" for the requester: a notification in the request's thread (Kami
        delivers it to the chat), which leaves the request open."""
        meta = view.message.metadata or {}
        inherit = {k: meta[k] for k in REPLY_INHERITS if k in meta}
        bridge.send(PROGRESS_TEXT, to=view.message.sender, type="notification",
                    reply_to=view.id,
                    metadata={**inherit, "on_behalf": self.s.agent,
                              "claude_worker": "progress"},
                    idempotency_key=f"progress:{view.id}", sender=self.s.identity)

    # -- budget -----------------------------------------------------------------------------------

    def spent_today(self) -> float:
        return self.ledger.spent(COST_KEY) / 1_000_000

    def _over_budget(self, bridge: Backend, view: MessageView, spent: float) -> None:
        budget = self.s.daily_budget_usd
        self.log.warning("budget.spent", request=view.id, spent_usd=round(spent, 6),
                         budget_usd=budget)
        self._refuse(view, f"today's budget for headless Claude Code (${budget:.2f}) is spent "
                           f"(${spent:.2f}); ask again after 00:00 UTC, or from an "
                           "interactive Claude Code session")
        meta: dict[str, Any] = {"claude_worker": "budget", "on_behalf": self.s.agent}
        if self.s.owner_chat:
            meta["whatsapp_sender"] = self.s.owner_chat
        sent = bridge.send(f"💸 The headless Claude Code worker spent today's budget "
                           f"(${spent:.2f} of ${budget:.2f}): requests for {self.s.agent} "
                           "that no interactive session takes are refused until 00:00 UTC.",
                           to=self.s.owner_agent, type="notification", metadata=meta,
                           idempotency_key=f"budget:{self.ledger.day}", sender=self.s.identity)
        if not sent.duplicate:
            self.log.warning("owner.told", about="budget", id=sent.id)

    # -- helpers ----------------------------------------------------------------------------------

    def _once_per(self, rid: str, what: str, event: str, **fields: Any) -> None:
        key = f"{what}:{rid}"
        if key in self._logged:
            return
        self._logged[key] = None
        while len(self._logged) > REMEMBERED:
            self._logged.pop(next(iter(self._logged)))
        self.log.info(event, **fields)

    def _wake_at(self, due: float) -> None:
        """Wake the loop when a deferred request comes of age (wall-clock ``due``)."""
        if self._timer is not None and self._timer.is_alive() and self._timer_at <= due:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = due
        self._timer = threading.Timer(max(0.0, due - time.time()) + 0.01, self.wake_up)
        self._timer.daemon = True
        self._timer.start()

    # -- stopping ---------------------------------------------------------------------------------

    def hand_back(self) -> None:
        """SIGTERM: a run gets ``stop_grace`` to finish; then it is killed and its request
        handed back (taken again at the next start, resuming its session)."""
        job = self.job
        if job is not None:
            if not job.run.finished.wait(self.s.stop_grace):
                job.stopping = True
                job.run.kill("the worker is stopping")
                job.run.finished.wait(job.run.spec.kill_grace + 10.0)
            if job.run.finished.is_set():
                self.job = None
                self._keep(self._finish(job))
            else:
                self.log.error("run.stuck", request=job.view.id)
        if self.outcome is not None and self.bridge is not None:
            try:
                self._post(self.bridge, self.outcome)
            except (BridgeError, OSError) as exc:
                self.log.error("outcome.kept_at_stop", request=self.outcome.request,
                               error=str(exc))
                return
            self.outcome = None
            self.outcome_file.unlink(missing_ok=True)
