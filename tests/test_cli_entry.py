"""The console script's fast paths: started by other programs, they skip typer and rich."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import BIN

PROBE = """
import sys
sys.argv = ['bridge', *{args!r}]
import cli_entry
try:
    code = cli_entry.main()
finally:
    heavy = [m for m in ('typer', 'rich', 'click', 'httpx', 'mcp', 'anthropic', 'cli',
                         'cli_common') if m in sys.modules]
    sys.stderr.write('HEAVY=' + ','.join(heavy))
"""


def probe(args: list[str], stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-c", PROBE.format(args=args)], input=stdin,
                          capture_output=True, timeout=60, check=False)


def test_serve_over_stdio_does_not_load_the_cli_framework(tmp_path: Path) -> None:
    # The client leaves at once (stdin closed): the server exits 0 after its hello.
    proc = probe(["serve", "--stdio", "--idle-timeout", "5"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.decode().endswith("HEAVY="), proc.stderr
    assert proc.stdout.startswith(b"{"), proc.stdout  # the protocol's first line


def test_serve_with_an_unknown_option_is_the_clis_usage_error() -> None:
    proc = subprocess.run([str(BIN / "bridge"), "serve", "--stdio", "--bogus"],
                          capture_output=True, timeout=60, check=False, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2
    assert b"No such option" in proc.stderr and b"Traceback" not in proc.stderr


def test_a_hook_does_not_load_the_cli_framework(tmp_path: Path) -> None:
    proc = probe(["hook", "prompt", "--url", str(tmp_path)], stdin=b'{"session_id": "x"}')
    assert proc.returncode == 0
    assert proc.stderr.decode().endswith("HEAVY="), proc.stderr
