"""The code-review recipe: a git repository made here, the real anthropic SDK against the fake
Messages API, route fallback, and daily budgets that survive a restart."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge import Bridge
from bridge.testing.messages_api import FakeMessagesAPI, Reply, text
from tests.conftest import require_tool
from tests.kaylee_support import OWNER_CHAT, outcome, owner_notes, run_once


def git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x", "HOME": str(repo.parent), "PATH": "/usr/bin:/bin"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=env).stdout.strip()


def reviewer(body: dict[str, Any]) -> Reply:
    return text("SUMMARY: safe to ship, one nit\n- app.py: `total` is never used")


@pytest.fixture
def api() -> Iterator[FakeMessagesAPI]:
    with FakeMessagesAPI(responder=reviewer) as fake:
        yield fake


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    require_tool("git")
    path = tmp_path / "app"
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    commit(path, "app.py", "print('first version')\n")
    return path


def commit(repo: Path, name: str, content: str) -> str:
    (repo / name).write_text(content)
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", f"change {name}")
    return git(repo, "rev-parse", "HEAD")


def config(api: FakeMessagesAPI, repo: Path, *, strong: int = 100_000, cheap: int = 100_000,
           retries: int = 0) -> str:
    return f"""
[models]
base_url = "{api.url}"
retries = 0
timeout = "10s"
[[models.route]]
name = "strong"
model = "claude-strong"
daily_tokens = {strong}
[[models.route]]
name = "cheap"
model = "claude-cheap"
daily_tokens = {cheap}
[code_review]
routes = ["strong", "cheap"]
retries = {retries}
[[code_review.repo]]
name = "app"
path = "{repo}"
"""


@pytest.fixture
def kami(tmp_path: Path) -> Iterator[Bridge]:
    b = Bridge(tmp_path / "bridge", agent="kami")
    yield b
    b.close()


def review(tmp_path: Path, kami: Bridge, api: FakeMessagesAPI, repo: Path,
           request: str = "code-review", **kw: Any) -> str:
    rid = kami.send(request, to="kaylee").id
    run_once(tmp_path, config(api, repo, **kw),
             env={"KAYLEE_ANTHROPIC_API_KEY": api.api_key})
    return rid


def prompt(api: FakeMessagesAPI, index: int = -1) -> str:
    return str(api.requests[index]["body"]["messages"][0]["content"])


def test_a_review_goes_to_the_bridge_and_its_summary_to_the_owner(
        tmp_path: Path, kami: Bridge, api: FakeMessagesAPI, repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    rid = review(tmp_path, kami, api, repo)
    assert kami.get(rid).state.status == "done"
    content = outcome(kami, rid).message.content
    assert content.startswith(f"✅ code-review repo=app: code review of app {head[:8]} "
                              "(1 commit(s)) by strong")
    assert "`total` is never used" in content
    body = api.requests[-1]["body"]
    assert body["model"] == "claude-strong" and "SUMMARY:" in body["system"]
    assert "+print('first version')" in prompt(api)
    [note] = owner_notes(kami)
    assert note.message.content == f"🔎 Code review app {head[:8]}: safe to ship, one nit"
    assert note.message.metadata["whatsapp_sender"] == OWNER_CHAT
    assert json.loads((tmp_path / "state" / "reviews.json").read_text()) == {"app": head}


def test_the_next_review_covers_only_what_changed_since(
        tmp_path: Path, kami: Bridge, api: FakeMessagesAPI, repo: Path) -> None:
    first = git(repo, "rev-parse", "HEAD")
    review(tmp_path, kami, api, repo)
    commit(repo, "app.py", "print('second version')\n")
    head = commit(repo, "util.py", "total = 0\n")
    rid = review(tmp_path, kami, api, repo)
    asked = prompt(api)
    assert f"commits {first[:8]}..{head[:8]}" in asked
    assert "+print('second version')" in asked and "+total = 0" in asked
    assert "+print('first version')" not in asked
    assert "(2 commit(s))" in outcome(kami, rid).message.content
    calls = len(api.requests)
    rid = review(tmp_path, kami, api, repo)  # nothing new: the model is not asked
    assert "no new commits since the last review" in outcome(kami, rid).message.content
    assert len(api.requests) == calls


def test_an_overloaded_strong_model_falls_back_to_the_cheaper_route(
        tmp_path: Path, kami: Bridge, api: FakeMessagesAPI, repo: Path) -> None:
    api.fail(529, "overloaded_error", "Overloaded")
    rid = review(tmp_path, kami, api, repo)
    assert "by cheap" in outcome(kami, rid).message.content
    assert [r["body"]["model"] for r in api.requests] == ["claude-strong", "claude-cheap"]


def test_budgets_downgrade_then_fail_and_survive_a_restart(
        tmp_path: Path, kami: Bridge, api: FakeMessagesAPI, repo: Path) -> None:
    small: dict[str, Any] = {"strong": 50, "cheap": 50}
    review(tmp_path, kami, api, repo, **small)  # one call: the strong route's day is spent
    ledger = json.loads((tmp_path / "state" / "ledger.json").read_text())
    assert ledger["used"]["strong"] > 50 and "cheap" not in ledger["used"]
    commit(repo, "app.py", "print('second')\n")
    rid = review(tmp_path, kami, api, repo, **small)  # a new Kaylee: the ledger is read back
    assert "by cheap" in outcome(kami, rid).message.content
    commit(repo, "app.py", "print('third')\n")
    calls = len(api.requests)
    rid = review(tmp_path, kami, api, repo, **small)
    state = kami.get(rid).state
    assert state.status == "failed"
    assert "every model route's daily token budget is spent" in (state.reason or "")
    assert "strong: daily budget of 50 tokens spent" in (state.reason or "")
    assert len(api.requests) == calls  # no call was made over budget


def test_an_unavailable_api_is_retried_later(tmp_path: Path, kami: Bridge,
                                              api: FakeMessagesAPI, repo: Path) -> None:
    api.fail(529, "overloaded_error", "Overloaded", times=2)
    rid = review(tmp_path, kami, api, repo, retries=1)
    state = kami.get(rid).state
    assert state.status == "pending" and state.not_before is not None
    assert "the model is unavailable" in (state.reason or "")
    assert not (tmp_path / "state" / "reviews.json").exists()  # not reviewed: not remembered


def test_a_dry_run_calls_no_model(tmp_path: Path, kami: Bridge, api: FakeMessagesAPI,
                                  repo: Path) -> None:
    rid = review(tmp_path, kami, api, repo, request="code-review --dry-run")
    assert "no model was called" in outcome(kami, rid).message.content
    assert api.requests == []
