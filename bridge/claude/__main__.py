"""``python -m bridge.claude hook EVENT …`` and ``python -m bridge.claude mcp …``.

The same commands as ``bridge hook`` and ``bridge mcp``, without the CLI
framework: the headless worker starts the MCP server this way, and the hooks
are cheapest here.
"""

from __future__ import annotations

import sys

from ._entry import run_fast_path

if __name__ == "__main__":
    sys.exit(run_fast_path(sys.argv[1:]))
