"""The backend contract (bridge._api.Backend), held against every backend.

Each test runs once per backend (``local``, ``serve``, ``sftp``, ``memory``; see
conftest.py) with two clients of one bridge where it matters: what one writes,
the other reads. A behaviour that needs a capability is skipped by reading
``capabilities``, never by asking which class a backend is; a failing test here
is drift between backends, to be fixed in the backend, not in the test.
"""

from __future__ import annotations

import grp
import inspect
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

import bridge
from bridge import (
    Backend,
    BridgeError,
    Capabilities,
    DoctorReport,
    Entry,
    Fold,
    History,
    Hit,
    InvalidInput,
    MessageView,
    NotFound,
    PauseInfo,
    PingResult,
    RecordTooLarge,
    RemoteUnsupported,
    RotationResult,
    SendResult,
    StateConflict,
    Subscription,
)
from tests.contract.conftest import BACKENDS, Opened
from tests.helpers import wait_for
from tests.sshd import SSHD

MISSING = "nobody-00000000000000000000000000"
"""An id no bridge has."""


# -- helpers -----------------------------------------------------------------------------


def contents(entries: list[Entry]) -> list[str]:
    return [e.record["content"] for e in entries if e.kind == "msg"]


def collect(sub: Subscription, done: Callable[[list[Entry]], bool], *,
            timeout: float = 20.0, what: str = "records") -> list[Entry]:
    """Entries from ``sub`` until ``done(entries)``; fails after ``timeout`` seconds."""
    got: list[Entry] = []
    deadline = time.monotonic() + timeout
    while not done(got):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; "
                                 f"got {contents(got)}")
        got.extend(sub.wait(timeout=min(left, 1.0)))
    return got


def until_content(text: str) -> Callable[[list[Entry]], bool]:
    return lambda got: text in contents(got)


def call_within(seconds: float, fn: Callable[[], Any]) -> tuple[bool, Any]:
    """Run ``fn`` in a thread; (True, result) or (False, exception). Fails if it hangs."""
    box: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            box.append((True, fn()))
        except BaseException as exc:
            box.append((False, exc))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert box, f"the call did not return within {seconds}s"
    return box[0]


def params(fn: Callable[..., Any]) -> list[inspect.Parameter]:
    """The parameters of a function or bound method, without ``self``."""
    sig = inspect.signature(fn)
    out = list(sig.parameters.values())
    if out and out[0].name == "self":
        out = out[1:]
    return out


def signature_problems(want_fn: Callable[..., Any], got_fn: Callable[..., Any]) -> list[str]:
    """How ``got_fn``'s parameters differ from ``want_fn``'s: every parameter of the
    contract with its name, kind and default; extra parameters only optional ones."""
    want, got = params(want_fn), params(got_fn)
    problems: list[str] = []
    by_name = {p.name: p for p in got}
    positional = [p.name for p in got if p.kind in (p.POSITIONAL_ONLY,
                                                    p.POSITIONAL_OR_KEYWORD)]
    want_positional = [p.name for p in want if p.kind in (p.POSITIONAL_ONLY,
                                                          p.POSITIONAL_OR_KEYWORD)]
    if positional[:len(want_positional)] != want_positional:
        problems.append(f"positional parameters {positional}, contract {want_positional}")
    for p in want:
        q = by_name.get(p.name)
        if q is None:
            if p.kind is p.VAR_KEYWORD and any(x.kind is x.VAR_KEYWORD for x in got):
                continue
            problems.append(f"no parameter {p.name!r}")
            continue
        if q.kind is not p.kind:
            problems.append(f"{p.name!r} is {q.kind.description}, contract: "
                            f"{p.kind.description}")
        if q.default != p.default:
            problems.append(f"{p.name!r} defaults to {q.default!r}, contract: {p.default!r}")
    names = {p.name for p in want}
    for q in got:
        if q.name not in names and q.kind not in (q.VAR_POSITIONAL, q.VAR_KEYWORD) \
                and q.default is q.empty:
            problems.append(f"extra required parameter {q.name!r}")
    return problems


def protocol_methods(proto: type) -> list[str]:
    """The callable members of a Protocol (its own, not Protocol's machinery)."""
    out = []
    for name in sorted(vars(proto)):
        if name.startswith("_") and name not in ("__enter__", "__exit__", "__iter__"):
            continue
        value = vars(proto)[name]
        if isinstance(value, property) or not callable(value):
            continue
        out.append(name)
    return out


def protocol_properties(proto: type) -> list[str]:
    return sorted([n for n, v in vars(proto).items() if isinstance(v, property)]
                  + list(proto.__annotations__))


def state_counts(b: Backend) -> dict[str, int]:
    return {k: v for k, v in b.status().counts.items() if v}


# -- conformance -------------------------------------------------------------------------


def test_a_backend_is_a_backend_and_its_follower_a_subscription(backend: Opened) -> None:
    b = backend.open()
    assert isinstance(b, bridge.Backend)
    with b.follow() as sub:
        assert isinstance(sub, bridge.Subscription)


