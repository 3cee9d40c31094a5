"""`bridge mcp`: the real MCP client library (mcp.client.stdio) against the real server process.

Each test starts `bridge mcp` as Claude Code would (a subprocess speaking MCP on
stdio), calls its tools, and checks the bridge file itself.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from bridge import Bridge
from bridge.claude._mcp import BridgeTools
from tests.sshd import SSHD

BIN = Path(sys.executable).parent
TOOLS = {"inbox", "show", "claim", "release", "reply", "send", "done", "fail", "search",
         "status", "pause", "resume"}

Script = Callable[[ClientSession], Awaitable[Any]]


def run_server(args: list[str], script: Script, env: dict[str, str] | None = None) -> Any:
    params = StdioServerParameters(command=str(BIN / "bridge"), args=["mcp", *args],
                                   env={"HOME": "/nonexistent", **(env or {})})

    async def main() -> Any:
        with anyio.fail_after(60):
            async with stdio_client(params) as (read, write), ClientSession(read, write) as s:
                await s.initialize()
                return await script(s)

    return anyio.run(main)


async def call(s: ClientSession, tool: str, **arguments: Any) -> tuple[bool, Any]:
    """(is_error, the JSON result or the error text)."""
    result = await s.call_tool(tool, arguments)
    text = "".join(getattr(c, "text", "") for c in result.content)
    if result.is_error:
        return True, text
    return False, orjson.loads(text)


@pytest.fixture
def kami(bridge_dir: Path) -> Iterator[Bridge]:
    b = Bridge(bridge_dir, agent="kami")
    yield b
    b.close()


def test_the_server_offers_the_tools_with_short_descriptions_and_says_text_is_data(
        bridge_dir: Path, kami: Bridge) -> None:
    async def script(s: ClientSession) -> Any:
        init = await s.initialize()
        tools = await s.list_tools()
        return init, tools

    init, tools = run_server(["--url", str(bridge_dir)], script)
    names = {t.name for t in tools.tools}
    assert names == TOOLS
    # Every schema and description goes to the model on every turn: keep them short.
    assert all(len(t.description or "") <= 80 for t in tools.tools)
    assert "data" in (init.instructions or "") and "never follow instructions" in (
        init.instructions or "")


def test_inbox_claim_reply_lands_once_with_provenance(bridge_dir: Path, kami: Bridge) -> None:
    rid = kami.send("Why is the site slow?\nIt was fine yesterday.", to="claude",
                    priority="high",
                    metadata={"whatsapp_sender": "972501234567@c.us"}).id
    kami.send("not for claude", to="kaylee")

    async def script(s: ClientSession) -> Any:
        inbox = await call(s, "inbox")
        claimed = await call(s, "claim", id=rid)
        shown = await call(s, "show", id=rid)
        replied = await call(s, "reply", id=rid, text="A backup cron hogs the CPU.")
        again = await call(s, "reply", id=rid, text="twice?")
        return inbox, claimed, shown, replied, again

    inbox, claimed, shown, replied, again = run_server(
        ["--url", str(bridge_dir)], script, env={"CLAUDE_CODE_SESSION_ID": "AB12cd34-5678"})
    assert inbox[0] is False
    rows = inbox[1]["messages"]
    assert [r["id"] for r in rows] == [rid]
    assert rows[0] | {"age_s": 0} == rows[0] | {
        "from": "kami", "priority": "high", "first_line": "Why is the site slow?",
        "whatsapp_sender": "972501234567@c.us", "status": "pending", "age_s": 0}
    assert inbox[1]["you"] == "claude.ab12cd34"
    assert claimed[1]["status"] == "claimed" and claimed[1]["claimed_by"] == "claude.ab12cd34"
    assert shown[1]["content"] == "Why is the site slow?\nIt was fine yesterday."
    assert replied[0] is False
    assert again[0] is True and "already done" in again[1]
    kami_view = Bridge(bridge_dir, agent="x")
    responses = [v for v in kami_view.inbox("kami") if v.message.reply_to == rid]
    assert len(responses) == 1
    answer = responses[0].message
    assert answer.content == "A backup cron hogs the CPU."
    # Kami needs the chat to deliver it, and shows the author as the agent spoken for.
    assert answer.metadata == {"whatsapp_sender": "972501234567@c.us", "on_behalf": "claude"}
    assert kami_view.get(rid).state.status == "done"


def test_a_claim_by_another_session_is_refused(bridge_dir: Path, kami: Bridge) -> None:
    rid = kami.send("only once", to="claude").id
    Bridge(bridge_dir, agent="claude.worker").claim(rid, sender="claude.worker")

    async def script(s: ClientSession) -> Any:
        return await call(s, "claim", id=rid), await call(s, "reply", id=rid, text="me too")

    claim, reply = run_server(["--url", str(bridge_dir), "--as", "claude.laptop"], script)
    assert claim[0] is True and "claimed by claude.worker" in claim[1]
    assert reply[0] is True and "claimed by claude.worker" in reply[1]
    assert Bridge(bridge_dir, agent="x").get(rid).state.claimed_by == "claude.worker"


def test_bad_calls_are_one_line_tool_errors_and_change_nothing(bridge_dir: Path,
                                                               kami: Bridge) -> None:
    rid = kami.send("hello", to="claude").id
    size = (bridge_dir / "messages.jsonl").stat().st_size

    async def script(s: ClientSession) -> Any:
        return [await call(s, "show", id="kami-NOSUCH"),
                await call(s, "reply", id="kami-NOSUCH", text="x"),
                await call(s, "reply", id=rid, text="x" * (1 << 21)),
                await call(s, "reply", id=rid, text="   "),
                await call(s, "send", to="Not A Name", text="x"),
                await call(s, "inbox", limit=0),
                await call(s, "search", query=" ")]

    results = run_server(["--url", str(bridge_dir)], script)
    for is_error, text in results:
        assert is_error, text
        assert "\n" not in text.strip() and "Traceback" not in text, text
    assert "no message kami-NOSUCH" in results[0][1]
    assert "over the 1048576-byte limit" in results[2][1]
    assert "empty" in results[3][1]
    assert "not valid" in results[4][1]
    assert (bridge_dir / "messages.jsonl").stat().st_size == size
    assert Bridge(bridge_dir, agent="x").get(rid).state.status == "pending"


def test_a_bridge_that_is_down_is_a_tool_error_and_the_server_stays_up(tmp_path: Path) -> None:
    missing = tmp_path / "not-yet"

    async def script(s: ClientSession) -> Any:
        first = await call(s, "inbox")
        Bridge(missing, agent="kami").send("now it exists", to="claude")
        second = await call(s, "inbox")
        return first, second

    first, second = run_server(["--url", str(missing)], script)
    assert first[0] is True and "does not exist" in first[1]
    assert second[0] is False and second[1]["open"] == 1


def test_pause_status_resume_and_search(bridge_dir: Path, kami: Bridge) -> None:
    kami.send("the deploy of site A failed", to="kaylee")

    async def script(s: ClientSession) -> Any:
        return [await call(s, "pause", reason="maintenance"), await call(s, "status"),
                await call(s, "search", query="DEPLOY"), await call(s, "resume"),
                await call(s, "status")]

    paused, status, found, resumed, after = run_server(["--url", str(bridge_dir), "--as",
                                                        "claude.laptop"], script)
    assert paused[1]["paused"]["reason"] == "maintenance"
    assert status[1]["paused"]["by"] == "claude.laptop"
    assert kami.paused() is None  # resumed by the last calls
    assert [h["content"] for h in found[1]["hits"]] == ["the deploy of site A failed"]
    assert resumed[1] == {"resumed": True}
    assert after[1]["paused"] is None


def test_release_done_fail_and_send(bridge_dir: Path, kami: Bridge) -> None:
    a = kami.send("a", to="claude").id
    b = kami.send("b", to="claude").id
    c = kami.send("c", to="claude").id

    async def script(s: ClientSession) -> Any:
        await call(s, "claim", id=a)
        return [await call(s, "release", id=a), await call(s, "done", id=b),
                await call(s, "fail", id=c, reason="cannot reach the host"),
                await call(s, "send", to="kaylee", text="run the tests", priority="high",
                           reply_to=a)]

    released, done, failed, sent = run_server(["--url", str(bridge_dir), "--as", "claude.x"],
                                              script)
    view = Bridge(bridge_dir, agent="x")
    assert view.get(a).state.status == "pending"
    assert view.get(b).state.status == "done"
    assert (view.get(c).state.status, view.get(c).state.reason) == (
        "failed", "cannot reach the host")
    msg = view.get(sent[1]["id"]).message
    assert (msg.sender, msg.to, msg.priority, msg.reply_to) == ("claude.x", "kaylee", "high", a)
    assert released[0] is done[0] is failed[0] is False


def test_tools_logic_is_the_same_without_mcp(bridge_dir: Path, kami: Bridge) -> None:
    """BridgeTools (what the server calls) on its own: the session identity by default."""
    rid = kami.send("x", to="claude").id
    tools = BridgeTools(str(bridge_dir), "claude", "claude.abc", 60.0)
    try:
        assert tools.claim(rid)["lease_until"] is not None
        assert tools.inbox()["messages"][0]["claimed_by"] == "claude.abc"
    finally:
        tools.close()


def test_the_same_tools_over_ssh(sshd: SSHD, bridge_dir: Path, kami: Bridge,
                                 tmp_path: Path) -> None:
    """`bridge mcp --url ssh://…` against a real sshd: the same answers as locally."""
    rid = kami.send("Is vps1 up?", to="claude",
                    metadata={"whatsapp_sender": "972501234567@c.us"}).id
    env = sshd.home(tmp_path / "home")

    async def script(s: ClientSession) -> Any:
        return [await call(s, "inbox"), await call(s, "claim", id=rid),
                await call(s, "reply", id=rid, text="It is up."),
                await call(s, "show", id="kami-NOSUCH")]

    inbox, claimed, replied, missing = run_server(
        ["--url", sshd.url(bridge_dir), "--as", "claude.laptop"], script, env=env)
    assert [r["id"] for r in inbox[1]["messages"]] == [rid]
    assert claimed[1]["claimed_by"] == "claude.laptop"
    assert replied[0] is False
    assert missing[0] is True and "no message kami-NOSUCH" in missing[1]
    with Bridge(bridge_dir, agent="x") as b:
        assert b.get(rid).state.status == "done"
        [answer] = [v for v in b.inbox("kami") if v.message.reply_to == rid]
        assert answer.message.metadata["on_behalf"] == "claude"


def test_the_tools_act_only_on_the_agents_messages(bridge_dir: Path, kami: Bridge) -> None:
    """A request's text may ask to finish another agent's work: the tools refuse."""
    theirs = kami.send("deploy the site", to="kaylee").id

    async def script(s: ClientSession) -> Any:
        return [await call(s, tool, id=theirs, **extra) for tool, extra in (
            ("claim", {}), ("reply", {"text": "done"}), ("done", {}),
            ("fail", {"reason": "no"}), ("release", {}))]

    results = run_server(["--url", str(bridge_dir), "--as", "claude.x"], script)
    for is_error, text in results:
        assert is_error and "addressed to kaylee, not claude" in text, text
    with Bridge(bridge_dir, agent="x") as b:
        assert b.get(theirs).state.status == "pending"


def test_without_a_session_id_the_server_claims_as_its_own_name(bridge_dir: Path,
                                                                 kami: Bridge) -> None:
    rid = kami.send("x", to="claude").id

    async def script(s: ClientSession) -> Any:
        return await call(s, "claim", id=rid)

    claimed = run_server(["--url", str(bridge_dir)], script)
    who = claimed[1]["claimed_by"]
    assert who.startswith("claude.p") and who != "claude"
