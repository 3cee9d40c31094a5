"""``bridge deploy HOST --agent NAME``: put an agent on a VPS, or upgrade it, safely.

The local half: build a wheel of this checkout (or take one), upload it over
SFTP with the pinned constraints, the unit files, the agent's config and its
credentials into a fresh staging directory on the host, run the host half
(:mod:`bridge.runtime.deploy_host`, standard library only) and relay its
progress. The host half installs a new release beside the old one, switches,
restarts, waits for ``/health`` to say ok and rolls back when it does not.
The connection follows the bridge's SSH rules: host keys are verified.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import BridgeError, ConfigError, InvalidInput
from .._version import __version__
from ..format import validate_agent_name
from ._remote_exec import RemoteHost

__all__ = ["DeployFailed", "DeployPlan", "DeployResult", "build_wheel", "deploy"]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
HOST_SCRIPT = Path(__file__).with_name("deploy_host.py")

OUTCOMES = {0: "deployed", 2: "rolled-back", 3: "failed", 4: "not-installed"}


class DeployFailed(BridgeError):
    """The new release did not come up; the message says what was done about it."""

    exit_code = 1


@dataclass(frozen=True)
class DeployPlan:
    """What to deploy where. Paths are on this machine unless noted."""

    agent: str
    wheel: Path | None = None
    config: Path | None = None
    credentials: Path | None = None
    units: Path = PROJECT_ROOT / "systemd"
    constraints: Path = PROJECT_ROOT / "constraints.txt"
    root: str = "/"
    """The host's filesystem root to install under (tests install under a directory)."""
    python: str = "python3"
    systemctl: str = "systemctl"
    sysusers: str = "systemd-sysusers"
    tmpfiles: str = "systemd-tmpfiles"
    health_timeout: float = 60.0
    pip_args: tuple[str, ...] = ()
    extra_site: str | None = None
    sudo: bool = False
    release: str = field(default_factory=lambda: f"{__version__}-{time.strftime('%Y%m%dT%H%M%S')}")

    def validate(self) -> None:
        validate_agent_name(self.agent)
        for name, path in (("config", self.config), ("credentials", self.credentials),
                           ("wheel", self.wheel)):
            if path is not None and not path.exists():
                raise ConfigError(name, f"{path} does not exist")
        if not (self.units / "kami-bridge@.service").is_file():
            raise ConfigError("units", f"{self.units} has no kami-bridge@.service (deploy from "
                                       "a checkout of the project, or pass --units)")
        if not self.constraints.is_file():
            raise ConfigError("constraints", f"{self.constraints} does not exist")


@dataclass(frozen=True)
class DeployResult:
    """How a deploy ended, with the host's step-by-step report."""

    host: str
    agent: str
    release: str
    outcome: str
    steps: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "agent": self.agent, "release": self.release,
                "outcome": self.outcome, "steps": self.steps}


