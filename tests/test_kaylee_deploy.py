"""The deploy recipe against real git repositories made here, and a real /health endpoint.

systemctl is the boundary: ``systemctl`` is a stand-in script that records its
arguments and "restarts" the service by copying the checked-out app file to
where the service's /health reads it. Nothing else is simulated.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bridge import Bridge
from tests.conftest import require_tool
from tests.kaylee_support import answers, outcome, owner_notes, run_once


def git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x", "HOME": str(repo.parent), "PATH": "/usr/bin:/bin"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=env).stdout.strip()


class Site:
    """origin (bare), a developer's clone, the live checkout, the service and its /health."""

    def __init__(self, root: Path) -> None:
        require_tool("git")
        self.root = root
        self.origin, self.dev, self.live = root / "origin.git", root / "dev", root / "live"
        self.run_dir = root / "run"
        self.run_dir.mkdir(parents=True)
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(self.origin)],
                       check=True)
        subprocess.run(["git", "clone", "-q", str(self.origin), str(self.dev)], check=True,
                       capture_output=True)
        git(self.dev, "checkout", "-q", "-b", "main")
        self.commit("v1")
        subprocess.run(["git", "clone", "-q", "-b", "main", str(self.origin), str(self.live)],
                       check=True)
        self.calls = root / "systemctl.calls"
        self.systemctl = root / "systemctl"
        self.systemctl.write_text(f"""#!/bin/sh
echo "$*" >> {self.calls}
case "$1" in
  restart) [ -e {self.run_dir}/fail-restart ] && {{ echo "Job failed" >&2; exit 1; }}
           cp {self.live}/app.txt {self.run_dir}/running.txt ;;
  is-active) echo active ;;
esac
""")
        self.systemctl.chmod(0o755)
        (self.run_dir / "running.txt").write_text((self.live / "app.txt").read_text())
        site = self

        class Health(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def do_GET(self) -> None:
                running = (site.run_dir / "running.txt").read_text()
                broken = "broken" in running
                body = json.dumps({"status": "degraded" if broken else "ok", "agent": "app",
                                   "degraded": "the app is broken" if broken else None})
                self.send_response(503 if broken else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/health"

    def commit(self, content: str, push: bool = True) -> str:
        (self.dev / "app.txt").write_text(content + "\n")
        git(self.dev, "add", "app.txt")
        git(self.dev, "commit", "-q", "-m", f"app {content}")
        if push:
            git(self.dev, "push", "-q", "origin", "main", "--force")
        return git(self.dev, "rev-parse", "HEAD")

    def head(self) -> str:
        return git(self.live, "rev-parse", "HEAD")

    def running(self) -> str:
        return (self.run_dir / "running.txt").read_text().strip()

    def restarts(self) -> list[str]:
        return self.calls.read_text().splitlines() if self.calls.exists() else []

    def config(self, confirm: bool = False, retries: int = 0) -> str:
        return f"""
[deploy]
confirm = {str(confirm).lower()}
retries = {retries}
[[deploy.target]]
name = "site"
repo = "{self.live}"
service = "app.service"
systemctl = ["{self.systemctl}"]
health_url = "{self.health_url}"
health_timeout = "2s"
"""

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path / "site")
    yield s
    s.close()


@pytest.fixture
def kami(tmp_path: Path) -> Iterator[Bridge]:
    b = Bridge(tmp_path / "bridge", agent="kami")
    yield b
    b.close()


def deploy(tmp_path: Path, kami: Bridge, site: Site, text: str = "deploy", **kw: object) -> str:
    rid = kami.send(text, to="kaylee").id
    run_once(tmp_path, site.config(**kw))  # type: ignore[arg-type]
    return rid


def test_a_deploy_pulls_restarts_and_checks_health(tmp_path: Path, site: Site,
                                                   kami: Bridge) -> None:
    old = site.head()
    new = site.commit("v2")
    rid = deploy(tmp_path, kami, site)
    assert kami.get(rid).state.status == "done", kami.get(rid).state.reason
    assert site.head() == new and site.running() == "v2"
    assert site.restarts() == ["restart app.service"]
    content = outcome(kami, rid).message.content
    assert f"deployed site: 1 new commit(s), {old[:8]} → {new[:8]}" in content
    steps = [v.message.content for v in answers(kami, rid, "progress")]
    assert f"⏳ deploy target=site: pulled 1 commit(s): {old[:8]} → {new[:8]}" in steps
    assert "⏳ deploy target=site: restarting app.service" in steps
    assert json.loads((tmp_path / "state" / "deployed.json").read_text()) == {"site": new}
    # Nothing new: nothing is restarted.
    again = deploy(tmp_path, kami, site)
    assert "already deployed" in outcome(kami, again).message.content
    assert site.restarts() == ["restart app.service"]


def test_an_unhealthy_deploy_is_rolled_back(tmp_path: Path, site: Site, kami: Bridge) -> None:
    good = site.commit("v2")
    deploy(tmp_path, kami, site)
    bad = site.commit("v3 broken")
    rid = deploy(tmp_path, kami, site)
    state = kami.get(rid).state
    assert state.status == "failed"
    assert f"deploy of {bad[:8]} failed: not healthy within 2s" in (state.reason or "")
    assert f"rolled back to {good[:8]}, which is running and healthy" in (state.reason or "")
    assert site.head() == good and site.running() == "v2"
    assert site.restarts() == ["restart app.service"] * 3  # good, bad, and back to good
    assert owner_notes(kami) == []  # Kami asked: the answer itself reaches the owner


def test_a_failed_restart_is_rolled_back_too(tmp_path: Path, site: Site, kami: Bridge) -> None:
    old = site.head()
    site.commit("v2")
    (site.run_dir / "fail-restart").touch()
    rid = deploy(tmp_path, kami, site)
    reason = kami.get(rid).state.reason or ""
    assert "restarting app.service failed (systemctl exited with status 1: Job failed)" in reason
    assert site.head() == old
    assert "still not healthy" in reason  # the second restart failed as well


def test_local_changes_are_never_deployed_over(tmp_path: Path, site: Site,
                                               kami: Bridge) -> None:
    site.commit("v2")
    (site.live / "app.txt").write_text("hand edit\n")
    rid = deploy(tmp_path, kami, site)
    assert "has local changes; refusing to deploy over them" in (kami.get(rid).state.reason
                                                                 or "")
    assert (site.live / "app.txt").read_text() == "hand edit\n"
    assert site.restarts() == []


def test_a_rewritten_history_is_not_a_fast_forward(tmp_path: Path, site: Site,
                                                   kami: Bridge) -> None:
    git(site.dev, "reset", "-q", "--hard", "HEAD")
    git(site.dev, "commit", "-q", "--amend", "-m", "rewritten")
    git(site.dev, "push", "-q", "--force", "origin", "main")
    before = site.head()
    rid = deploy(tmp_path, kami, site)
    assert "is not a fast-forward" in (kami.get(rid).state.reason or "")
    assert site.head() == before and site.restarts() == []


def test_a_dry_run_fetches_and_reports_but_changes_nothing(tmp_path: Path, site: Site,
                                                           kami: Bridge) -> None:
    old = site.head()
    new = site.commit("v2")
    rid = deploy(tmp_path, kami, site, "deploy --dry-run")
    content = outcome(kami, rid).message.content
    assert f"1 new commit(s) up to {new[:8]} would be pulled" in content
    assert site.head() == old and site.restarts() == []


def test_a_deploy_cut_short_after_the_pull_is_finished_by_the_next_run(
        tmp_path: Path, site: Site, kami: Bridge) -> None:
    deploy(tmp_path, kami, site)  # v1 recorded as deployed
    new = site.commit("v2")
    git(site.live, "pull", "-q", "--ff-only")  # the pull happened, then Kaylee died
    rid = deploy(tmp_path, kami, site)
    assert f"{new[:8]} (pulled earlier, now restarted)" in outcome(kami, rid).message.content
    assert site.running() == "v2"


def test_an_unreachable_origin_is_a_retryable_failure(tmp_path: Path, site: Site,
                                                      kami: Bridge) -> None:
    git(site.live, "remote", "set-url", "origin", str(tmp_path / "gone.git"))
    rid = deploy(tmp_path, kami, site, retries=1)
    state = kami.get(rid).state
    assert state.status == "pending" and state.not_before is not None
    assert "git fetch failed" in (state.reason or "")


def test_deploys_need_the_owners_confirmation_by_default(tmp_path: Path, site: Site,
                                                        kami: Bridge) -> None:
    site.commit("v2")
    rid = kami.send("deploy", to="kaylee").id
    run_once(tmp_path, site.config().replace("confirm = false\n", ""))
    assert answers(kami, rid, "confirm")
    assert site.restarts() == []