def test_every_backend_member_has_the_contracts_parameters_and_defaults(
        backend: Opened) -> None:
    b = backend.open()
    problems = []
    for name in protocol_properties(Backend):
        if not hasattr(b, name):
            problems.append(f"{name}: missing")
    for name in protocol_methods(Backend):
        impl = getattr(b, name, None)
        if impl is None or not callable(impl):
            problems.append(f"{name}: missing")
            continue
        problems += [f"{name}: {p}" for p in signature_problems(getattr(Backend, name), impl)]
    assert not problems, f"{backend.kind}:\n" + "\n".join(problems)


def test_every_subscription_member_has_the_contracts_parameters_and_defaults(
        backend: Opened) -> None:
    b = backend.open()
    with b.follow() as sub:
        problems = []
        for name in protocol_properties(Subscription):
            if not hasattr(sub, name):
                problems.append(f"{name}: missing")
        for name in protocol_methods(Subscription):
            impl = getattr(sub, name, None)
            if impl is None or not callable(impl):
                problems.append(f"{name}: missing")
                continue
            problems += [f"{name}: {p}"
                         for p in signature_problems(getattr(Subscription, name), impl)]
    assert not problems, f"{backend.kind}:\n" + "\n".join(problems)


def test_rotate_and_search_have_the_same_defaults_everywhere(backend: Opened) -> None:
    b = backend.open()
    for name in ("rotate", "search"):
        # The contract's defaults, which are the local bridge's: the same on every backend.
        reference = {p.name: p.default for p in params(getattr(bridge.Bridge, name))}
        contract = {p.name: p.default for p in params(getattr(Backend, name))}
        assert contract == reference, name
        got = {p.name: p.default for p in params(getattr(b, name))}
        assert got == contract, f"{backend.kind}.{name}"


def test_capabilities_is_a_capabilities_and_says_whether_calls_cross_a_network(
        backend: Opened) -> None:
    b = backend.open()
    caps = b.capabilities
    assert isinstance(caps, Capabilities)
    assert set(caps.to_dict()) == {"local_files", "rotate", "search_archives", "repair",
                                   "groups", "remote"}
    assert caps.remote is backend.crosses_network
    assert b.capabilities == caps  # stable: a caller may read it once


def test_identity_and_durability_are_what_was_asked(backend: Opened) -> None:
    b = backend.open("carol", durability="none")
    assert b.agent == "carol"
    assert b.durability == "none"
    assert isinstance(b.max_record_bytes, int) and b.max_record_bytes > 0
    assert isinstance(b.directory, Path) and isinstance(b.log_path, Path)
    assert backend.open("dave").durability == "always"


def test_directory_names_where_the_bridge_lives(backend: Opened) -> None:
    a, b = backend.pair()
    a.send("hello")
    assert a.directory == b.directory
    assert b.status().directory == b.directory
    if backend.directory is not None:
        # On this machine for every backend here (the ssh "host" is 127.0.0.1).
        assert b.directory == backend.directory
        assert b.log_path == backend.directory / "messages.jsonl"
    if b.capabilities.local_files:
        entries, _ = b.tail(1)
        assert b.log_path.read_bytes().endswith(b.raw_line(entries[-1]))


def test_groups_capability_says_whether_group_is_accepted(backend: Opened) -> None:
    group = grp.getgrgid(os.getgid()).gr_name
    probe = backend.open()
    if probe.capabilities.groups:
        shared = backend.open("carol", group=group)
        assert shared.send("shared").id
    else:
        with pytest.raises(BridgeError):
            backend.open("carol", group=group)


def test_close_is_idempotent(backend: Opened) -> None:
    b = backend.open()
    b.send("before close")
    b.close()
    b.close()
    # Whatever a closed backend does with a call, a failure is still a BridgeError.
    ok, value = call_within(30, lambda: b.send("after close"))
    assert ok or isinstance(value, BridgeError), repr(value)
    b.close()


def test_a_backend_is_a_context_manager(backend: Opened) -> None:
    b = backend.open()
    with b as entered:
        assert entered is b
        assert entered.send("inside").id
    b.close()  # and closing again after the block is fine


# -- writing and reading -------------------------------------------------------------------