def build_wheel(source: Path = PROJECT_ROOT) -> Path:
    """A wheel of the toolkit from a checkout (``pip wheel --no-deps``)."""
    out = Path(tempfile.mkdtemp(prefix="kami-bridge-wheel-"))
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                             "--disable-pip-version-check", "-w", str(out), str(source)],
                            capture_output=True, text=True, check=False)
    wheels = sorted(out.glob("*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        last = (result.stderr.strip().splitlines() or ["no wheel was built"])[-1]
        raise BridgeError(f"building the wheel failed: {last}")
    return wheels[0]


def _stage(remote: RemoteHost, plan: DeployPlan, wheel: Path, staging: str) -> None:
    remote.run(["mkdir", "-p", f"{staging}/units", f"{staging}/credentials"]).check(
        "creating the staging directory")
    remote.put(HOST_SCRIPT.read_bytes(), f"{staging}/deploy_host.py", 0o600)
    remote.put(wheel.read_bytes(), f"{staging}/{wheel.name}", 0o600)
    remote.put(plan.constraints.read_bytes(), f"{staging}/constraints.txt", 0o600)
    for unit in sorted(plan.units.iterdir()):
        if unit.is_file() and unit.suffix in (".service", ".timer", ".sysusers", ".tmpfiles"):
            remote.put(unit.read_bytes(), f"{staging}/units/{unit.name}", 0o644)
        elif unit.is_dir() and unit.name.endswith(".service.d"):
            # Drop-ins (kami-bridge@claude-worker.service.d/claude.conf): one agent's
            # changes to the shared template.
            remote.run(["mkdir", "-p", f"{staging}/units/{unit.name}"]).check(
                "creating the staging directory")
            for conf in sorted(unit.glob("*.conf")):
                remote.put(conf.read_bytes(), f"{staging}/units/{unit.name}/{conf.name}", 0o644)
    if plan.config is not None:
        remote.put(plan.config.read_bytes(), f"{staging}/config.toml", 0o600)
    if plan.credentials is not None:
        for cred in sorted(plan.credentials.iterdir()):
            if cred.is_file():
                validate_agent_name(cred.name, "credential name")
                remote.put(cred.read_bytes(), f"{staging}/credentials/{cred.name}", 0o600)


def deploy(remote: RemoteHost, plan: DeployPlan,
           on_step: Callable[[dict[str, Any]], object] | None = None) -> DeployResult:
    """Deploy ``plan`` to ``remote``; raise DeployFailed unless it ended healthy.

    Raises:
        ConfigError: a missing file (before anything is sent).
        DeployFailed: the host half did not deploy (rolled back, stopped, or failed early).
    """
    plan.validate()
    wheel = plan.wheel or build_wheel()
    made = remote.run(["mktemp", "-d", "-t", "kami-bridge-deploy.XXXXXXXX"]).check(
        "creating a staging directory")
    staging = made.stdout.strip()
    if not staging.startswith("/"):
        raise DeployFailed(f"the host gave an odd staging directory {staging!r}")
    steps: list[dict[str, Any]] = []
    try:
        _stage(remote, plan, wheel, staging)
        argv: list[str] = [
            *(["sudo", "-n"] if plan.sudo else []), plan.python, f"{staging}/deploy_host.py",
            "--staging", staging, "--agent", plan.agent, "--release", plan.release,
            "--root", plan.root, "--python", plan.python, "--systemctl", plan.systemctl,
            "--sysusers", plan.sysusers, "--tmpfiles", plan.tmpfiles,
            "--health-timeout", str(plan.health_timeout),
        ]
        for arg in plan.pip_args:
            argv += ["--pip-arg", arg]
        if plan.extra_site:
            argv += ["--extra-site", plan.extra_site]
        result = remote.run(argv, timeout=plan.health_timeout * 2 + 600)
        for line in result.stdout.splitlines():
            try:
                step = json.loads(line)
            except ValueError:
                continue
            if isinstance(step, dict):
                steps.append(step)
                if on_step is not None:
                    on_step(step)
    finally:
        remote.run(["rm", "-rf", "--", staging])
    outcome = OUTCOMES.get(result.status, "failed")
    if result.status != 0:
        last = next((s for s in reversed(steps) if s.get("step") in
                     ("error", "rolled-back", "stopped", "unhealthy")), None)
        detail = last.get("message") or last.get("detail") or last.get("status") if last else \
            (result.stderr.strip().splitlines() or [f"exit {result.status}"])[-1]
        what = {"rolled-back": "the new release did not become healthy and the previous one "
                               "was restored",
                "failed": "the new release did not become healthy; it was stopped (no "
                          "previous release to go back to)",
                "not-installed": "nothing was changed"}.get(outcome, "the deploy failed")
        raise DeployFailed(f"{what}: {detail}")
    return DeployResult(remote.host, plan.agent, plan.release, outcome, steps)


def parse_pip_args(values: Sequence[str]) -> tuple[str, ...]:
    """``--pip-arg "--index-url URL"`` may carry several words."""
    out: list[str] = []
    for value in values:
        out += shlex.split(value)
    for arg in out:
        if arg in ("-r", "--requirement", "-e", "--editable"):
            raise InvalidInput(f"--pip-arg {arg} is not allowed: the release installs one wheel")
    return tuple(out)
