"""Kaylee, the autonomous worker: named recipes, a cron scheduler, leases, retries, budgets.

Importing this package does nothing; ``kaylee run --config FILE`` runs the agent
(docs/kaylee.md).
"""

from ._config import KayleeConfig
from ._errors import Interrupted, KayleeError, RecipeFailed, RequestRefused

__all__ = ["Interrupted", "KayleeConfig", "KayleeError", "RecipeFailed", "RequestRefused",
           "main"]


def main(argv: list[str] | None = None) -> int:
    """The ``kaylee`` command: ``kaylee run|check-config [--config FILE]``."""
    import sys

    from bridge.runtime import agent_main

    from ._agent import Kaylee

    return agent_main(Kaylee, KayleeConfig, "kaylee", sys.argv[1:] if argv is None else argv)
