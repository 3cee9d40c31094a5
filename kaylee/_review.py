"""The ``code-review`` recipe: what changed in a repository since the last review, read by
Claude through the model routes, the review appended to the bridge and summarised to the owner.

The last reviewed commit of each repository is kept in ``reviews.json`` and moves
only once the review is on the bridge, so a review that failed (or whose outcome
waited for the bridge across a restart) is made again next time. The diff is
capped (``max_diff_bytes``); a larger one is reviewed in part and the review says
so. Routes are tried in order (``[code_review] routes``: a strong model, then a
cheaper one); when every route's daily budget is spent the task fails with that
reason, and an overloaded or unreachable API is a retryable failure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.runtime import BudgetExhausted, ModelError, ModelUnavailable

from ._errors import RecipeFailed
from ._git import git
from ._params import one_of
from ._recipe import Recipe, Result, TaskContext

if TYPE_CHECKING:
    from ._config import CodeReviewConfig

__all__ = ["CodeReviewRecipe"]

SYSTEM = (
    "You are a careful senior engineer reviewing a change to a codebase. Point out bugs, "
    "security problems, missing tests and unclear code, most important first, citing files "
    "and lines. Do not restate the change. Begin with one line of at most 200 characters "
    "that starts with 'SUMMARY:' and says whether the change looks safe to ship."
)
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
"""git's id of the empty tree: the base of a first review of a one-commit repository."""


class CodeReviewRecipe(Recipe):
    name = "code-review"
    description = "review the commits since the last review with Claude; summary to WhatsApp"
    idempotent = True

    def __init__(self, config: CodeReviewConfig) -> None:
        self.config = config
        self.repos = {r.name: r for r in config.repo}
        self.params = (one_of("repo", list(self.repos), "which configured repository"),)
        self.configure(config)

    def run(self, task: TaskContext) -> Result:
        repo = self.repos[str(task.params["repo"])]
        task.checkpoint("reading the repository")
        head = git(task, repo.path, "rev-parse", "--verify", f"{repo.ref}^{{commit}}")
        last = task.read_state("reviews").get(repo.name)
        if last == head:
            return Result(f"{repo.name}: no new commits since the last review ({head[:8]})")
        base = None
        if last is not None:
            check = task.run(["git", "-C", str(repo.path), "merge-base", "--is-ancestor", last,
                              head], timeout=60)
            base = last if check.exit_code == 0 else None
        if base is None:
            parent = task.run(["git", "-C", str(repo.path), "rev-parse", "--verify", "--quiet",
                               f"{head}~1"], timeout=60)
            base = parent.output.strip() if parent.ok else EMPTY_TREE
        log = git(task, repo.path, "log", "--oneline", "--no-decorate",
                  f"{base}..{head}" if base != EMPTY_TREE else head, limit=8192)
        stat = git(task, repo.path, "diff", "--stat", base, head, limit=8192)
        diff = git(task, repo.path, "diff", "--no-color", "--no-ext-diff", base, head,
                   limit=self.config.max_diff_bytes)
        commits = len(log.splitlines())
        span = f"{base[:8]}..{head[:8]}" if base != EMPTY_TREE else head[:8]
        if task.dry_run:
            return Result(f"dry run: would review {repo.name} {span} ({commits} commit(s), "
                          f"{len(diff.encode())} bytes of diff); no model was called",
                          output=stat or None)
        task.checkpoint("asking the model")
        task.progress(f"reviewing {repo.name} {span} ({commits} commit(s))")
        prompt = (f"Repository {repo.name}, commits {span}:\n{log}\n\nFiles:\n{stat}\n\n"
                  f"The diff:\n{diff}")
        try:
            answer = task.models().complete([{"role": "user", "content": prompt}], system=SYSTEM,
                                            routes=self.config.routes or None,
                                            max_tokens=self.config.max_tokens)
        except BudgetExhausted as exc:
            raise RecipeFailed(f"every model route's daily token budget is spent ({exc})"
                               ) from None
        except ModelUnavailable as exc:
            raise RecipeFailed(f"the model is unavailable: {exc}", retryable=True) from None
        except ModelError as exc:
            raise RecipeFailed(f"the model call failed: {exc}") from None
        review = answer.text.strip()
        lines = review.splitlines()
        summary = lines[0].removeprefix("SUMMARY:").strip() if lines else "(empty review)"
        header = (f"code review of {repo.name} {span} ({commits} commit(s)) by {answer.route}, "
                  f"{answer.input_tokens + answer.output_tokens} tokens")
        return Result(header, output=review,
                      owner_text=f"🔎 Code review {repo.name} {span}: {summary[:300]}",
                      data={"commit": head, "route": answer.route},
                      after_post=lambda: task.write_state("reviews", repo.name, head))