def test_send_and_get_round_trip_every_field(backend: Opened) -> None:
    a, b = backend.pair()
    first = a.send("question", to="bob")
    before = time.time()
    sent = a.send("Why is the site slow?", to="bob", type="notification", reply_to=first.id,
                  priority="high", metadata={"whatsapp_sender": "972501234567@c.us",
                                             "n": [1, 2]},
                  idempotency_key="k-1", expires_in=3600, sender="kami")
    assert isinstance(sent, SendResult)
    assert isinstance(sent.id, str) and sent.id.startswith("kami-")
    assert isinstance(sent.offset, int) and sent.duplicate is False
    view = b.get(sent.id)
    assert isinstance(view, MessageView)
    m = view.message
    assert (m.id, m.sender, m.to, m.type, m.content, m.reply_to, m.idempotency_key) == (
        sent.id, "kami", "bob", "notification", "Why is the site slow?", first.id, "k-1")
    assert m.metadata == {"whatsapp_sender": "972501234567@c.us", "n": [1, 2],
                          "priority": "high"}
    assert m.status == "pending" and view.status() == "pending"
    assert m.expires is not None
    expires = bridge.parse_ts(m.expires)
    assert before + 3600 - 5 <= expires <= time.time() + 3600 + 5
    assert abs(bridge.parse_ts(m.ts) - before) < 60
    s = view.state
    assert (s.id, s.sender, s.to, s.type, s.priority, s.reply_to, s.status) == (
        sent.id, "kami", "bob", "notification", "high", first.id, "pending")
    assert s.offset == sent.offset
    assert a.get(sent.id) == view  # both clients see the same message


def test_the_agent_is_the_default_sender(backend: Opened) -> None:
    a, b = backend.pair()
    mid = a.send("hi", to="bob").id
    assert b.get(mid).message.sender == "alice"
    assert mid.startswith("alice-")


def test_an_idempotency_key_returns_the_original_with_duplicate_true(backend: Opened) -> None:
    a, b = backend.pair()
    first = a.send("charge the card", to="bob", idempotency_key="order-7")
    again = a.send("charge the card", to="bob", idempotency_key="order-7")
    assert (again.id, again.offset, again.duplicate) == (first.id, first.offset, True)
    # The key is the sender's: the other client sending as alice gets the original too.
    other = b.send("charge the card", to="bob", idempotency_key="order-7", sender="alice")
    assert (other.id, other.duplicate) == (first.id, True)
    # Another sender's same key is another message.
    own = b.send("charge the card", to="bob", idempotency_key="order-7")
    assert own.id != first.id and own.duplicate is False
    assert sorted(v.id for v in a.inbox("bob")) == sorted([first.id, own.id])


def test_send_many_yields_every_result_in_order(backend: Opened) -> None:
    a, b = backend.pair()
    results = list(a.send_many([
        {"content": "one", "to": "bob"},
        {"content": "two", "to": "bob", "idempotency_key": "k"},
        {"content": "two again", "to": "bob", "idempotency_key": "k"},
        {"content": "three", "to": "bob", "from": "kami"},
    ]))
    assert all(isinstance(r, SendResult) for r in results)
    assert [r.duplicate for r in results] == [False, False, True, False]
    assert results[2].id == results[1].id
    assert [b.get(r.id).message.content for r in results] == ["one", "two", "two", "three"]
    assert b.get(results[3].id).message.sender == "kami"
    assert [v.message.content for v in b.inbox("bob")] == ["one", "two", "three"]


def test_send_many_stops_at_a_bad_item(backend: Opened) -> None:
    a, b = backend.pair()
    got: list[SendResult] = []
    with pytest.raises(InvalidInput, match="item 2"):
        got.extend(a.send_many([{"content": "good", "to": "bob"},
                                {"content": "bad", "to": "bob", "type": "shout"},
                                {"content": "after", "to": "bob"}]))
    assert [b.get(r.id).message.content for r in got] == ["good"]
    assert [v.message.content for v in b.inbox("bob")] == ["good"]


def test_append_record_and_event_are_seen_by_the_other_client(backend: Opened) -> None:
    a, b = backend.pair()
    offset = a.append_record({"v": 1, "t": "x-custom", "id": "alice-custom-1",
                              "ts": "2026-11-21T09:15:02Z", "from": "alice", "n": 3})
    assert isinstance(offset, int)
    entries, _ = b.tail(1, lambda r: r.get("t") == "x-custom")
    assert [(e.offset, e.record["n"]) for e in entries] == [(offset, 3)]
    a.event("deploy", step=1)
    events, _ = b.tail(1, lambda r: r.get("t") == "event")
    assert events[0].record["event"] == "deploy" and events[0].record["step"] == 1
    assert events[0].record["from"] == "alice"
    with pytest.raises(InvalidInput):
        a.append_record({"v": 1, "t": "msg", "id": "alice-bad", "ts": "yesterday",
                         "from": "alice", "type": "request", "content": "x"})


def test_fold_is_the_same_from_both_clients(backend: Opened) -> None:
    a, b = backend.pair()
    mid = a.send("x", to="bob").id
    b.done(mid)
    fa, fb = a.fold(), b.fold()
    assert isinstance(fa, Fold) and isinstance(fb, Fold)
    state = fa.get(mid)
    assert state is not None and state.status == "done"
    now = time.time()
    assert fa.counts(now) == fb.counts(now) == {"done": 1}


# -- claims and status changes ---------------------------------------------------------------


