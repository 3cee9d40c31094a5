"""A bridge over SSH behaves like the local one: same commands, same output, same guarantees.

Everything here goes through a real sshd on 127.0.0.1 (tests/sshd.py); the
"remote" directory is on this machine, so local and remote views of one bridge
can be compared byte for byte.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

import bridge
from bridge import Bridge, BridgeUnavailable, Entry, InvalidInput, RemoteBridge
from tests.conftest import CLI, require_tool
from tests.helpers import wait_for
from tests.sshd import BRIDGE_COMMAND, SSHD, running_sshd

Run = Callable[..., subprocess.CompletedProcess[str]]


def connect(server: SSHD, path: Path, **kw: Any) -> RemoteBridge:
    b = bridge.connect(server.url(path), **{"agent": "tester", "ssh_config": server.ssh_config,
                                            "remote_command": BRIDGE_COMMAND, **kw})
    assert isinstance(b, RemoteBridge)
    return b


@pytest.fixture
def remote(sshd: SSHD, bridge_dir: Path):
    b = connect(sshd, bridge_dir)
    yield b
    b.close()


class Both:
    """The CLI against one bridge directory, directly and over SSH."""

    def __init__(self, server: SSHD, directory: Path, tmp_path: Path) -> None:
        home = tmp_path / "home"
        self.env = server.home(home)
        self.cli = CLI(directory, home)
        self.url = server.url(directory)

    def local(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.cli.run(*args, **kw)

    def remote(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.cli.run("--url", self.url, *args, env={**self.env, **kw.pop("env", {})},
                            **kw)

    def same(self, *args: str) -> str:
        """Run on both; assert the same exit code, stdout and stderr; return stdout."""
        here, there = self.local(*args), self.remote(*args)
        assert (there.returncode, there.stdout, there.stderr) == \
            (here.returncode, here.stdout, here.stderr), args
        return here.stdout


@pytest.fixture
def both(sshd: SSHD, bridge_dir: Path, tmp_path: Path) -> Both:
    return Both(sshd, bridge_dir, tmp_path)


def test_every_command_gives_the_same_output_remote_and_local(both: Both) -> None:
    high = both.remote("send", "Why is the site slow?", "--from", "kami", "--to", "claude",
                       "--priority", "high", "--meta", "whatsapp_sender=972501234567@c.us")
    assert high.returncode == 0, high.stderr
    mid = high.stdout.strip()
    both.remote("send", "deploy", "--from", "claude", "--to", "kaylee")
    low = both.local("send", "later", "--from", "kami", "--to", "claude", "--priority", "low")
    assert low.returncode == 0
    both.same("tail", "-n", "20")
    both.same("tail", "-n", "20", "--json")
    both.same("tail", "-n", "1", "--from", "claude")
    both.same("inbox", "--for", "claude", "--json")
    both.same("show", mid, "--json")
    both.same("status", "--json")
    both.same("doctor", "--json")
    answer = both.remote("reply", mid, "A cron job was hogging the CPU", "--from", "claude")
    assert answer.returncode == 0, answer.stderr
    shown = orjson.loads(both.same("show", mid, "--json"))
    assert shown["status"] == "done"
    assert shown["thread"][1]["metadata"] == {"whatsapp_sender": "972501234567@c.us"}
    both.same("tail", "-n", "20", "--status", "done")
    both.same("inbox", "--for", "kaylee", "--json")
    stats_here = orjson.loads(both.local("stats", "--json").stdout)
    stats_there = orjson.loads(both.remote("stats", "--json").stdout)
    for stats in (stats_here, stats_there):
        del stats["oldest_open_age_s"]  # the clock moved between the two
    assert stats_here == stats_there


def test_errors_are_the_same_remote_and_local(both: Both) -> None:
    mid = both.remote("send", "x", "--to", "claude").stdout.strip()
    both.remote("done", mid)
    both.same("done", mid)  # exit 4: already done
    assert both.remote("done", mid).returncode == 4
    both.same("show", "kami-nope")  # exit 3
    assert both.remote("show", "kami-nope").returncode == 3
    both.same("send", "x", "--type", "shout")  # exit 5
    both.same("send", "x", "--from", "Not A Name")


def test_pause_and_resume_over_ssh(both: Both) -> None:
    both.remote("send", "hello")
    assert both.remote("pause", "--reason", "deploying", "--by", "owner").returncode == 0
    status = orjson.loads(both.local("status", "--json").stdout)
    assert status["paused"] and status["pause"]["reason"] == "deploying"
    ping = both.remote("ping")
    assert ping.returncode == 0
    assert "PAUSED by owner" in ping.stdout and "deploying" in ping.stdout
    assert "protocol 2" in ping.stdout and "round trip" in ping.stdout
    data = orjson.loads(both.remote("ping", "--json", "-c", "3").stdout)
    assert data["remote"] and data["paused"] and data["rtt_ms"]["count"] == 3
    assert data["version"] == bridge.__version__
    assert both.local("resume").returncode == 0
    assert "running" in both.remote("ping").stdout


def test_tail_follow_over_ssh_prints_new_records_as_they_come(both: Both,
                                                              bridge_dir: Path) -> None:
    with Bridge(bridge_dir, agent="kami") as local:
        local.send("before")
        proc = subprocess.Popen(
            [str(Path(BRIDGE_COMMAND)), "--url", both.url, "tail", "-f", "-n", "1", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**both.cli.env, **both.env})
        try:
            assert proc.stdout is not None
            assert orjson.loads(proc.stdout.readline())["content"] == "before"
            sent = [local.send(f"live {i}").id for i in range(5)]
            got = [orjson.loads(proc.stdout.readline())["id"] for _ in sent]
            assert got == sent
            lines = local.log_path.read_bytes().splitlines(keepends=True)
            proc.send_signal(2)
            _, err = proc.communicate(timeout=10)
            assert proc.returncode == 130 and "Traceback" not in err.decode()
            assert lines[-1] == orjson.dumps(local.get(sent[-1]).message.to_record()) + b"\n"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=10)


def test_send_batch_over_ssh_stops_at_a_bad_line(both: Both, bridge_dir: Path) -> None:
    lines = "".join(orjson.dumps({"content": f"m{i}", "to": "claude"}).decode() + "\n"
                    for i in range(3)) + "not json\n" + '{"content": "never"}\n'
    result = both.remote("send", "--batch", input=lines)
    assert result.returncode == 5
    assert "stdin line 4" in result.stderr and "3 message(s) before it" in result.stderr
    assert len(result.stdout.split()) == 3
    with Bridge(bridge_dir) as local:
        assert [v.message.content for v in local.inbox("claude")] == ["m0", "m1", "m2"]


def test_the_remote_api_is_the_local_one(remote: RemoteBridge) -> None:
    local_only = {"locked", "entries", "writer", "lock", "cursors", "perms"}
    # Not over the wire: holding the host's lock across calls, scanning raw entries,
    # and the host's own writer, lock and cursor objects.
    public = {n for n in dir(Bridge) if not n.startswith("_")} - local_only
    missing = {n for n in public if not hasattr(remote, n)}
    assert not missing
    assert {"ping", "doctor", "stats", "session"} <= set(dir(RemoteBridge))


def test_library_calls_over_ssh(remote: RemoteBridge, bridge_dir: Path) -> None:
    first = remote.send("hi", to="kaylee", idempotency_key="k1", metadata={"context": "c"})
    again = remote.send("hi", to="kaylee", idempotency_key="k1")
    assert again == (first.id, first.offset, True)
    view = remote.claim_next("kaylee")
    assert view is not None and view.id == first.id and view.state.claimed_by == "kaylee"
    remote.release(first.id, sender="kaylee", reason="later")
    claimed = remote.claim(first.id, sender="kaylee", lease=60)
    assert claimed.state.status == "claimed"
    remote.fail(first.id, reason="no", sender="kaylee")
    assert remote.get(first.id).status() == "failed"
    remote.event("deploy", version="1.2")
    offset = remote.append_record({"v": 1, "t": "custom", "id": "x-1", "ts": "2026-01-01T00:00Z"})
    hist = remote.history(first.id)
    assert [c["status"] for c in hist.changes] == ["claimed", "pending", "claimed", "failed"]
    with Bridge(bridge_dir) as local:
        assert local.raw_line(Entry(offset, local.log_path.stat().st_size, {})).startswith(
            b'{"v":1,"t":"custom"')
        assert remote.fold().counts(0) == local.fold().counts(0)
        remote.send("open", to="kaylee")
        assert [s.id for s in remote.fold().inbox("kaylee", 0)] == \
            [s.id for s in local.fold().inbox("kaylee", 0)] != []
        assert remote.status().records == local.status().records
    with pytest.raises(InvalidInput):
        remote.send("x", to="Bad Name")


def test_tail_with_a_filter_pages_back_like_the_local_one(remote: RemoteBridge,
                                                          bridge_dir: Path) -> None:
    with Bridge(bridge_dir, agent="noise") as local:
        local.send("early", sender="rare")
        list(local.send_many({"content": f"n{i}"} for i in range(3000)))
        local.send("late", sender="rare")
        def wanted(rec: dict[str, Any]) -> bool:
            return rec.get("from") == "rare"
        assert remote.tail(5, wanted) == local.tail(5, wanted)
        assert remote.tail(3) == local.tail(3)
        entries, _ = remote.tail(2, wanted)
        assert [e.record["content"] for e in entries] == ["early", "late"]
        assert remote.raw_line(entries[0]) == local.raw_line(entries[0])


def test_send_many_streams_and_stops_at_a_bad_item(remote: RemoteBridge,
                                                   bridge_dir: Path) -> None:
    results = list(remote.send_many(({"content": f"m{i}", "to": "sink"} for i in range(2500)),
                                    chunk=300))
    assert len(results) == 2500 and len({r.id for r in results}) == 2500
    got: list[Any] = []
    items: list[dict[str, Any]] = [{"content": f"b{i}", "to": "sink"} for i in range(2000)]
    items[1499]["content"] = 7  # the 1,500th is bad; chunks of 300 are already in flight
    with pytest.raises(InvalidInput, match=r"^item 1500: "):
        got.extend(remote.send_many(iter(items), chunk=300))
    assert len(got) == 1499
    with Bridge(bridge_dir) as local:
        contents = [v.message.content for v in local.inbox("sink")]
    assert contents[2500:] == [f"b{i}" for i in range(1499)]


def test_a_remote_follower_is_pushed_records_and_keeps_its_cursor_on_the_host(
        remote: RemoteBridge, bridge_dir: Path) -> None:
    received: list[str] = []
    follower = remote.follow("kami", start="end")
    worker = threading.Thread(target=lambda: follower.run(
        lambda e: received.append(e.record.get("content", "")) if e.kind == "msg" else None),
        daemon=True)
    worker.start()
    with Bridge(bridge_dir, agent="claude") as local:
        for i in range(20):
            local.send(f"r{i}")
        wait_for(lambda: len(received) == 20, what="20 records pushed")
        assert received == [f"r{i}" for i in range(20)]
        follower.stop()
        worker.join(10)
        follower.close()
        remote.is_paused()  # a request after the commits: they have been applied
        cursor = local.cursors.load("kami")
        assert cursor is not None and cursor.offset == local.log_path.stat().st_size
        # A local follower with the same consumer name continues where the remote one was.
        local.send("next")
        with local.follow("kami") as again:
            assert [e.record["content"] for e in again.poll()] == ["next"]


def test_two_remote_writers_and_a_local_one_at_once(sshd: SSHD, bridge_dir: Path,
                                                    tmp_path: Path) -> None:
    n = 400
    script = tmp_path / "scripts" / "writer.py"  # not beside bridge/: `import bridge` is ours
    script.parent.mkdir()
    script.write_text(textwrap.dedent(f"""\
        import sys
        import bridge
        name = sys.argv[1]
        b = bridge.connect({sshd.url(bridge_dir)!r}, agent=name, durability="none",
                           ssh_config={str(sshd.ssh_config)!r}, remote_command={BRIDGE_COMMAND!r})
        print("ready", flush=True)
        sys.stdin.readline()
        for i in range({n // 2}):
            b.send(f"{{i}}:" + "x" * 150, to="sink")
        list(b.send_many({{"content": f"{{i}}:" + "y" * 150, "to": "sink"}}
                         for i in range({n // 2}, {n})))
        b.close()
        """))
    Bridge(bridge_dir).close()
    procs = [subprocess.Popen([sys.executable, str(script), f"remote{i}"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for i in range(2)]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        with Bridge(bridge_dir, agent="local", durability="none") as local:
            for i in range(n):
                local.send(f"{i}:" + "z" * 150, to="sink")
        for p in procs:
            p.communicate(timeout=120)
            assert p.returncode == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate(timeout=10)
    seen: dict[str, list[int]] = {}
    for raw in bridge_dir.joinpath("messages.jsonl").read_bytes().splitlines():
        rec = orjson.loads(raw)  # every line whole: a torn one would not parse
        if rec.get("t") == "msg":
            seen.setdefault(rec["from"], []).append(int(rec["content"].split(":")[0]))
    assert seen == {"remote0": list(range(n)), "remote1": list(range(n)),
                    "local": list(range(n))}


def test_a_locked_down_key_serves_only_its_bridge(tmp_path: Path) -> None:
    """The docs' authorized_keys line: command="bridge serve --stdio --dir D",restrict."""
    pinned = tmp_path / "pinned"
    forced = f'command="{BRIDGE_COMMAND} serve --stdio --dir {pinned}",restrict'
    with running_sshd(tmp_path / "sshd", key_options=forced) as server:
        # Whatever command the client asks for, the key runs the pinned server.
        with connect(server, pinned, remote_command="/bin/false") as b:
            assert b.directory == pinned
            assert b.send("ok").id
        with pytest.raises(BridgeUnavailable, match="may open only"):
            connect(server, tmp_path / "elsewhere")
        shell = subprocess.run(
            [require_tool("ssh"), "-F", str(server.ssh_config), "bridgehost", "cat /etc/hostname"],
            capture_output=True, timeout=30, check=False, input=b"")
        assert b"kami-bridge" in shell.stdout  # the banner, not a shell


def test_url_and_dir_options(both: Both, bridge_dir: Path, tmp_path: Path) -> None:
    assert both.local("--url", str(bridge_dir), "send", "via a local url").returncode == 0
    both.same("tail", "-n", "1")
    clash = both.local("--url", both.url, "--dir", str(bridge_dir), "status")
    assert clash.returncode == 5 and "not both" in clash.stderr
    # --dir on the command line beats $BRIDGE_URL from the environment.
    env = {"BRIDGE_URL": "ssh://unreachable.invalid/x"}
    assert both.local("--dir", str(bridge_dir), "status", env=env).returncode == 0
    bad = both.local("--url", "ftp://host/x", "status")
    assert bad.returncode == 5 and "unsupported scheme" in bad.stderr
    local_ping = orjson.loads(both.local("ping", "--json").stdout)
    assert local_ping["remote"] is False and local_ping["rtt_ms"] is None
    expected = f"{bridge_dir}: kami-bridge {bridge.__version__} (local); running"
    assert both.local("ping").stdout.strip() == expected


def test_closing_the_bridge_stops_a_waiting_follower_quietly(sshd: SSHD, bridge_dir: Path,
                                                             caplog: pytest.LogCaptureFixture
                                                             ) -> None:
    b = connect(sshd, bridge_dir)
    follower = b.follow(start="end")
    outcome: list[Any] = []
    worker = threading.Thread(target=lambda: outcome.append(follower.wait()), daemon=True)
    worker.start()
    b.close()
    worker.join(10)
    assert outcome == [[]] and follower.stopped
    assert "resuming" not in caplog.text


def test_closed_connections_release_their_descriptors(sshd: SSHD, bridge_dir: Path) -> None:
    import gc
    import os

    connect(sshd, bridge_dir).close()  # paramiko's one-time imports and caches
    gc.collect()
    before = len(os.listdir("/proc/self/fd"))
    gc.disable()  # what is released must be released by close(), not by the collector
    try:
        for _ in range(5):
            with connect(sshd, bridge_dir) as b:
                b.send("x")
                follower = b.follow(start="end")
                follower.wait(0.05)
                follower.close()
        assert len(os.listdir("/proc/self/fd")) == before
    finally:
        gc.enable()


def test_rotate_and_search_run_on_the_host(both: Both, bridge_dir: Path) -> None:
    """rotate and search exist since the rotation issue: over ssh:// they run on the host."""
    old = both.local("send", "an old finished question", "--from", "kami", "--to", "claude")
    mid = old.stdout.strip()
    both.local("done", mid, "--from", "claude")
    both.local("send", "a question still open", "--from", "kami", "--to", "claude")
    both.same("search", "question", "--json")
    both.same("search", "QUESTION", "-i")
    moved = both.remote("rotate", "--older-than", "0s", "--json")
    assert moved.returncode == 0, moved.stderr
    result = orjson.loads(moved.stdout)
    assert result["rotated"] is True
    assert result["moved_messages"] == 1
    assert both.remote("rotate", "--older-than", "0s", "--json").returncode == 0
    archived = both.same("search", "finished", "--archives", "--json")
    assert orjson.loads(archived)["id"] == mid
    assert both.same("search", "finished", "--json") == ""  # no longer in the live file
    shown = orjson.loads(both.same("show", mid, "--json"))
    assert shown["status"] == "done"
    repair = both.remote("doctor", "--repair")
    assert repair.returncode == 5
    assert "run it on the bridge's host" in repair.stderr


def test_a_commit_made_just_before_closing_reaches_the_host(sshd: SSHD,
                                                            bridge_dir: Path) -> None:
    # A commit is a notification (no reply); closing the bridge right after it must
    # still deliver it, or the next follower under that name is handed the record again.
    with Bridge(bridge_dir, agent="claude") as local:
        for round_ in range(5):
            local.send(f"r{round_}")
            b = connect(sshd, bridge_dir)
            follower = b.follow("kami")
            got = follower.wait(timeout=10)
            assert [e.record.get("content") for e in got if e.kind == "msg"] == [f"r{round_}"]
            follower.commit(got[-1])
            b.close()  # no request after the commit to flush it

            def committed(end: int = got[-1].end) -> bool:
                cursor = local.cursors.load("kami")
                return cursor is not None and cursor.offset == end

            wait_for(committed, what=f"round {round_}'s commit on the host")
