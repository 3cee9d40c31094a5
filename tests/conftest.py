"""Shared fixtures: real directories, real processes, the real ``bridge`` entry point."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge import Bridge
from bridge.testing.greenapi import GreenApiSimulator

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def require_tool(name: str) -> str:
    """The path of a system tool; skip without it, except under CI=true (then fail)."""
    path = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists()
                                  else None)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is required under CI=true (make sysdeps installs it)")
        pytest.skip(f"{name} not installed (run make sysdeps)")
    return path


@pytest.fixture
def sim() -> Iterator[GreenApiSimulator]:
    """The Green API simulator on 127.0.0.1 (bridge.testing.greenapi), stopped after."""
    with GreenApiSimulator() as s:
        yield s


@pytest.fixture
def bridge_dir(tmp_path: Path) -> Path:
    return tmp_path / "bridge"


@pytest.fixture
def bridge(bridge_dir: Path) -> Iterator[Bridge]:
    b = Bridge(bridge_dir, agent="tester")
    yield b
    b.close()


class CLI:
    """Runs the installed ``bridge`` console script in a subprocess."""

    def __init__(self, directory: Path, home: Path) -> None:
        self.directory = directory
        self.env = {
            "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(home),
            "BRIDGE_DIR": str(directory),
            "NO_COLOR": "1",
            "LANG": "C.UTF-8",
            "COLUMNS": "200",
        }

    def run(self, *args: str, input: str | bytes | None = None, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        data = input.encode() if isinstance(input, str) else input
        proc = subprocess.run(
            [str(BIN / "bridge"), *args], input=data, capture_output=True,
            env={**self.env, **(env or {})}, timeout=timeout, check=False,
        )
        result = subprocess.CompletedProcess(
            proc.args, proc.returncode, proc.stdout.decode("utf-8", "replace"),
            proc.stderr.decode("utf-8", "replace"),
        )
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def ok(self, *args: str, **kw: object) -> str:
        result = self.run(*args, **kw)  # type: ignore[arg-type]
        assert result.returncode == 0, (args, result.returncode, result.stderr)
        return result.stdout


@pytest.fixture
def cli(bridge_dir: Path, tmp_path: Path) -> CLI:
    home = tmp_path / "home"
    home.mkdir()
    return CLI(bridge_dir, home)


# A real OpenSSH sshd on 127.0.0.1 (tests/sshd.py): `sshd` (shared) and `private_sshd`.
from tests.sshd import private_sshd, sshd  # noqa: E402, F401
