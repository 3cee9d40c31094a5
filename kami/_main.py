"""The ``kami`` command: ``kami run [--once] [--config FILE]``, ``kami check-config``."""

from __future__ import annotations

import sys

from bridge.runtime import agent_main

from ._agent import KamiAgent
from ._config import KamiConfig

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    return agent_main(KamiAgent, KamiConfig, "kami", sys.argv[1:] if argv is None else argv)
