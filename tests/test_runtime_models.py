"""Model routes and budgets with the real anthropic SDK against a local Messages API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.runtime import (
    BudgetExhausted,
    Ledger,
    ModelRoute,
    ModelRouter,
    ModelsConfig,
    ModelUnavailable,
    Secret,
)
from bridge.runtime._models import ModelAuthError
from bridge.testing.messages_api import FakeMessagesAPI, text, tool_use

DAY = 1_795_000_000.0  # a fixed "now" for budget days


@pytest.fixture
def api() -> Iterator[FakeMessagesAPI]:
    with FakeMessagesAPI() as server:
        yield server


OPEN: list[ModelRouter] = []


@pytest.fixture(autouse=True)
def _close_routers() -> Iterator[None]:
    yield
    while OPEN:
        OPEN.pop().close()


def router(api: FakeMessagesAPI, tmp_path: Path, *routes: ModelRoute, key: str | None = None,
           timeout: float = 10.0, clock: list[float] | None = None) -> ModelRouter:
    config = ModelsConfig(base_url=api.url, timeout=timeout, retries=0,
                          ledger=tmp_path / "ledger.json",
                          api_key=Secret(key if key is not None else api.api_key),
                          route=routes)
    now = clock if clock is not None else [DAY]
    r = ModelRouter(config, clock=lambda: now[0])
    OPEN.append(r)
    return r


STRONG = ModelRoute("strong", "claude-strong", daily_tokens=20)
CHEAP = ModelRoute("cheap", "claude-cheap", daily_tokens=100_000)


def ask(r: ModelRouter, content: str = "hello there") -> str:
    return r.complete([{"role": "user", "content": content}]).route


def test_the_real_sdk_talks_to_the_fake(api: FakeMessagesAPI, tmp_path: Path) -> None:
    result = router(api, tmp_path, CHEAP).complete(
        [{"role": "user", "content": "ping"}], system="be brief")
    assert result.text == "You said: ping"
    assert result.input_tokens > 0
    headers = {k.lower(): v for k, v in api.requests[0]["headers"].items()}
    assert api.api_key in (headers.get("x-api-key"), headers.get("authorization", "")[7:])
    assert headers["anthropic-version"]
    assert api.requests[0]["body"]["model"] == "claude-cheap"
    assert api.requests[0]["body"]["system"] == "be brief"


def test_a_spent_budget_downgrades_to_the_next_route(api: FakeMessagesAPI, tmp_path: Path) -> None:
    r = router(api, tmp_path, STRONG, CHEAP)
    assert ask(r) == "strong"  # 20-token budget, this call uses more
    assert ask(r) == "cheap"
    assert r.ledger.spent("strong", DAY) > 20
    # A restart reads the ledger: the strong route stays spent for the day.
    again = router(api, tmp_path, STRONG, CHEAP)
    assert ask(again) == "cheap"


def test_a_new_day_restores_the_budget(api: FakeMessagesAPI, tmp_path: Path) -> None:
    clock = [DAY]
    r = router(api, tmp_path, STRONG, CHEAP, clock=clock)
    ask(r)
    assert ask(r) == "cheap"
    clock[0] = DAY + 86_400
    assert ask(r) == "strong"


def test_everything_spent_is_budget_exhausted(api: FakeMessagesAPI, tmp_path: Path) -> None:
    r = router(api, tmp_path, STRONG, ModelRoute("tiny", "claude-tiny", daily_tokens=0))
    ask(r)
    with pytest.raises(BudgetExhausted, match="daily budget"):
        ask(r)


def test_overload_and_timeouts_fall_through(api: FakeMessagesAPI, tmp_path: Path) -> None:
    r = router(api, tmp_path, CHEAP, ModelRoute("backup", "claude-backup"), timeout=1.0)
    api.fail(529, "overloaded_error")
    assert ask(r) == "backup"
    api.delay(3.0)
    assert ask(r) == "backup"
    api.fail(500, "api_error", times=2)
    with pytest.raises(ModelUnavailable, match="InternalServerError 500"):
        ask(r)


def test_a_refused_key_is_a_config_error(api: FakeMessagesAPI, tmp_path: Path) -> None:
    r = router(api, tmp_path, CHEAP, ModelRoute("backup", "claude-backup"), key="wrong-key")
    with pytest.raises(ModelAuthError, match="refused the key"):
        ask(r)
    assert len(api.requests) == 1  # no point trying the other route with the same key


def test_bad_requests_are_not_retried_elsewhere(api: FakeMessagesAPI, tmp_path: Path) -> None:
    r = router(api, tmp_path, CHEAP, ModelRoute("backup", "claude-backup"))
    with pytest.raises(ModelUnavailable, match="roles must alternate"):
        r.complete([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
    assert len(api.requests) == 1


def test_tool_calls_come_back_as_blocks(tmp_path: Path) -> None:
    def responder(body: dict[str, object]) -> object:
        return tool_use("forward_to_claude", {"task": "fix the site"}, preface="On it.")

    with FakeMessagesAPI(responder=responder) as api:  # type: ignore[arg-type]
        r = router(api, tmp_path, CHEAP)
        result = r.complete(
            [{"role": "user", "content": "the site is down"}],
            tools=[{"name": "forward_to_claude", "description": "d",
                    "input_schema": {"type": "object", "properties": {}}}])
        r.close()
    assert result.stop_reason == "tool_use"
    assert result.text == "On it."
    assert [(c["name"], c["input"]) for c in result.tool_calls] == [
        ("forward_to_claude", {"task": "fix the site"})]


def test_no_key_means_unavailable_without_a_call(api: FakeMessagesAPI, tmp_path: Path) -> None:
    config = ModelsConfig(base_url=api.url, route=(CHEAP,))
    r = ModelRouter(config)
    OPEN.append(r)
    assert not r.available
    with pytest.raises(ModelUnavailable, match="no model API key"):
        ask(r)
    assert api.requests == []


def test_ledger_ignores_a_stale_day(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    path.write_text('{"day": "2001-01-01", "used": {"strong": 999}}')
    assert Ledger.load(path).spent("strong") == 0


def test_text_reply_helper() -> None:
    assert text("hi").content == [{"type": "text", "text": "hi"}]
