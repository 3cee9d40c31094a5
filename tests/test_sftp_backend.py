"""The SFTP fallback is a backend of its own: composed of parts, not a local Bridge.

Against a real sshd; the host's files are this machine's (the "host" is 127.0.0.1).
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

import bridge
from bridge import (
    Backend,
    Bridge,
    Capabilities,
    InvalidInput,
    RemoteUnsupported,
    SftpBridge,
    StateConflict,
)
from tests.helpers import wait_for
from tests.sshd import SSHD


@pytest.fixture
def fallback(sshd: SSHD, bridge_dir: Path) -> Iterator[SftpBridge]:
    b = bridge.connect(sshd.url(bridge_dir, transport="sftp"), agent="tester",
                       ssh_config=sshd.ssh_config, remote_command="/nonexistent/bridge")
    assert isinstance(b, SftpBridge)
    yield b
    b.close()


def backend_members() -> set[str]:
    members = {n for n in vars(Backend) if not n.startswith("_")}
    return members | set(Backend.__annotations__)


def test_the_fallback_is_a_backend_and_not_a_local_bridge(fallback: SftpBridge,
                                                          bridge_dir: Path) -> None:
    typed: Backend = fallback  # mypy holds the class to the Protocol here
    assert isinstance(typed, bridge.Backend)
    assert not isinstance(fallback, Bridge)
    assert fallback.capabilities == Capabilities(local_files=False, rotate=False,
                                                 search_archives=False, repair=False,
                                                 groups=False, remote=True)
    # Where the bridge lives: the host's directory, not the private copy.
    assert fallback.directory == bridge_dir
    assert fallback.log_path == bridge_dir / "messages.jsonl"
    for name in backend_members():
        assert hasattr(fallback, name), name
        want = vars(Backend).get(name)
        if callable(want):
            got = inspect.signature(getattr(fallback, name)).parameters
            wanted = dict(inspect.signature(want).parameters)
            wanted.pop("self", None)
            assert {k: (p.kind, p.default) for k, p in got.items()} == \
                   {k: (p.kind, p.default) for k, p in wanted.items()}, name


def test_no_public_helpers_beyond_the_contract(fallback: SftpBridge) -> None:
    public = {n for n in dir(fallback) if not n.startswith("_")}
    # The contract, plus the URL and the resolved SSH target (data, like RemoteBridge's).
    assert public - backend_members() == {"url", "target"}
    for old in ("run", "read_remote", "write_remote", "remove_remote", "list_remote",
                "refresh", "copy_inode", "remote_inode", "entries", "locked"):
        assert not hasattr(SftpBridge, old), old


def test_what_it_cannot_do_raises_remote_unsupported_saying_what_to_use(
        fallback: SftpBridge, bridge_dir: Path) -> None:
    mid = fallback.send("old and done", to="claude").id
    fallback.done(mid, sender="claude")
    before = (bridge_dir / "messages.jsonl").read_bytes()
    with pytest.raises(RemoteUnsupported, match=r"cannot rotate.*bridge rotate") as info:
        fallback.rotate(older_than=0)
    assert info.value.exit_code == 11 and "\n" not in str(info.value)
    with pytest.raises(RemoteUnsupported, match="archives"):
        fallback.search("old", archives=True)
    with pytest.raises(RemoteUnsupported, match="doctor --repair on the host"):
        fallback.doctor(repair=True)
    with pytest.raises(InvalidInput, match="group"):
        SftpBridge(fallback.url, group="staff")
    assert (bridge_dir / "messages.jsonl").read_bytes() == before  # nothing moved
    assert not (bridge_dir / "archive").exists()
    # What it can do, it does on the host's log: the live file's search.
    assert [h.record["id"] for h in fallback.search("old")] == [mid]
    assert list(fallback.search("old", limit=0)) == []


def test_a_change_checked_on_a_stale_copy_is_checked_again_under_the_hosts_lock(
        sshd: SSHD, fallback: SftpBridge, bridge_dir: Path) -> None:
    """Another writer lands between the fallback's check and its append: the append script,
    holding the host's lock, sees the log grew, and the claim is checked again."""
    mid = fallback.send("one job", to="worker").id
    outcome: list[object] = []
    with Bridge(bridge_dir, agent="other") as local:
        with local.lock:  # the host's bridge.lock: the fallback's append waits for it
            worker = threading.Thread(
                target=lambda: outcome.append(_call(lambda: fallback.claim(mid,
                                                                           sender="worker"))))
            worker.start()
            wait_for(lambda: any(c.startswith("flock -w") for c in sshd.commands_below()),
                     what="the append script waiting for the host's lock")
            local.claim(mid, sender="rival")  # re-entrant: this thread holds the lock
        worker.join(60)
    assert not worker.is_alive()
    [result] = outcome
    assert isinstance(result, StateConflict), result
    assert "claimed by rival" in str(result)
    claims = [orjson.loads(line) for line in (bridge_dir / "messages.jsonl").read_bytes()
              .splitlines() if b'"claimed"' in line]
    assert [c["from"] for c in claims] == ["rival"]


def test_an_idempotent_send_racing_another_writer_appends_once(
        sshd: SSHD, fallback: SftpBridge, bridge_dir: Path) -> None:
    results: list[object] = []
    with Bridge(bridge_dir, agent="tester") as local:
        local.send("start")
        with local.lock:
            worker = threading.Thread(target=lambda: results.append(
                _call(lambda: fallback.send("hello", idempotency_key="k1"))))
            worker.start()
            wait_for(lambda: any(c.startswith("flock -w") for c in sshd.commands_below()),
                     what="the append script waiting for the host's lock")
            first = local.send("hello", idempotency_key="k1")
        worker.join(60)
    [result] = results
    assert isinstance(result, bridge.SendResult), result
    assert result.duplicate and result.id == first.id
    sends = [line for line in (bridge_dir / "messages.jsonl").read_bytes().splitlines()
             if b'"k1"' in line]
    assert len(sends) == 1


def _call(fn: object) -> object:
    try:
        return fn()  # type: ignore[operator]
    except Exception as exc:  # the test inspects what came out
        return exc
