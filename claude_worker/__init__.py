"""The headless Claude worker: requests for ``claude`` that no interactive session took,
answered by the real Claude Code CLI (``claude -p``), with sessions, budgets and limits.

Importing this package does nothing; ``claude-worker run --config FILE`` runs the agent
(docs/claude-worker.md).
"""

from ._config import ClaudeWorkerConfig, WorkerSettings

__all__ = ["ClaudeWorkerConfig", "WorkerSettings", "main"]


def main(argv: list[str] | None = None) -> int:
    """The ``claude-worker`` command: ``claude-worker run|check-config [--config FILE]``."""
    import sys

    from bridge.runtime import agent_main

    from ._agent import ClaudeWorker

    return agent_main(ClaudeWorker, ClaudeWorkerConfig, "claude-worker",
                      sys.argv[1:] if argv is None else argv)