def test_claim_next_is_exclusive_across_two_clients(backend: Opened) -> None:
    a, b = backend.pair()
    ids = [a.send(f"job {i}", to="worker").id for i in range(6)]
    start = threading.Barrier(2)
    taken: dict[str, list[str]] = {"alice": [], "bob": []}
    errors: list[BaseException] = []

    def work(client: Backend, name: str) -> None:
        try:
            start.wait(10)
            while (view := client.claim_next("worker", lease=60)) is not None:
                taken[name].append(view.id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(c, c.agent)) for c in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    every = taken["alice"] + taken["bob"]
    assert sorted(every) == sorted(ids), f"each claimed once: {taken}"
    assert a.claim_next("worker") is None and b.claim_next("worker") is None


def test_claim_next_takes_the_types_asked_for(backend: Opened) -> None:
    a, b = backend.pair()
    note = a.send("fyi", to="bob", type="notification").id
    req = a.send("do it", to="bob").id
    got = b.claim_next("bob")
    assert got is not None and got.id == req and got.state.claimed_by == "bob"
    assert got.status() == "claimed"
    assert b.claim_next("bob") is None
    other = b.claim_next("bob", types=("notification",))
    assert other is not None and other.id == note


def test_an_expired_lease_makes_a_claim_available_again(backend: Opened) -> None:
    a, b = backend.pair()
    mid = a.send("slow job", to="bob").id
    view = a.claim(mid, lease=2.0)
    assert view.state.claimed_by == "alice" and view.status() == "claimed"
    assert b.claim_next("bob") is None  # leased to alice
    with pytest.raises(StateConflict):
        b.claim(mid)
    taken = wait_for(lambda: b.claim_next("bob", lease=60), timeout=20,
                     what="the lease to run out")
    assert taken is not None
    assert taken.id == mid and taken.state.claimed_by == "bob"
    assert a.get(mid).state.claimed_by == "bob"


def test_state_conflicts(backend: Opened) -> None:
    a, b = backend.pair()
    done = a.send("once", to="bob").id
    b.done(done)
    with pytest.raises(StateConflict) as info:
        a.done(done)
    assert info.value.exit_code == 4
    with pytest.raises(StateConflict):
        b.claim(done)
    with pytest.raises(StateConflict):
        b.reply(done, "late")
    held = a.send("held", to="bob").id
    a.claim(held, lease=300)
    with pytest.raises(StateConflict):
        b.claim(held)
    with pytest.raises(StateConflict):
        b.done(held)
    loose = a.send("loose", to="bob").id
    with pytest.raises(StateConflict):
        b.release(loose)
    # force overrides another's claim; cancel never needs it.
    b.done(held, force=True)
    assert a.get(held).status() == "done"
    other = a.send("other", to="bob").id
    a.claim(other)
    b.cancel(other, "not needed")
    assert a.get(other).status() == "cancelled"


def test_release_hands_a_claim_back(backend: Opened) -> None:
    a, b = backend.pair()
    mid = a.send("job", to="bob").id
    a.claim(mid)
    a.release(mid, reason="cannot do it")
    assert b.get(mid).status() == "pending"
    got = b.claim_next("bob")
    assert got is not None and got.id == mid
    b.release(mid, delay=300)
    assert a.claim_next("bob") is None  # not before five minutes from now


def test_not_found_has_exit_code_3(backend: Opened) -> None:
    a = backend.open()
    calls: dict[str, Callable[[], object]] = {
        "get": lambda: a.get(MISSING),
        "history": lambda: a.history(MISSING),
        "thread": lambda: a.thread(MISSING),
        "done": lambda: a.done(MISSING),
        "fail": lambda: a.fail(MISSING, "x"),
        "cancel": lambda: a.cancel(MISSING),
        "set_status": lambda: a.set_status(MISSING, "dead"),
        "claim": lambda: a.claim(MISSING),
        "release": lambda: a.release(MISSING),
        "reply": lambda: a.reply(MISSING, "x"),
    }
    wrong = {}
    for name, call in calls.items():
        try:
            call()
        except NotFound as exc:
            if exc.exit_code != 3:
                wrong[name] = f"exit_code {exc.exit_code}"
        except BaseException as exc:
            wrong[name] = repr(exc)
        else:
            wrong[name] = "no error"
    assert not wrong, wrong


def test_invalid_names_are_invalid_input(backend: Opened) -> None:
    a = backend.open()
    calls: dict[str, Callable[[], object]] = {
        "open agent=''": lambda: backend.open(""),
        "open agent='Not A Name'": lambda: backend.open("Not A Name"),
        "send sender=''": lambda: a.send("x", sender=""),
        "send to=''": lambda: a.send("x", to=""),
        "send to='Not A Name'": lambda: a.send("x", to="Not A Name"),
        "send sender='Not A Name'": lambda: a.send("x", sender="Not A Name"),
        "inbox('')": lambda: a.inbox(""),
        "dead_letters('')": lambda: a.dead_letters(""),
        "claim_next('')": lambda: a.claim_next(""),
        "pause(by='')": lambda: a.pause("x", by=""),
    }
    wrong = {}
    for name, call in calls.items():
        try:
            call()
        except InvalidInput:
            pass
        except BaseException as exc:
            wrong[name] = repr(exc)
        else:
            wrong[name] = "accepted"
    assert not wrong, wrong
    assert state_counts(a) == {}
    assert not a.is_paused()


