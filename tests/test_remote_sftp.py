"""The fallback for a host without the toolkit (``?transport=sftp``), against a real sshd."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

import bridge
from bridge import Bridge, RecordTooLarge, SftpBridge, StateConflict
from tests.conftest import CLI
from tests.helpers import wait_for
from tests.sshd import SSHD


def fallback(server: SSHD, path: Path, **kw: Any) -> SftpBridge:
    # No remote command at all: nothing of the toolkit runs on the host.
    b = bridge.connect(server.url(path, transport="sftp"),
                       **{"agent": "tester", "ssh_config": server.ssh_config,
                          "remote_command": "/nonexistent/bridge", **kw})
    assert isinstance(b, SftpBridge)
    return b


def test_the_fallback_sends_replies_and_reads_like_the_toolkit(sshd: SSHD,
                                                               bridge_dir: Path) -> None:
    with fallback(sshd, bridge_dir) as b:
        mid = b.send("Why is the site slow?", to="claude",
                     metadata={"whatsapp_sender": "972501234567@c.us"}).id
        assert [v.id for v in b.inbox("claude")] == [mid]
        answer = b.reply(mid, "fixed", sender="claude")
        with pytest.raises(StateConflict):
            b.reply(mid, "again", sender="claude")
        again = b.send("x", idempotency_key="k")
        assert b.send("x", idempotency_key="k") == (again.id, again.offset, True)
        with Bridge(bridge_dir) as local:
            first = local.log_path.read_bytes().splitlines()[0]
            assert orjson.loads(first)["t"] == "epoch"  # a new file gets its header
            assert local.get(mid).status() == "done"
            assert local.get(answer.id).message.metadata == {
                "whatsapp_sender": "972501234567@c.us"}
            assert b.tail(3) == local.tail(3)
            assert b.fold().counts(0) == local.fold().counts(0)
        assert b.status().directory == bridge_dir
        assert b.status().extra["transport"] == "sftp"


def test_the_fallback_caps_records_below_one_sftp_request(sshd: SSHD, bridge_dir: Path) -> None:
    with fallback(sshd, bridge_dir) as b:
        with pytest.raises(RecordTooLarge, match="32000-byte limit"):
            b.send("x" * 40_000)
        assert b.send("x" * 31_000).id


def test_the_fallback_takes_the_same_lock_as_local_writers(sshd: SSHD, bridge_dir: Path
                                                           ) -> None:
    n = 60
    with fallback(sshd, bridge_dir, durability="none") as b, \
            Bridge(bridge_dir, agent="local", durability="none") as local:
        local.send("start")

        def remote_writer() -> None:
            for i in range(n):
                b.send(f"{i}:" + "r" * 200, to="sink")

        thread = threading.Thread(target=remote_writer)
        thread.start()
        for i in range(n * 20):
            local.send(f"{i}:" + "l" * 200, to="sink")
        thread.join(120)
    seen: dict[str, list[int]] = {}
    for raw in bridge_dir.joinpath("messages.jsonl").read_bytes().splitlines():
        rec = orjson.loads(raw)
        if rec.get("to") == "sink":
            seen.setdefault(rec["from"], []).append(int(rec["content"].split(":")[0]))
    assert seen == {"tester": list(range(n)), "local": list(range(n * 20))}


def test_a_torn_tail_is_terminated_and_recorded(sshd: SSHD, bridge_dir: Path) -> None:
    with Bridge(bridge_dir, agent="local") as local:
        local.send("whole")
        size = local.log_path.stat().st_size
    fragment = b'{"v":1,"t":"msg","id":"crashed-1"'  # a writer died mid-record
    with open(bridge_dir / "messages.jsonl", "ab") as f:
        f.write(fragment)
    with fallback(sshd, bridge_dir) as b:
        after = b.send("after the crash")
    with Bridge(bridge_dir) as local:
        repair = [e.record for e in local.entries()
                  if isinstance(e, bridge.Entry) and e.record.get("t") == "repair"]
        assert repair and repair[0]["offset"] == size and repair[0]["bytes"] == len(fragment)
        assert local.get(after.id).message.content == "after the crash"
        report = bridge.run_doctor(local)
        assert report.ok and any(f.kind == "torn-repaired" for f in report.findings)


def test_the_fallback_follows_by_polling_and_keeps_a_host_cursor(sshd: SSHD,
                                                                 bridge_dir: Path) -> None:
    # A file written by the seed: no epoch header, so the cursor is tied to the inode.
    bridge_dir.mkdir(mode=0o700)
    (bridge_dir / "messages.jsonl").write_bytes(
        b'{"ts":"2026-11-21T09:00:00Z","from":"kami","type":"request","id":"kami-1",'
        b'"content":"seed","status":"pending","metadata":{}}\n')
    got: list[str] = []
    with fallback(sshd, bridge_dir) as b, Bridge(bridge_dir, agent="local") as local:
        follower = b.follow("kaylee", poll_interval=0.05)
        worker = threading.Thread(target=lambda: follower.run(
            lambda e: got.append(e.record["content"]) if e.kind == "msg" else None),
            daemon=True)
        worker.start()
        local.send("one")
        wait_for(lambda: got == ["seed", "one"], what="polled records")
        follower.stop()
        worker.join(10)
        follower.close()
        cursor = local.cursors.load("kaylee")
        assert cursor is not None
        assert cursor.offset == local.log_path.stat().st_size
        assert cursor.inode == local.log_path.stat().st_ino  # the host's inode, not the copy's
        local.send("two")
        with local.follow("kaylee") as toolkit_follower:  # the toolkit takes over the cursor
            assert [e.record["content"] for e in toolkit_follower.poll()] == ["two"]


def test_pause_and_status_through_the_cli(sshd: SSHD, bridge_dir: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = sshd.home(home)
    cli = CLI(bridge_dir, home)
    url = sshd.url(bridge_dir, transport="sftp")
    assert cli.run("--url", url, "send", "hi", "--to", "claude", env=env).returncode == 0
    assert cli.run("--url", url, "pause", "--reason", "maintenance", env=env).returncode == 0
    status = orjson.loads(cli.ok("status", "--json"))  # read locally
    assert status["paused"] and status["pause"]["reason"] == "maintenance"
    remote = orjson.loads(cli.run("--url", url, "status", "--json", env=env).stdout)
    assert remote["paused"] and remote["counts"] == status["counts"]
    assert cli.run("--url", url, "resume", env=env).returncode == 0
    assert not (bridge_dir / "PAUSE").exists()
    here = cli.ok("inbox", "--for", "claude", "--json")
    there = cli.run("--url", url, "inbox", "--for", "claude", "--json", env=env).stdout
    assert orjson.loads(here) == orjson.loads(there)
    doctor = cli.run("--url", url, "doctor", "--json", env=env)
    assert doctor.returncode == 0 and orjson.loads(doctor.stdout)["ok"]
