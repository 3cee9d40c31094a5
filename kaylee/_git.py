"""git for the built-in recipes: argv lists, no prompts, no pager, errors as RecipeFailed."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ._errors import RecipeFailed

if TYPE_CHECKING:
    from ._recipe import TaskContext

__all__ = ["git"]

GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat", "GIT_ASKPASS": "/bin/false",
           "LC_ALL": "C"}


def git(task: TaskContext, repo: Path, *args: str, timeout: float = 120.0,
        retryable: bool = False, limit: int | None = None) -> str:
    """Run ``git -C repo ARGS`` and return its output (stripped).

    Raises:
        RecipeFailed: git failed; ``retryable`` for commands that touch the network.
    """
    result = task.run(["git", "-C", str(repo), *args], env=GIT_ENV, timeout=timeout,
                      limit=limit, keep_head=True)
    if not result.ok:
        detail = result.output.strip().splitlines()[-1] if result.output.strip() else ""
        raise RecipeFailed(f"git {args[0]} failed ({result.failure(timeout)})"
                           + (f": {detail}" if detail else ""), retryable=retryable,
                           output=result.output or None, output_file=result.output_file)
    return result.output.strip()