def test_bad_fields_are_invalid_input(backend: Opened) -> None:
    a = backend.open()
    mid = a.send("x", to="bob").id
    calls: dict[str, Callable[[], object]] = {
        "type": lambda: a.send("x", type="shout"),
        "priority": lambda: a.send("x", priority="urgent"),
        "metadata priority": lambda: a.send("x", metadata={"priority": "urgent"}),
        "expires_in": lambda: a.send("x", expires_in=-1),
        "idempotency_key": lambda: a.send("x", idempotency_key=""),
        "content": lambda: a.send(7),  # type: ignore[arg-type]
        "status": lambda: a.set_status(mid, "maybe"),
        "lease": lambda: a.claim(mid, lease=0),
    }
    wrong = {}
    for name, call in calls.items():
        try:
            call()
        except InvalidInput as exc:
            if exc.exit_code != 5:
                wrong[name] = f"exit_code {exc.exit_code}"
        except BaseException as exc:
            wrong[name] = repr(exc)
        else:
            wrong[name] = "accepted"
    assert not wrong, wrong
    assert state_counts(a) == {"pending": 1}


def test_an_oversized_record_is_record_too_large_and_appends_nothing(backend: Opened) -> None:
    a, b = backend.pair()
    _, before = b.tail(1)
    with pytest.raises(RecordTooLarge) as info:
        a.send("x" * a.max_record_bytes, to="bob")
    assert isinstance(info.value, InvalidInput)
    with pytest.raises(RecordTooLarge):
        a.append_record({"v": 1, "t": "x-big", "id": "alice-big", "ts": "2026-11-21T09:15:02Z",
                         "from": "alice", "blob": "x" * a.max_record_bytes})
    assert b.tail(1)[1] == before
    assert b.inbox("bob") == []


def test_reply_marks_done_and_threads(backend: Opened) -> None:
    a, b = backend.pair()
    mid = a.send("Why is the site slow?", to="bob",
                 metadata={"whatsapp_sender": "972501234567@c.us"}).id
    answer = b.reply(mid, "A cron job", metadata={"took": 3})
    assert isinstance(answer, SendResult) and answer.duplicate is False
    assert a.get(mid).status() == "done"
    r = a.get(answer.id).message
    assert (r.sender, r.to, r.type, r.reply_to, r.content) == (
        "bob", "alice", "response", mid, "A cron job")
    assert r.metadata == {"whatsapp_sender": "972501234567@c.us", "took": 3}
    assert [v.id for v in a.thread(mid)] == [mid, answer.id]
    with pytest.raises(StateConflict):
        b.reply(mid, "again")


def test_thread_is_the_whole_conversation_oldest_first(backend: Opened) -> None:
    a, b = backend.pair()
    root = a.send("root", to="bob").id
    r1 = b.reply(root, "first answer").id
    r2 = a.send("follow-up", to="bob", reply_to=r1).id
    a.send("unrelated", to="bob")
    for ref in (root, r1, r2):
        thread = b.thread(ref)
        assert all(isinstance(v, MessageView) for v in thread)
        assert [v.id for v in thread] == [root, r1, r2], ref


def test_inbox_and_dead_letters(backend: Opened) -> None:
    a, b = backend.pair()
    low = a.send("low", to="bob", priority="low").id
    first = a.send("first", to="bob").id
    high = a.send("high", to="bob", priority="high").id
    a.send("for carol", to="carol")
    assert [v.id for v in b.inbox("bob")] == [high, first, low]  # priority, then age
    b.claim(first)
    assert [v.id for v in a.inbox("bob")] == [high, first, low]
    assert [v.id for v in a.inbox("bob", include_claimed=False)] == [high, low]
    b.set_status(low, "dead", reason="retries used up")
    assert [v.id for v in a.inbox("bob")] == [high, first]
    dead = a.dead_letters("bob")
    assert [v.id for v in dead] == [low] and dead[0].status() == "dead"
    assert dead[0].state.reason == "retries used up"
    assert b.dead_letters("carol") == []


def test_fail_keeps_the_reason(backend: Opened) -> None:
    a, b = backend.pair()
    mid = a.send("x", to="bob").id
    sid = b.fail(mid, "disk full")
    assert isinstance(sid, str) and sid
    view = a.get(mid)
    assert view.status() == "failed" and view.state.reason == "disk full"


