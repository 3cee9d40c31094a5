"""The host side of ``bridge deploy``: runs ON the VPS, with nothing but Python 3.11.

``bridge deploy`` uploads this file, a wheel of the toolkit, the pinned
constraints, the unit files, and the agent's config and credentials into a
staging directory, then runs::

    python3 deploy_host.py --staging DIR --agent kami [--root /] ...

Steps, each reported as one JSON line on stdout:

1. a new release: ``/opt/kami-bridge/releases/<release>/venv`` with the wheel
   installed (``pip install -c constraints.txt``);
2. the unit files into ``/etc/systemd/system``, sysusers.d and tmpfiles.d
   entries, then ``systemd-sysusers`` and ``systemd-tmpfiles --create``;
3. the config (``/etc/kami-bridge/<agent>.toml``, the previous one kept as
   ``.prev``) and the credentials (``/etc/kami-bridge/credentials/<agent>/``,
   0600; every credential the unit loads exists, empty if not given);
4. ``/opt/kami-bridge/current`` switched to the new release (an atomic rename
   of a symlink), ``systemctl daemon-reload``, ``enable``, ``restart``;
5. ``/health`` polled until it says ok (or paused) within the timeout;
6. otherwise: the previous release and config are put back and the agent
   restarted (``rolled-back``), or, on a first install, the agent stopped.

It imports nothing but the standard library: the toolkit may not be on the host
yet. Exit codes: 0 deployed, 2 rolled back, 3 failed with nothing to roll back
to, 4 bad arguments or a step that failed before the switch (nothing changed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

UNIT = "kami-bridge@{agent}.service"
KEEP_RELEASES = 3


def emit(step: str, **fields: object) -> None:
    print(json.dumps({"step": step, **fields}), flush=True)


class StepFailed(Exception):
    """A step failed; the message is the one line the operator sees."""


def run(argv: list[str], what: str, *, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        tail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or [""]
        raise StepFailed(f"{what} failed (exit {result.returncode}): {tail[0][:300]}")


def install_file(src: Path, dest: Path, mode: int) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.new")
    shutil.copyfile(src, tmp)
    os.chmod(tmp, mode)
    os.replace(tmp, dest)


def switch_symlink(link: Path, target: Path) -> None:
    tmp = link.with_name(f".{link.name}.new")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(target)
    os.replace(tmp, link)  # atomic: the unit sees the old release or the new, never neither


def health_status(config: Path, credentials: Path, timeout: float) -> tuple[str, str]:
    """('ok'|'paused'|other, detail) from the agent's /health, per its installed config."""
    try:
        data = tomllib.loads(config.read_text()) if config.exists() else {}
    except tomllib.TOMLDecodeError as exc:
        return "bad-config", str(exc)
    health = data.get("health", {}) if isinstance(data.get("health"), dict) else {}
    port = health.get("port", 8080)
    bind = health.get("bind", "127.0.0.1")
    host = "127.0.0.1" if bind in ("0.0.0.0", "::", "") else bind  # noqa: S104 - compared, not bound
    request = urllib.request.Request(f"http://{host}:{port}/health")
    token_file = credentials / "health-token"
    if token_file.exists() and token_file.read_text().strip():
        request.add_header("Authorization", f"Bearer {token_file.read_text().strip()}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http to our own agent
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            body = json.loads(exc.read())
        except (ValueError, OSError):
            return "down", f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return "down", str(exc)
    status = body.get("status") if isinstance(body, dict) else None
    detail = ""
    if isinstance(body, dict):
        detail = str(body.get("degraded") or (body.get("bridge") or {}).get("error") or "")
    return str(status), detail


def wait_healthy(config: Path, credentials: Path, timeout: float) -> tuple[bool, str]:
    deadline = time.monotonic() + timeout
    status, detail = "down", "no answer yet"
    while time.monotonic() < deadline:
        status, detail = health_status(config, credentials, 2.0)
        if status in ("ok", "paused"):
            return True, status
        time.sleep(0.5)
    return False, f"{status}: {detail}" if detail else status


def one_wheel(staging: Path) -> Path:
    wheels = sorted(staging.glob("*.whl"))
    if len(wheels) != 1:
        raise StepFailed(f"expected one wheel in the staging directory, found {len(wheels)}")
    return wheels[0]


def credential_names(unit_file: Path) -> list[str]:
    names = []
    for line in unit_file.read_text().splitlines():
        if line.startswith("LoadCredential="):
            names.append(line.split("=", 1)[1].split(":", 1)[0])
    return names


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Install a kami-bridge release on this host.")
    p.add_argument("--staging", type=Path, required=True)
    p.add_argument("--agent", required=True)
    p.add_argument("--release", required=True)
    p.add_argument("--root", type=Path, default=Path("/"))
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--systemctl", default="systemctl")
    p.add_argument("--sysusers", default="systemd-sysusers")
    p.add_argument("--tmpfiles", default="systemd-tmpfiles")
    p.add_argument("--health-timeout", type=float, default=60.0)
    p.add_argument("--pip-arg", action="append", default=[])
    p.add_argument("--extra-site", type=Path, default=None,
                   help="add this site-packages to the new venv (offline installs, tests)")
    args = p.parse_args(argv)

    agent, root, staging = args.agent, args.root, args.staging
    if not agent.replace("-", "").replace("_", "").isalnum() or not agent.islower():
        emit("error", message=f"bad agent name {agent!r}")
        return 4
    base = root / "opt/kami-bridge"
    release = base / "releases" / args.release
    current = base / "current"
    etc = root / "etc/kami-bridge"
    creds = etc / "credentials" / agent
    config = etc / f"{agent}.toml"
    unit = UNIT.format(agent=agent)
    previous = current.resolve() if current.is_symlink() else None

    try:
        # 1. the release (nothing on the host changes until the switch in step 4)
        emit("release", path=str(release))
        release.mkdir(parents=True, exist_ok=False)
        venv = release / "venv"
        run([args.python, "-m", "venv", str(venv)], "creating the venv")
        if args.extra_site is not None:
            version = f"python{sys.version_info.major}.{sys.version_info.minor}"
            site = venv / "lib" / version / "site-packages"
            (site / "kami-bridge-extra.pth").write_text(f"{args.extra_site}\n")
        wheel = one_wheel(staging)
        run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
             "--disable-pip-version-check", "-c", str(staging / "constraints.txt"),
             *args.pip_arg, str(wheel)], "installing the toolkit")
        emit("installed", wheel=wheel.name)

        # 2. units, users, directories
        units_dir = root / "etc/systemd/system"
        for f in sorted((staging / "units").iterdir()):
            if f.is_dir() and f.name.endswith(".service.d"):
                for conf in sorted(f.glob("*.conf")):
                    install_file(conf, units_dir / f.name / conf.name, 0o644)
            elif f.suffix in (".service", ".timer"):
                install_file(f, units_dir / f.name, 0o644)
            elif f.suffix == ".sysusers":
                install_file(f, root / "usr/lib/sysusers.d/kami-bridge.conf", 0o644)
            elif f.suffix == ".tmpfiles":
                install_file(f, root / "usr/lib/tmpfiles.d/kami-bridge.conf", 0o644)
        run([args.sysusers], "systemd-sysusers")
        run([args.tmpfiles, "--create"], "systemd-tmpfiles --create")
        emit("units", directory=str(units_dir))

        # 3. config and credentials
        etc.mkdir(parents=True, exist_ok=True)
        staged_config = staging / "config.toml"
        if staged_config.exists():
            if config.exists():
                shutil.copy2(config, config.with_name(config.name + ".prev"))
            install_file(staged_config, config, 0o640)
        creds.mkdir(parents=True, exist_ok=True)
        os.chmod(creds, 0o700)
        staged_creds = staging / "credentials"
        template = staging / "units" / "kami-bridge@.service"
        for name in credential_names(template) if template.exists() else []:
            src = staged_creds / name
            dest = creds / name
            if src.exists():
                install_file(src, dest, 0o600)
            elif not dest.exists():
                dest.touch(mode=0o600)  # LoadCredential= needs the file; empty = not set
        emit("config", config=str(config), credentials=str(creds))
    except (StepFailed, OSError) as exc:
        emit("error", message=str(exc))
        shutil.rmtree(release, ignore_errors=True)
        return 4

    # 4. switch and restart
    try:
        switch_symlink(current, release / "venv")
        run([args.systemctl, "daemon-reload"], "systemctl daemon-reload")
        run([args.systemctl, "enable", unit], f"systemctl enable {unit}")
        run([args.systemctl, "restart", unit], f"systemctl restart {unit}")
        emit("restarted", unit=unit, release=args.release)
        healthy, detail = wait_healthy(config, creds, args.health_timeout)
    except StepFailed as exc:
        healthy, detail = False, str(exc)
    if healthy:
        emit("healthy", status=detail)
        releases = sorted((base / "releases").iterdir(), key=lambda p: p.stat().st_mtime)
        for old in releases[:-KEEP_RELEASES]:
            if old != release and (previous is None or old != previous.parent):
                shutil.rmtree(old, ignore_errors=True)
        return 0

    # 5. roll back
    emit("unhealthy", detail=detail)
    if previous is None:
        subprocess.run([args.systemctl, "stop", unit], capture_output=True, check=False)
        emit("stopped", message="first install did not become healthy; nothing to roll back to")
        return 3
    switch_symlink(current, previous)
    backup = config.with_name(config.name + ".prev")
    if backup.exists():
        os.replace(backup, config)
    subprocess.run([args.systemctl, "restart", unit], capture_output=True, check=False)
    healthy, after = wait_healthy(config, creds, args.health_timeout)
    emit("rolled-back", release=previous.parent.name, healthy=healthy, status=after)
    return 2


if __name__ == "__main__":
    sys.exit(main())
