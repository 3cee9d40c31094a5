"""The command line every agent shares: ``<agent> run``, ``<agent> check-config``.

argparse rather than typer on purpose: an agent is a long-running daemon whose
start-up time and resident memory count (the idle target is 60 MB), and it has
two subcommands.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TypeVar

from .._errors import ConfigError
from ._agent import Agent
from ._config import AgentConfig, load_config
from ._logging import setup_logging

__all__ = ["EXIT_CONFIG", "agent_main"]

EXIT_CONFIG = 78
"""sysexits' EX_CONFIG: the unit files set RestartPreventExitStatus=78, so a bad
configuration stops the service instead of restarting it in a loop."""

C = TypeVar("C", bound=AgentConfig)


def agent_main(agent_cls: type[Agent], config_cls: type[C], name: str,
               argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the agent; returns the process exit code."""
    parser = argparse.ArgumentParser(prog=name, description=f"The {name} agent.")
    sub = parser.add_subparsers(dest="command", required=True)
    for cmd, text in (("run", "run the agent (until SIGTERM, or once with --once)"),
                      ("check-config", "load and validate the configuration, then exit")):
        p = sub.add_parser(cmd, help=text)
        p.add_argument("--config", type=Path, default=None,
                       help=f"TOML file (default: ${name.upper()}_CONFIG, else built-in "
                            "defaults)")
        if cmd == "run":
            p.add_argument("--once", action="store_true",
                           help="do the work that is waiting, then exit (cron, tests)")
    args = parser.parse_args(argv)
    try:
        config = load_config(config_cls, name, args.config)
    except ConfigError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "check-config":
        print(f"{name}: configuration is valid")
        return 0
    setup_logging(config.name, level=config.log.level, file=config.log.file)
    agent = agent_cls(config)
    return agent.run(once=args.once)