def test_history_has_every_status_change(backend: Opened) -> None:
    a, b = backend.pair()
    mid = a.send("job", to="bob").id
    b.claim(mid)
    b.release(mid, reason="later")
    b.claim(mid)
    answer = b.reply(mid, "done it").id
    h = a.history(mid)
    assert isinstance(h, History)
    assert h.view.id == mid and h.view.status() == "done"
    assert [c["status"] for c in h.changes] == ["claimed", "pending", "claimed", "done"]
    assert all(c["ref"] == mid and c["from"] == "bob" for c in h.changes)
    assert h.changes[1].get("reason") == "later"
    assert [v.id for v in h.thread] == [mid, answer]
    assert h.archive is None


def test_an_expired_message_is_expired_everywhere(backend: Opened) -> None:
    a, b = backend.pair()
    mid = a.send("only for a moment", to="bob", expires_in=0.5).id
    wait_for(lambda: b.get(mid).status() == "expired", timeout=20, what="expiry")
    assert b.inbox("bob") == []
    with pytest.raises(StateConflict):
        b.claim(mid)
    assert state_counts(a) == {"expired": 1}


# -- the log: tail and follow ---------------------------------------------------------------


def test_tail_returns_the_last_n_oldest_first_and_a_position(backend: Opened) -> None:
    a, b = backend.pair()
    for i in range(5):
        a.send(f"m{i}", to="bob")
    entries, pos = b.tail(3)
    assert contents(entries) == ["m2", "m3", "m4"]
    assert all(isinstance(e, Entry) for e in entries)
    assert [e.offset for e in entries] == sorted(e.offset for e in entries)
    assert isinstance(pos, int) and pos >= entries[-1].end
    assert a.tail(3) == (entries, pos)  # the same from both clients
    none, same = b.tail(0)
    assert none == [] and same == pos
    only, _ = b.tail(2, lambda r: r.get("content") in ("m0", "m3"))
    assert contents(only) == ["m0", "m3"]
    line = b.raw_line(entries[-1])
    assert isinstance(line, bytes) and line.endswith(b"\n")
    assert orjson.loads(line) == entries[-1].record
    assert len(line) == entries[-1].end - entries[-1].offset
    a.send("m5")
    _, later = b.tail(1)
    assert later > pos


def test_follow_from_a_tail_position_misses_nothing_and_repeats_nothing(
        backend: Opened) -> None:
    a, b = backend.pair()
    for i in range(3):
        a.send(f"old {i}", to="bob")
    _, pos = b.tail(2)
    with b.follow(start=pos) as sub:
        assert sub.position == pos
        assert contents(sub.poll()) == []
        for i in range(20):
            a.send(f"new {i}", to="bob")
        a.send("sentinel", to="bob")
        got = collect(sub, until_content("sentinel"), what="the sentinel")
        assert contents(got) == [f"new {i}" for i in range(20)] + ["sentinel"]
        assert [e.offset for e in got] == sorted({e.offset for e in got})
        assert got[0].offset >= pos
        assert sub.position == got[-1].end
        a.send("after", to="bob")
        more = collect(sub, until_content("after"), what="the record after")
        assert contents(more) == ["after"]


def test_follow_with_a_consumer_continues_after_the_commit(backend: Opened) -> None:
    a, b = backend.pair()
    for i in range(5):
        a.send(f"m{i}", to="bob")
    with b.follow("digest") as sub:
        assert sub.consumer == "digest"
        got = collect(sub, until_content("m4"), what="m4")
        upto = next(e for e in got if e.kind == "msg" and e.record["content"] == "m2")
        sub.commit(upto)
        assert sub.committed == upto.end
    a.send("m5", to="bob")
    with b.follow("digest") as again:
        assert again.committed == upto.end
        rest = collect(again, until_content("m5"), what="m5")
        assert contents(rest) == ["m3", "m4", "m5"]
        again.commit()


def test_a_commit_then_close_is_kept_for_the_next_client(backend: Opened) -> None:
    # The commit is the last thing this client says before it closes: nothing waits
    # for a reply, so a backend that drops what is still queued at close loses it.
    a = backend.open("alice")
    a.send("m0", to="bob")
    first = backend.open("bob")
    sub = first.follow("digest")
    got = collect(sub, until_content("m0"), what="m0")
    sub.commit(got[-1])
    first.close()
    a.send("m1", to="bob")
    second = backend.open("bob")
    with second.follow("digest") as again:
        assert contents(collect(again, until_content("m1"), what="m1")) == ["m1"]


def test_follow_run_hands_every_record_to_the_handler(backend: Opened) -> None:
    a, b = backend.pair()
    for i in range(4):
        a.send(f"m{i}", to="bob")
    seen: list[str] = []
    with b.follow("runner", start="beginning") as sub:
        handled = sub.run(lambda e: seen.append(e.record["content"]) if e.kind == "msg"
                          else None, max_records=len(b.tail(100)[0]))
        assert handled == len(b.tail(100)[0])
        assert seen == ["m0", "m1", "m2", "m3"]
        sub.stop()
        assert sub.stopped


def test_follow_from_the_end_sees_only_new_records(backend: Opened) -> None:
    a, b = backend.pair()
    a.send("old", to="bob")
    with b.follow(start="end") as sub:
        assert sub.position == b.tail(1)[1]
        a.send("new", to="bob")
        assert contents(collect(sub, until_content("new"), what="new")) == ["new"]


