"""The ``deploy`` recipe: pull a repository, restart its service, check health, roll back.

Steps, each after a checkpoint (PAUSE waits, a stop interrupts):

1. refuse a working tree with local changes (nothing of someone's work is overwritten);
2. ``git fetch REMOTE BRANCH`` (a network failure is retryable);
3. ``git merge --ff-only FETCH_HEAD`` — never a merge commit, never a forced reset
   onto someone else's history;
4. ``systemctl restart SERVICE`` (``systemctl`` is configurable: ``["sudo", "-n",
   "systemctl"]``; tests put a stand-in there);
5. wait for the service's ``/health`` to say ok (or ``systemctl is-active`` without a URL);
6. on a failed restart or health check: ``git reset --hard`` back to the last good
   commit, restart again, check again, and fail saying what happened.

It is idempotent by design: the last commit that passed its health check is kept
in ``deployed.json``, so a deploy interrupted between the pull and the restart
finds "pulled but not yet deployed" when it runs again and finishes the job.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from bridge.runtime import check_peer

from ._errors import RecipeFailed
from ._git import git
from ._params import one_of
from ._recipe import Recipe, Result, TaskContext

if TYPE_CHECKING:
    from ._config import DeployConfig, DeployTarget

__all__ = ["DeployRecipe"]

HEALTHY = ("ok", "slow", "paused")


class DeployRecipe(Recipe):
    name = "deploy"
    description = "pull a repository, restart its service, check its health, roll back on failure"
    idempotent = True

    def __init__(self, config: DeployConfig) -> None:
        self.config = config
        self.targets = {t.name: t for t in config.target}
        self.params = (one_of("target", list(self.targets), "which configured target"),)
        self.configure(config)

    def run(self, task: TaskContext) -> Result:
        target = self.targets[str(task.params["target"])]
        repo = target.repo
        t = target.command_timeout
        task.checkpoint("checking the working tree")
        dirty = git(task, repo, "status", "--porcelain", "--untracked-files=no", timeout=t)
        if dirty:
            raise RecipeFailed(f"{repo} has local changes; refusing to deploy over them:\n"
                               f"{dirty[:500]}")
        old = git(task, repo, "rev-parse", "HEAD", timeout=t)
        task.checkpoint(f"fetching {target.remote}/{target.branch}")
        git(task, repo, "fetch", "--quiet", target.remote, target.branch, timeout=t,
            retryable=True)
        new = git(task, repo, "rev-parse", "FETCH_HEAD", timeout=t)
        incoming = git(task, repo, "log", "--oneline", f"{old}..{new}", timeout=t)
        count = len(incoming.splitlines())
        deployed = task.read_state("deployed").get(target.name)
        if task.dry_run:
            return Result(f"dry run: {target.name} is at {old[:8]}; {count} new commit(s) up "
                          f"to {new[:8]} would be pulled and {target.service} restarted; "
                          "nothing was changed", output=incoming or None)
        if new == old and deployed == old:
            return Result(f"{target.name} is already deployed at {old[:8]}; nothing to do")
        if new != old:
            task.checkpoint("pulling")
            ancestor = task.run(["git", "-C", str(repo), "merge-base", "--is-ancestor", old, new],
                                timeout=t)
            if ancestor.exit_code != 0:
                raise RecipeFailed(f"{target.remote}/{target.branch} ({new[:8]}) is not a "
                                   f"fast-forward of {old[:8]}; refusing to deploy it")
            git(task, repo, "merge", "--ff-only", "--quiet", new, timeout=t)
            task.progress(f"pulled {count} commit(s): {old[:8]} → {new[:8]}")
        good = deployed if deployed is not None else old
        problem = self._restart_and_check(task, target, "restarting")
        if problem is None:
            task.write_state("deployed", target.name, new)
            what = f"{count} new commit(s), {old[:8]} → {new[:8]}" if new != old else \
                f"{new[:8]} (pulled earlier, now restarted)"
            return Result(f"deployed {target.name}: {what}; {target.service} restarted and "
                          "healthy", output=incoming or None, data={"commit": new})
        # Roll back: the tree was clean, so this only undoes what was pulled.
        task.progress(f"{problem}; rolling back to {good[:8]}")
        git(task, repo, "reset", "--hard", "--quiet", good, timeout=t)
        again = self._restart_and_check(task, target, "restarting the previous version",
                                        interruptible=False)
        if again is None:
            raise RecipeFailed(f"deploy of {new[:8]} failed: {problem}; rolled back to "
                               f"{good[:8]}, which is running and healthy")
        raise RecipeFailed(f"deploy of {new[:8]} failed: {problem}; rolled back to {good[:8]} "
                           f"but the service is still not healthy: {again}")

    def _restart_and_check(self, task: TaskContext, target: DeployTarget, step: str,
                           *, interruptible: bool = True) -> str | None:
        """Restart and wait for health; None when healthy, else what went wrong."""
        if interruptible:
            task.checkpoint(step)
        task.progress(f"{step} {target.service}")
        restart = task.run([*target.systemctl, "restart", target.service],
                           timeout=target.command_timeout)
        if not restart.ok:
            lines = restart.output.strip().splitlines()
            detail = f": {lines[-1]}" if lines else ""
            return f"restarting {target.service} failed ({restart.failure(0)}{detail})"
        return self._wait_healthy(task, target)

    def _wait_healthy(self, task: TaskContext, target: DeployTarget) -> str | None:
        deadline = time.monotonic() + target.health_timeout
        last = "no answer yet"
        if target.health_url is None:
            while True:
                result = task.run([*target.systemctl, "is-active", target.service], timeout=30)
                state = result.output.strip()
                if result.ok and state == "active":
                    return None
                last = f"{target.service} is {state or 'not active'}"
                if time.monotonic() >= deadline:
                    return last
                task.stop.wait(1.0)
        import httpx

        with httpx.Client() as client:
            while True:
                check = check_peer(client, target.name, target.health_url,
                                   timeout=min(5.0, target.health_timeout), slow=5.0)
                if check.state in HEALTHY:
                    task.log.info("deploy.healthy", task=task.task_id, target=target.name,
                                  detail=check.detail)
                    return None
                last = f"health check: {check.state}, {check.detail}"
                if time.monotonic() >= deadline:
                    return f"not healthy within {target.health_timeout:g}s ({last})"
                task.stop.wait(1.0)
