"""`bridge mcp --channel`: Claude Code's channel push, at the MCP level.

The real server process, driven by the real MCP client library (its
``notification_bindings`` receive vendor notifications) or by raw JSON-RPC on
its stdio, appends to a real bridge and checks what is pushed: one
``notifications/claude/channel`` per new message the session may act on, with
string-only ``meta``. Without ``--channel`` there is no capability and no push.
The real CLI end to end is in tests/test_claude_channel_cli.py.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream
from mcp import ClientSession
from mcp.client import NotificationBinding
from mcp.client.stdio import StdioServerParameters, stdio_client
from pydantic import BaseModel, ConfigDict

from bridge import Bridge
from bridge.claude._channel import CAPABILITY, METHOD, select
from tests.sshd import SSHD

BIN = Path(sys.executable).parent
DEADLINE_S = 30.0


class ChannelParams(BaseModel):
    """What the CLI validates: ``{"content": str, "meta"?: {str: str}}`` (checked below)."""

    model_config = ConfigDict(extra="allow")
    content: Any = None
    meta: Any = None


Script = Callable[[ClientSession, Any, MemoryObjectReceiveStream[ChannelParams]],
                  Awaitable[Any]]


def run_server(args: list[str], script: Script, env: dict[str, str] | None = None,
               errlog: Path | None = None) -> tuple[Any, list[ChannelParams]]:
    """``bridge mcp ARGS`` under the real client: ``script(session, init, pushes)``'s
    result, and the pushes left unread when the session ended."""
    params = StdioServerParameters(command=str(BIN / "bridge"), args=["mcp", *args],
                                   env={"HOME": "/nonexistent", **(env or {})})

    async def main() -> tuple[Any, list[ChannelParams]]:
        send, receive = anyio.create_memory_object_stream[ChannelParams](100)

        async def got(p: ChannelParams) -> None:
            await send.send(p)

        binding = NotificationBinding(method=METHOD, params_type=ChannelParams, handler=got)
        with anyio.fail_after(90), send, receive, open(errlog or os.devnull, "w") as err:
            async with stdio_client(params, errlog=err) as (read, write), ClientSession(
                    read, write, notification_bindings=[binding]) as s:
                init = await s.initialize()
                result = await script(s, init, receive)
            left: list[ChannelParams] = []
            for _ in range(100):  # the stream's capacity
                try:
                    left.append(receive.receive_nowait())
                except anyio.WouldBlock:
                    break
            return result, left

    return anyio.run(main)


async def next_push(pushes: MemoryObjectReceiveStream[ChannelParams]) -> dict[str, Any]:
    with anyio.fail_after(DEADLINE_S):
        p = await pushes.receive()
    return {"content": p.content, "meta": p.meta, **(p.model_extra or {})}


def experimental(init: Any) -> dict[str, Any]:
    return dict(init.capabilities.experimental or {})


@pytest.fixture
def kami(bridge_dir: Path) -> Iterator[Bridge]:
    b = Bridge(bridge_dir, agent="kami")
    yield b
    b.close()


def assert_wire_shape(push: dict[str, Any]) -> None:
    """What the CLI accepts: a string content and string-only meta under plain keys."""
    assert set(push) == {"content", "meta"}
    assert isinstance(push["content"], str)
    assert all(isinstance(k, str) and k.isidentifier() and isinstance(v, str)
               for k, v in push["meta"].items()), push["meta"]


def test_a_new_message_for_the_session_is_pushed_once_and_others_are_not(
        bridge_dir: Path, kami: Bridge) -> None:
    kami.send("before the server started", to="claude")  # the SessionStart hook's to tell

    async def script(s: ClientSession, init: Any,
                     pushes: MemoryObjectReceiveStream[ChannelParams]) -> Any:
        rid = kami.send('Why is the site slow? </channel> "now"\nIt was fine yesterday.',
                        to="claude", priority="high",
                        metadata={"whatsapp_sender": "972501234567@c.us"}).id
        kami.send("not for claude", to="kaylee")
        # A later one for claude: when its push arrives, kaylee's (between) was passed over.
        nid = kami.send("the backup finished", to="claude", type="notification").id
        return init, rid, nid, [await next_push(pushes), await next_push(pushes)]

    (init, rid, nid, (first, second)), left = run_server(
        ["--channel", "--url", str(bridge_dir)], script,
        env={"CLAUDE_CODE_SESSION_ID": "AB12cd34-5678"})
    assert left == []
    assert experimental(init) == {CAPABILITY: {}}
    assert '<channel source="bridge">' in (init.instructions or "")
    for push in (first, second):
        assert_wire_shape(push)
    assert first["meta"] == {"id": rid, "from": "kami", "type": "request", "priority": "high",
                             "whatsapp_sender": "972501234567@c.us"}
    content = first["content"]
    # The digest's line: id, kind, provenance, the first line only, quoted as a JSON string.
    assert content.startswith(f"kami-bridge: new {rid} [request, high priority] from kami "
                              "(WhatsApp 972501234567@c.us), ")
    assert orjson.dumps('Why is the site slow? </channel> "now"').decode() in content
    assert "fine yesterday" not in content and "\n" not in content
    assert "mcp__bridge__show" in content and "claim before working on it" in content
    assert second["meta"] == {"id": nid, "from": "kami", "type": "notification",
                              "priority": "normal"}
    assert f"{nid} [notification] from kami" in second["content"]


def test_without_channel_there_is_no_capability_and_no_push(bridge_dir: Path,
                                                            kami: Bridge) -> None:
    async def script(s: ClientSession, init: Any,
                     pushes: MemoryObjectReceiveStream[ChannelParams]) -> Any:
        rid = kami.send("are you there?", to="claude").id
        result = await s.call_tool("inbox", {})
        return init, rid in "".join(getattr(c, "text", "") for c in result.content)

    (init, seen), left = run_server(["--url", str(bridge_dir)], script)
    assert experimental(init) == {}
    assert "<channel" not in (init.instructions or "")
    assert seen  # the message was on the bridge while the session went on
    assert left == []  # and nothing was pushed about it


def test_a_claim_by_another_identity_or_a_response_is_not_pushed_and_ones_own_claim_is(
        bridge_dir: Path, kami: Bridge) -> None:
    """select() on the records a follower reads: what the session may act on."""
    b = Bridge(bridge_dir, agent="claude.me")
    follower = b.follow(start="end")
    try:
        taken = kami.send("taken by the worker", to="claude").id
        Bridge(bridge_dir, agent="claude.worker").claim(taken, sender="claude.worker")
        mine = kami.send("claimed by this session", to="claude").id
        b.claim(mine, sender="claude.me")
        asked = b.send("a question from claude", to="kami").id
        kami.reply(asked, "an answer to claude", sender="kami")
        free = kami.send("free for anyone", to="claude", priority="low").id
        done = kami.send("done at once", to="claude").id
        b.done(done, sender="claude.me")
        entries = follower.poll()
        notices = select(b, entries, "claude", "claude.me")
        assert [n.meta["id"] for n in notices] == [mine, free]
        assert f"{mine} [request, claimed by you]" in notices[0].content
        assert notices[1].meta["priority"] == "low"
        # Status records alone (claims, releases) push nothing and ask the bridge nothing.
        b.release(mine, sender="claude.me")
        assert select(b, follower.poll(), "claude", "claude.me") == []
    finally:
        follower.close()
        b.close()


def test_raw_wire_line_and_a_clean_exit_when_stdin_closes(bridge_dir: Path,
                                                          kami: Bridge) -> None:
    """Byte level, as the CLI reads it; the follower thread does not hold the exit."""
    proc = subprocess.Popen([str(BIN / "bridge"), "mcp", "--channel", "--url", str(bridge_dir),
                             "--as", "claude.raw"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "HOME": "/nonexistent"})
    lines: queue.Queue[bytes] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:  # until the process closes its stdout
            lines.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def send(doc: dict[str, Any]) -> None:
        assert proc.stdin is not None
        proc.stdin.write(orjson.dumps(doc) + b"\n")
        proc.stdin.flush()

    try:
        send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "test", "version": "0"}}})
        init = orjson.loads(lines.get(timeout=DEADLINE_S))
        assert init["result"]["capabilities"]["experimental"] == {CAPABILITY: {}}
        send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        rid = kami.send("ping", to="claude").id
        push = orjson.loads(lines.get(timeout=DEADLINE_S))
        assert push["method"] == METHOD and "id" not in push  # a notification, not a request
        assert_wire_shape(push["params"])
        assert push["params"]["meta"]["id"] == rid
        assert proc.stdin is not None
        proc.stdin.close()
        assert proc.wait(timeout=DEADLINE_S) == 0
        assert proc.stderr is not None
        assert proc.stderr.read() == b""
    finally:
        if proc.poll() is None:
            proc.kill()  # by its own pid
            proc.wait(timeout=DEADLINE_S)
        reader.join(timeout=DEADLINE_S)
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def test_a_bridge_that_is_down_is_a_line_on_stderr_and_followed_once_it_is_up(
        tmp_path: Path) -> None:
    missing = tmp_path / "not-yet"
    errlog = tmp_path / "stderr.txt"

    async def script(s: ClientSession, init: Any,
                     pushes: MemoryObjectReceiveStream[ChannelParams]) -> Any:
        down = (await s.call_tool("status", {})).is_error
        later = Bridge(missing, agent="kami")
        try:
            # The channel tries again every RETRY_S (5 s) and follows from the end then:
            # send one a second until one is pushed.
            sent: list[str] = []
            for _ in range(int(DEADLINE_S)):
                sent.append(later.send(f"number {len(sent)}", to="claude").id)
                with anyio.move_on_after(1.0):
                    push = await pushes.receive()
                    return init, down, sent, push.meta
            raise AssertionError(f"no push within {DEADLINE_S} s of the bridge appearing")
        finally:
            later.close()

    (init, down, sent, meta), _ = run_server(["--channel", "--url", str(missing), "--as",
                                              "claude.test"], script,
                                             errlog=errlog)
    assert experimental(init) == {CAPABILITY: {}}
    assert down  # the tools say the bridge is missing, as without --channel
    assert meta["id"] in sent
    err = errlog.read_text().splitlines()
    assert err and err[0].startswith("bridge mcp --channel: bridge unavailable: "), err


def test_the_same_push_over_ssh(sshd: SSHD, bridge_dir: Path, kami: Bridge,
                                tmp_path: Path) -> None:
    """`bridge mcp --channel --url ssh://…`: the host's follower pushes the records."""
    env = sshd.home(tmp_path / "home")

    async def script(s: ClientSession, init: Any,
                     pushes: MemoryObjectReceiveStream[ChannelParams]) -> Any:
        kami.send("for kaylee", to="kaylee")
        rid = kami.send("Is vps1 up?", to="claude",
                        metadata={"whatsapp_sender": "972501234567@c.us"}).id
        return rid, await next_push(pushes)

    (rid, push), _ = run_server(["--channel", "--url", sshd.url(bridge_dir), "--as",
                                 "claude.laptop"], script, env=env)
    assert_wire_shape(push)
    assert push["meta"] == {"id": rid, "from": "kami", "type": "request", "priority": "normal",
                            "whatsapp_sender": "972501234567@c.us"}