# -- control --------------------------------------------------------------------------------


def test_a_pause_is_seen_by_the_other_client_and_resume_lifts_it(backend: Opened) -> None:
    a, b = backend.pair()
    assert b.paused() is None and not b.is_paused()
    info = a.pause("deploying", by="owner")
    assert isinstance(info, PauseInfo) and (info.by, info.reason) == ("owner", "deploying")
    assert b.is_paused()
    seen = b.paused()
    assert seen is not None and (seen.by, seen.reason) == ("owner", "deploying")
    assert b.status().paused is not None
    assert b.resume(by="owner") is True
    assert not a.is_paused() and a.paused() is None
    assert a.resume() is False
    events = [e.record for e in b.tail(10, lambda r: r.get("t") == "event")[0]]
    assert [(e["event"], e.get("by")) for e in events] == [("pause", "owner"),
                                                           ("resume", "owner")]


def test_a_second_pause_keeps_the_first(backend: Opened) -> None:
    a, b = backend.pair()
    first = a.pause("first reason", by="alice")
    second = b.pause("second reason", by="bob")
    assert (second.by, second.reason) == ("alice", "first reason")
    for client in (a, b):
        seen = client.paused()
        assert seen is not None and (seen.by, seen.reason) == ("alice", "first reason")
        assert seen.since == first.since
    pauses = b.tail(10, lambda r: r.get("t") == "event" and r.get("event") == "pause")[0]
    assert len(pauses) == 1


# -- inspection and maintenance ---------------------------------------------------------------


def traffic(a: Backend, b: Backend) -> dict[str, str]:
    """Four requests to bob: one done, one failed, one claimed, one pending."""
    ids = {name: a.send(name, to="bob").id for name in ("done", "failed", "claimed",
                                                        "pending")}
    b.done(ids["done"])
    b.fail(ids["failed"], "broken")
    b.claim(ids["claimed"])
    return ids


def test_status_counts(backend: Opened) -> None:
    a, b = backend.pair()
    traffic(a, b)
    for client in (a, b):
        st = client.status()
        assert st.counts == {"pending": 1, "claimed": 1, "done": 1, "failed": 1}
        assert st.paused is None and st.bad_lines == 0
        assert st.records >= 7 and st.size > 0
        assert st.last_activity is not None
        assert st.durability in ("always", "batch", "none")


def test_stats_counts(backend: Opened) -> None:
    a, b = backend.pair()
    ids = traffic(a, b)
    for client in (a, b):
        stats = client.stats()
        assert stats["counts"] == {"claimed": 1, "done": 1, "failed": 1, "pending": 1}
        assert stats["types"] == {"request": 4}
        assert stats["kinds"]["msg"] == 4 and stats["kinds"]["status"] == 3
        assert stats["bad_lines"] == 0
        assert stats["oldest_open"] == ids["claimed"]
        assert isinstance(stats["oldest_open_age_s"], float)
        orjson.dumps(stats)  # JSON-ready


def test_doctor_on_a_healthy_bridge_reports_no_findings(backend: Opened) -> None:
    a, b = backend.pair()
    traffic(a, b)
    for client in (a, b):
        report = client.doctor()
        assert isinstance(report, DoctorReport)
        assert report.findings == [] and report.ok
        assert report.messages == 4


def test_doctor_repair_follows_capabilities(backend: Opened) -> None:
    a = backend.open()
    a.send("x")
    if a.capabilities.repair:
        report = a.doctor(repair=True)
        assert isinstance(report, DoctorReport) and report.ok
    else:
        with pytest.raises(RemoteUnsupported):
            a.doctor(repair=True)


def finished_in_the_past(b: Backend, mid: str) -> None:
    """Wait until the clock is past the millisecond ``mid`` was finished in: rotation's
    ``older_than=0`` takes what finished before now, not in the same millisecond."""
    updated = b.get(mid).state.updated
    assert updated is not None
    at = bridge.parse_ts(updated)
    wait_for(lambda: time.time() > at + 0.002, timeout=5, what="the clock to move on")


def test_rotate_follows_capabilities(backend: Opened) -> None:
    a, b = backend.pair()
    finished = a.send("finished work", to="bob").id
    b.done(finished)
    finished_in_the_past(a, finished)
    open_ = a.send("open work", to="bob").id
    if not a.capabilities.rotate:
        with pytest.raises(RemoteUnsupported):
            a.rotate(dry_run=True)
        return
    plan = a.rotate(dry_run=True)
    assert isinstance(plan, RotationResult) and plan.dry_run and not plan.rotated
    result = a.rotate(older_than=0)
    assert isinstance(result, RotationResult) and result.moved_messages == 1
    # The other client sees the rotated bridge: the message is in an archive now.
    h = b.history(finished)
    assert h.archive is not None and h.view.status() == "done"
    assert [v.id for v in b.inbox("bob")] == [open_]
    assert state_counts(b) == {"pending": 1}


