"""The ``bridge`` console script.

Three commands are started by other programs rather than typed, and each start
is paid for again and again: ``bridge hook …`` on every Claude Code prompt,
``bridge mcp`` once per session, ``bridge serve --stdio`` by ssh for every
remote connection (a remote hook connects on every prompt). They go straight to
their modules, without importing the CLI framework (typer and rich cost more
than the work). Every other command, and any of these with ``--help`` or an
argument the fast path does not know, is the typer app in cli.py.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def _serve(argv: Sequence[str]) -> int | None:
    """``bridge serve --stdio [--dir DIR] [--idle-timeout S]``; None: let the CLI handle it."""
    args = list(argv[1:])
    directory: str | None = None
    idle_timeout = 60.0
    stdio = False
    while args:
        arg = args.pop(0)
        if arg == "--stdio":
            stdio = True
        elif arg in ("--dir", "--idle-timeout") and args:
            value = args.pop(0)
            if arg == "--dir":
                directory = value
            else:
                try:
                    idle_timeout = float(value)
                except ValueError:
                    return None
                if idle_timeout < 1.0:
                    return None
        else:
            return None
    if not stdio:
        return None
    from pathlib import Path

    from bridge import BridgeError
    from bridge.remote import serve_command

    try:
        return serve_command(Path(directory) if directory else None, idle_timeout=idle_timeout)
    except BridgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def main() -> int:
    argv = sys.argv[1:]
    from bridge.claude import wants_fast_path

    if wants_fast_path(argv):
        from bridge.claude import run_fast_path as claude_main

        return claude_main(argv)
    if argv[:1] == ["serve"]:
        code = _serve(argv)
        if code is not None:
            return code
    from cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
