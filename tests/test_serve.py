"""``bridge serve --stdio`` spoken to directly, as a subprocess: the line protocol's server side."""

from __future__ import annotations

import os
import queue
import select
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from bridge import Bridge, Entry
from bridge.remote._wire import MAX_REQUEST, LineSplitter, Oversized, request_id_of
from tests.conftest import BIN
from tests.helpers import wait_for


class Raw:
    """A ``bridge serve --stdio`` process and its two pipes."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [str(BIN / "bridge"), "serve", "--stdio", *args], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, "NO_COLOR": "1", **(env or {})})
        self._buf = b""
        self.banner = self.read()

    def write(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, obj: Any) -> None:
        self.write(orjson.dumps(obj) + b"\n")

    def read(self, timeout: float = 10) -> dict[str, Any]:
        """The next line from the server; queue.Empty if none comes within ``timeout``."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise queue.Empty
            data = os.read(fd, 1 << 16)
            assert data, f"server closed stdout; stderr: {self.stderr()}"
            self._buf += data
        line, _, self._buf = self._buf.partition(b"\n")
        obj: dict[str, Any] = orjson.loads(line)
        return obj

    def call(self, rid: int, op: str, **args: Any) -> dict[str, Any]:
        self.send({"id": rid, "op": op, "args": args})
        reply = self.read()
        while "ev" in reply:  # pushed records are not the reply
            reply = self.read()
        assert reply["id"] == rid, reply
        return reply

    def hello(self, directory: Path, **kw: Any) -> dict[str, Any]:
        return self.call(0, "hello", version=1, dir=str(directory), agent="tester", **kw)

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode()

    def close(self) -> int:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        return self.proc.wait(10)

    def dispose(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None and not pipe.closed:
                try:
                    pipe.close()
                except BrokenPipeError:
                    pass


def _contents(directory: Path) -> list[str]:
    with Bridge(directory) as local:
        return [e.record["content"] for e in local.entries()
                if isinstance(e, Entry) and e.record.get("t") == "msg"]


@pytest.fixture
def servers():
    """Starts ``bridge serve`` processes; each is killed by its PID and its pipes closed."""
    started: list[Raw] = []

    def start(*args: str) -> Raw:
        started.append(Raw(*args))
        return started[-1]

    yield start
    for server in started:
        server.dispose()


@pytest.fixture
def raw(servers) -> Raw:
    return servers()


def test_banner_then_hello_opens_the_named_bridge(raw: Raw, bridge_dir: Path) -> None:
    assert raw.banner["ev"] == "hello"
    assert raw.banner["protocol"] == "kami-bridge"
    assert raw.banner["versions"].count(1) == 1  # the version this client speaks
    reply = raw.hello(bridge_dir)
    assert reply["ok"]["dir"] == str(bridge_dir)
    assert reply["ok"]["version"] == 1
    sent = raw.call(1, "send", content="over the wire", to="claude", sender="kami")["ok"]
    with Bridge(bridge_dir) as local:
        view = local.get(sent[0])
        assert view.message.content == "over the wire"
        assert view.state.offset == sent[1]
    assert raw.close() == 0


def test_requests_before_hello_and_unknown_versions_are_refused(raw: Raw, bridge_dir: Path
                                                                ) -> None:
    before = raw.call(1, "send", content="x")
    assert before["err"]["type"] == "InvalidInput"
    assert "hello" in before["err"]["message"]
    wrong = raw.call(2, "hello", version=99, dir=str(bridge_dir))
    assert wrong["err"]["type"] == "ProtocolMismatch"
    assert wrong["err"]["exit"] == 11
    assert "99" in wrong["err"]["message"]
    assert not bridge_dir.exists()  # nothing was opened
    assert raw.hello(bridge_dir)["ok"]["version"] == 1


def test_malformed_requests_get_an_error_reply_and_serving_goes_on(raw: Raw, bridge_dir: Path
                                                                   ) -> None:
    raw.hello(bridge_dir)
    raw.write(b'{"id": 7, "op": "send", "args": {"content": "secret-text"\n')  # cut short
    reply = raw.read()
    assert reply["id"] == 7 and reply["err"]["type"] == "InvalidInput", reply
    raw.write(b"[1, 2, 3]\n")
    assert raw.read()["err"]["type"] == "InvalidInput"
    raw.write(b"\xff\xfe not utf-8\n")
    assert raw.read()["err"]["type"] == "InvalidInput"
    assert raw.call(8, "drop_table")["err"]["message"] == "unknown operation 'drop_table'"
    bad_args = raw.call(9, "send", content="x", colour="red")
    assert bad_args["err"]["type"] == "InvalidInput" and "colour" in bad_args["err"]["message"]
    assert raw.call(10, "send", content=5)["err"]["type"] == "InvalidInput"
    assert raw.call(11, "get", id="nope")["err"] == {
        "type": "NotFound", "exit": 3,
        "message": f"no message nope in {bridge_dir}/messages.jsonl or its archives"}
    # Still serving, and nothing was appended by any of it.
    assert raw.call(12, "send", content="fine")["ok"][0].startswith("tester-")
    assert _contents(bridge_dir) == ["fine"]
    assert raw.close() == 0
    log = raw.stderr()
    assert "malformed request" in log
    assert "secret-text" not in log  # lengths and reasons are logged, never content


def test_an_oversized_request_is_refused_without_being_held(raw: Raw, bridge_dir: Path) -> None:
    raw.hello(bridge_dir)
    big = b'{"id": 3, "op": "send", "args": {"content": "' + b"x" * (MAX_REQUEST + 10) + b'"}}\n'
    raw.write(big)
    reply = raw.read()
    assert reply["id"] == 3
    assert reply["err"]["type"] == "InvalidInput"
    assert f"limit is {MAX_REQUEST} bytes" in reply["err"]["message"]
    assert raw.call(4, "send", content="after")["ok"]
    assert raw.close() == 0


def test_send_many_refuses_the_rest_of_a_batch_after_a_bad_item(raw: Raw, bridge_dir: Path
                                                                ) -> None:
    raw.hello(bridge_dir)
    first = raw.call(1, "send_many", items=[{"content": "a"}, {"content": "b"}], base=0,
                     batch="B")
    assert len(first["ok"]) == 2
    second = raw.call(2, "send_many", items=[{"content": "c"}, {"content": 3}], base=2,
                      batch="B")
    assert second["err"]["message"].startswith("item 4: ")  # counted across the batch
    assert len(second["err"]["partial"]) == 1
    third = raw.call(3, "send_many", items=[{"content": "d"}], base=4, batch="B")
    assert "skipped" in third["err"]["message"]
    assert _contents(bridge_dir) == ["a", "b", "c"]


def test_follow_pushes_only_while_the_client_has_credit(raw: Raw, bridge_dir: Path) -> None:
    raw.hello(bridge_dir)
    with Bridge(bridge_dir, agent="local") as local:
        for i in range(10):
            local.send(f"m{i}")
        sub = raw.call(1, "follow", sub=5, start="beginning", credit=4)["ok"]
        assert sub["position"] == 0 and sub["epoch"]
        got: list[Any] = []
        while len(got) < 4:
            event = raw.read()
            assert event["ev"] == "recs" and event["sub"] == 5
            got.extend(event["items"])
        assert len(got) == 4  # the epoch header and three messages, then it waits
        with pytest.raises(queue.Empty):
            raw.read(timeout=0.5)
        raw.send({"op": "credit", "args": {"sub": 5, "n": 100}})
        while len(got) < 11:
            got.extend(raw.read()["items"])
        contents = [rec.get("content") for _, _, rec in got if rec.get("t") == "msg"]
        assert contents == [f"m{i}" for i in range(10)]
        local.send("live")  # pushed as it is appended (inotify on the host)
        event = raw.read()
        assert event["items"][0][2]["content"] == "live"
        assert event["items"][0][0] == got[-1][1]  # it starts where the last one ended


def test_commits_save_the_consumer_cursor_on_the_host(raw: Raw, bridge_dir: Path) -> None:
    raw.hello(bridge_dir)
    with Bridge(bridge_dir, agent="local") as local:
        local.send("one")
        raw.call(1, "follow", sub=1, consumer="kaylee", start="beginning", credit=10)
        items = raw.read()["items"]
        raw.send({"op": "commit", "args": {"sub": 1, "offset": items[-1][1]}})
        raw.call(2, "ping")  # a ping overtakes the queue; a request does not:
        raw.call(3, "is_paused")
        cursor = local.cursors.load("kaylee")
        assert cursor is not None and cursor.offset == items[-1][1]


def test_it_exits_when_stdin_closes(raw: Raw, bridge_dir: Path) -> None:
    raw.hello(bridge_dir)
    raw.call(1, "follow", sub=1, credit=10)  # a follower thread must not keep it alive
    assert raw.close() == 0
    assert "closed the channel" in raw.stderr()


def test_it_exits_when_stdout_breaks(servers, bridge_dir: Path) -> None:
    server = servers()
    server.hello(bridge_dir)
    server.call(1, "follow", sub=1, credit=100)
    assert server.proc.stdout is not None
    server.proc.stdout.close()  # the reader is gone: the next push fails with EPIPE
    with Bridge(bridge_dir, agent="local") as local:
        local.send("poke")
    assert server.proc.wait(10) == 0
    assert "went away" in server.stderr()


def test_it_exits_when_the_client_falls_silent(servers, bridge_dir: Path) -> None:
    server = servers("--idle-timeout", "1")
    server.hello(bridge_dir)
    assert server.proc.wait(10) == 0  # stdin still open: the silence alone ends it
    assert "the client is gone" in server.stderr()


def test_a_pinned_directory_is_the_only_one_served(servers, tmp_path: Path) -> None:
    pinned = tmp_path / "pinned"
    server = servers("--dir", str(pinned))
    other = server.call(0, "hello", version=1, dir=str(tmp_path / "other"))
    assert other["err"]["type"] == "BridgeUnavailable"
    assert str(pinned) in other["err"]["message"]
    assert server.call(1, "hello", version=1)["ok"]["dir"] == str(pinned)
    server.close()


def test_serve_needs_stdio(cli) -> None:
    result = cli.run("serve")
    assert result.returncode == 5
    assert "--stdio" in result.stderr


def test_sigterm_ends_it(raw: Raw, bridge_dir: Path) -> None:
    raw.hello(bridge_dir)
    raw.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: raw.proc.poll() is not None, what="serve to exit on SIGTERM")