def test_search_archives_follows_capabilities(backend: Opened) -> None:
    a, b = backend.pair()
    mid = a.send("needle in the archive", to="bob").id
    b.done(mid)
    if not a.capabilities.search_archives:
        with pytest.raises(RemoteUnsupported):
            list(a.search("needle", archives=True))
        return
    if a.capabilities.rotate:
        finished_in_the_past(a, mid)
        assert a.rotate(older_than=0).moved_messages == 1
        assert list(b.search("needle")) == []
    hits = list(b.search("needle", archives=True))
    assert [h.record["id"] for h in hits] == [mid]


def test_search_finds_a_sent_message_with_limit(backend: Opened) -> None:
    a, b = backend.pair()
    a.send("needle one", to="bob")
    b.send("needle two", to="alice")
    a.send("hay", to="bob")
    last = a.send("needle three", to="bob").id
    found = b.search("needle")
    assert isinstance(found, Iterator)
    hits = list(found)
    assert all(isinstance(h, Hit) for h in hits)
    assert [h.record["content"] for h in hits] == ["needle three", "needle two", "needle one"]
    assert hits[0].record["id"] == last
    assert orjson.loads(hits[0].line) == hits[0].record
    assert [h.record["content"] for h in b.search("needle", limit=2)] == [
        "needle three", "needle two"]
    assert list(b.search("needle", limit=0)) == []
    assert [h.record["content"] for h in a.search("needle", sender="bob")] == ["needle two"]
    assert [h.record["content"] for h in a.search("needle", to="bob")] == [
        "needle three", "needle one"]
    assert len(list(a.search("NEEDLE", ignore_case=True))) == 3
    assert [h.record["content"] for h in a.search(r"needle t\w+", regex=True)] == [
        "needle three", "needle two"]
    with pytest.raises(InvalidInput):
        list(a.search("(", regex=True))


def test_ping_returns_a_ping_result(backend: Opened) -> None:
    a, b = backend.pair()
    result = a.ping(rounds=2)
    assert isinstance(result, PingResult)
    assert result.paused is None
    assert result.remote is a.capabilities.remote
    assert isinstance(result.directory, str) and result.directory == str(a.directory)
    b.pause("maintenance", by="owner")
    paused = a.ping()
    assert paused.paused is not None and paused.paused.by == "owner"
    orjson.dumps(paused.to_dict())


# -- failures ---------------------------------------------------------------------------------


def kill_sessions(server: SSHD) -> list[int]:
    """SIGKILL every process below the sshd listener (sshd sessions, bridge serve): the
    connections die as they would with a crashed host process or a cut network."""
    pids = server.session_pids()
    for pid in pids:
        try:
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids


# Only the backends that cross a network have a transport to break (capabilities.remote
# says which, and test_capabilities_... holds them to it): run there, skip nowhere.
@pytest.mark.parametrize("backend", [k for k in BACKENDS if k in ("serve", "sftp")],
                         indirect=True)
def test_a_broken_transport_gives_only_bridge_errors(
        private_backend: tuple[Opened, SSHD | None]) -> None:
    opened, server = private_backend
    assert opened.crosses_network and server is not None
    # Remote backends take reconnect_timeout (bridge.connect's options): a bounded retry.
    b = opened.open("alice", reconnect_timeout=2.0)
    b.send("before")
    errors: list[BaseException] = []
    calls = 0
    stop = threading.Event()

    def hammer() -> None:
        nonlocal calls
        i = 0
        while not stop.is_set():
            i += 1
            try:
                if i % 2:
                    b.send(f"call {i}")
                else:
                    b.status()
            except BaseException as exc:
                errors.append(exc)
            calls += 1

    worker = threading.Thread(target=hammer, daemon=True)
    worker.start()
    try:
        wait_for(lambda: calls >= 5, timeout=30, what="calls flowing")
        # Mid-call: the connection dies under calls in flight.
        assert kill_sessions(server)
        mark = calls
        wait_for(lambda: calls >= mark + 5 or len(errors) >= 3, timeout=60,
                 what="calls after the break")
    finally:
        stop.set()
        worker.join(60)
    assert not worker.is_alive(), "a call hung after the transport broke"
    strays = [repr(e) for e in errors if not isinstance(e, BridgeError)]
    assert not strays, f"not BridgeErrors: {strays}"
    # With the host gone for good, the next call fails, as a BridgeError, in bounded time.
    server.stop()
    kill_sessions(server)
    for name, call in (("send", lambda: b.send("after")), ("get", lambda: b.get(MISSING)),
                       ("status", b.status), ("tail", lambda: b.tail(1))):
        ok, value = call_within(60, call)
        assert not ok, f"{name} succeeded with the host gone: {value!r}"
        assert isinstance(value, BridgeError), f"{name}: {value!r} is not a BridgeError"
