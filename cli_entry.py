"""The ``bridge`` console script.

``bridge hook …`` runs on every Claude Code prompt and ``bridge mcp`` lives as
long as a session: both go to :mod:`bridge.claude` directly, without importing
the CLI framework (typer and rich cost more than the hook's own work). Every
other command is the typer app in cli.py.
"""

from __future__ import annotations

import sys


def main() -> int:
    argv = sys.argv[1:]
    from bridge.claude._entry import wants_fast_path

    if wants_fast_path(argv):
        from bridge.claude._entry import main as claude_main

        return claude_main(argv)
    from cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