def test_line_splitter_bounds_memory_and_finds_request_ids() -> None:
    splitter = LineSplitter(limit=10)
    assert splitter.feed(b"abc\nde") == [b"abc"]
    assert splitter.feed(b"f\n" + b"x" * 25) == [b"def"]
    assert splitter.pending == 25
    out = splitter.feed(b"yy\nok\n")
    assert isinstance(out[0], Oversized) and out[0].size == 27
    assert out[1:] == [b"ok"]
    assert request_id_of(b'{"id": 42, "op": "se') == 42
    assert request_id_of(b'{"op": "send", "id": 42}') is None


def test_a_client_may_lower_the_record_limit_but_not_raise_it(servers, tmp_path: Path) -> None:
    high = servers().call(0, "hello", version=1, dir=str(tmp_path / "a"),
                          max_record_bytes=64 << 20)
    assert high["ok"]["max_record_bytes"] == 1 << 20
    low = servers().call(0, "hello", version=1, dir=str(tmp_path / "b"), max_record_bytes=500)
    assert low["ok"]["max_record_bytes"] == 500


def test_pushes_are_cut_to_size_and_an_unsendable_record_is_reported_not_retried(
        bridge_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bridge.delivery._follow import Follower
    from bridge.remote import _serve

    monkeypatch.setattr(_serve, "PUSH_BYTES", 3000)
    monkeypatch.setattr(_serve, "MAX_REPLY", 10_000)
    with Bridge(bridge_dir, agent="local") as local:
        for size in (1000, 1000, 1000, 20_000, 1000):
            local.send("x" * size)
        read_fd, write_fd = os.pipe()
        try:
            follower = Follower(local, start="beginning", watch=False)
            sub = _serve._Subscription(1, follower, _serve._Output(write_fd))
            follower.on_bad_line = sub.on_bad_line
            assert sub._push(follower.poll())
            os.close(write_fd)
            with os.fdopen(read_fd, "rb") as pipe:
                events = [orjson.loads(line) for line in pipe]
        finally:
            follower.close()
    sizes = [len(e["items"]) for e in events if e["ev"] == "recs"]
    assert sizes == [3, 1, 1]  # header + 2 messages, 1, then the one after the big one
    bad = [e for e in events if e["ev"] == "bad"]
    assert len(bad) == 1 and "too large for the line protocol" in bad[0]["items"][0][2]


def test_a_reply_over_the_limit_becomes_an_error_reply(bridge_dir: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from bridge.remote import _serve

    monkeypatch.setattr(_serve, "MAX_REPLY", 5000)
    with Bridge(bridge_dir, agent="local") as local:
        local.send("y" * 6000, to="claude")
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    server = _serve.Server(in_fd=in_r, out_fd=out_w)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for req in ({"id": 1, "op": "hello", "args": {"version": 1, "dir": str(bridge_dir)}},
                {"id": 2, "op": "inbox", "args": {"agent": "claude"}},
                {"id": 3, "op": "is_paused"}):
        os.write(in_w, orjson.dumps(req) + b"\n")
    os.close(in_w)
    thread.join(10)
    os.close(out_w)
    with os.fdopen(out_r, "rb") as pipe:
        replies = {r["id"]: r for r in map(orjson.loads, pipe) if "id" in r}
    os.close(in_r)
    assert "over the line protocol's 5000-byte limit" in replies[2]["err"]["message"]
    assert replies[3]["ok"] is False  # and serving went on


class InProcess:
    """A Server on two pipes in a thread; replies are collected by a second thread."""

    def __init__(self) -> None:
        from bridge.remote import _serve

        self.in_r, self.in_w = os.pipe()
        self.out_r, out_w = os.pipe()
        self.server = _serve.Server(in_fd=self.in_r, out_fd=out_w)
        self.replies: list[dict[str, Any]] = []
        self.thread = threading.Thread(target=self._serve, args=(out_w,), daemon=True)
        self.thread.start()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _serve(self, out_w: int) -> None:
        self.server.run()
        os.close(out_w)

    def _read(self) -> None:
        with os.fdopen(self.out_r, "rb") as pipe:
            for line in pipe:
                self.replies.append(orjson.loads(line))

    def write(self, *requests: dict[str, Any]) -> None:
        os.write(self.in_w, b"".join(orjson.dumps(r) + b"\n" for r in requests))

    def close(self) -> None:
        os.close(self.in_w)
        self.thread.join(40)
        self.reader.join(10)
        os.close(self.in_r)


def test_a_flooding_client_is_held_back_not_buffered(bridge_dir: Path) -> None:
    from bridge.remote._serve import QUEUED_REQUESTS

    served = InProcess()
    served.write({"id": 0, "op": "hello", "args": {"version": 1, "dir": str(bridge_dir)}})
    wait_for(lambda: any(r.get("id") == 0 for r in served.replies), what="hello")
    n = 3000
    flood = b"".join(orjson.dumps({"id": i, "op": "send", "args": {"content": f"m{i}"}}) + b"\n"
                     for i in range(1, n + 1))
    done = threading.Event()

    def write_all() -> None:
        view = memoryview(flood)
        while view:
            view = view[os.write(served.in_w, view):]
        done.set()

    with Bridge(bridge_dir, agent="local") as local:
        local.lock.acquire()  # the server's worker waits for the lock on the first send
        try:
            threading.Thread(target=write_all, daemon=True).start()
            wait_for(lambda: served.server._work.qsize() >= QUEUED_REQUESTS,
                     what="the queue to fill")
            assert served.server._work.qsize() == QUEUED_REQUESTS  # and not beyond
            assert not done.is_set()  # the rest waits in the pipe, held back by the server
        finally:
            local.lock.release()
        wait_for(done.is_set, what="the flood to be read once the worker moves")
        wait_for(lambda: len(served.replies) >= n + 1, timeout=60, what="every reply")
    served.close()
    answers = [r for r in served.replies if "id" in r]
    assert len(answers) == n + 1 and all("ok" in r for r in answers), answers[-1]


def test_follows_per_connection_are_bounded(servers, bridge_dir: Path) -> None:
    from bridge.remote._serve import MAX_SUBSCRIPTIONS

    raw = servers()
    raw.hello(bridge_dir)
    for sub in range(MAX_SUBSCRIPTIONS):
        assert "ok" in raw.call(sub + 1, "follow", sub=sub, watch=False)
    over = raw.call(999, "follow", sub=999, watch=False)
    assert f"at most {MAX_SUBSCRIPTIONS}" in over["err"]["message"]
