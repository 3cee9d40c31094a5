"""Kaylee taking work from a real bridge: outcomes, refusals, injection, retries, dead letters,
dry runs, scheduled jobs and recovery of a crashed Kaylee's claims (the clock injected)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from bridge import Bridge
from tests.conftest import CLI
from tests.kaylee_support import PY, answers, outcome, owner_notes, run_once

WA = {"whatsapp_sender": "972501234567@c.us"}


def touch_recipe(name: str, marker: Path, *, idempotent: bool = False) -> str:
    """A recipe whose effect is visible: it creates ``marker``."""
    return (f'[[recipe]]\nname = "{name}"\nargv = ["touch", "{marker}"]\n'
            f"idempotent = {'true' if idempotent else 'false'}\n")


@pytest.fixture
def kami(tmp_path: Path) -> Iterator[Bridge]:
    b = Bridge(tmp_path / "bridge", agent="kami")
    yield b
    b.close()


def test_a_request_runs_and_the_answer_goes_to_whoever_asked(tmp_path: Path,
                                                             kami: Bridge) -> None:
    rid = kami.send("run echo for me", to="kaylee", metadata={
        "recipe": "echo", "params": {"text": "hello"}, **WA}).id
    run_once(tmp_path)
    assert kami.get(rid).state.status == "done"
    answer = outcome(kami, rid)
    assert answer.message.to == "kami" and answer.message.type == "response"
    assert answer.message.content.startswith("✅ echo text=hello: ")
    assert '["hello"]' in answer.message.content
    meta = answer.message.metadata
    assert meta["outcome"] == "done" and meta["recipe"] == "echo" and meta["attempt"] == 1
    assert meta["whatsapp_sender"] == WA["whatsapp_sender"]  # Kami knows the chat
    [ack] = answers(kami, rid, "progress")
    assert ack.message.content == "⏳ echo text=hello: started"
    assert owner_notes(kami) == []  # success is not news for the owner


def test_the_text_form_names_a_recipe_and_its_parameters(tmp_path: Path, kami: Bridge) -> None:
    rid = kami.send("echo text=$(id)", to="kaylee").id
    run_once(tmp_path)
    assert '["$(id)"]' in outcome(kami, rid).message.content


@pytest.mark.parametrize("hostile", ["; rm -rf {dir}", "$(touch {dir}/pwned)",
                                     "`touch {dir}/pwned`", "x && touch {dir}/pwned"])
def test_shell_syntax_in_a_parameter_is_one_argv_element_and_never_runs(
        tmp_path: Path, kami: Bridge, hostile: str) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("precious")
    value = hostile.format(dir=victim)
    rid = kami.send("x", to="kaylee", metadata={"recipe": "echo",
                                                 "params": {"text": value}}).id
    run_once(tmp_path)
    content = outcome(kami, rid).message.content
    printed = orjson.loads(content.split("\n\n", 1)[1])
    assert printed == [value]
    assert (victim / "keep").read_text() == "precious"
    assert not (victim / "pwned").exists()


PATTERNED = """
[[recipe]]
name = "checkout"
argv = ["true", "{branch}"]
[[recipe.param]]
name = "branch"
pattern = "[A-Za-z0-9._/-]+"
required = true
"""


@pytest.mark.parametrize(("sender", "text", "reason"), [
    ("claude", "reboot", "unknown recipe 'reboot'; Kaylee runs: checkout, echo, report, rotate"),
    ("claude", "checkout branch=main;rm", "does not match"),
    ("claude", "checkout branch=main user=root", "unknown parameter 'user'"),
    ("kami", "checkout", "parameter 'branch' is required"),
])
def test_bad_requests_are_refused_with_the_reason_and_the_owner_is_told(
        tmp_path: Path, sender: str, text: str, reason: str) -> None:
    with Bridge(tmp_path / "bridge", agent=sender) as b:
        rid = b.send(text, to="kaylee").id
        run_once(tmp_path, PATTERNED)
        state = b.get(rid).state
        assert state.status == "failed"
        assert reason in (state.reason or "")
        answer = outcome(b, rid)
        assert answer.message.content.startswith("⛔ refused")
        assert answer.message.metadata["outcome"] == "refused"
        notes = owner_notes(b)
        if sender == "kami":
            assert notes == []  # the answer itself reaches the owner through Kami
        else:
            [note] = notes
            assert reason in note.message.content
            assert note.message.metadata["whatsapp_sender"] == "972500000000@c.us"
            assert note.message.metadata["kaylee"] == "failure"


def test_requests_not_addressed_to_kaylee_by_name_are_left_alone(tmp_path: Path,
                                                                  kami: Bridge) -> None:
    anyone = kami.send("echo text=hi").id  # to any agent: Claude's, or whoever's
    other = kami.send("echo text=hi", to="claude").id
    run_once(tmp_path)
    assert kami.get(anyone).state.status == "pending"
    assert kami.get(other).state.status == "pending"


FLAKY = f"""
[[recipe]]
name = "flaky"
argv = ["{PY}", "-c", "import sys; print('upstream busy'); sys.exit(75)"]
retries = 2
idempotent = true
"""


def test_retryable_failures_back_off_then_end_as_a_dead_letter(tmp_path: Path, kami: Bridge,
                                                               cli: CLI) -> None:
    rid = kami.send("flaky", to="kaylee", metadata=WA).id
    run_once(tmp_path, FLAKY)
    state = kami.get(rid).state
    assert state.status == "pending" and state.attempts == 1
    assert state.not_before is not None and 25 < state.not_before - time.time() <= 31
    assert "attempt 1 of 3 failed: the command: python" in (state.reason or "")
    assert "exited with status 75" in (state.reason or "")
    # Not before the backoff: a Kaylee running now leaves it alone.
    run_once(tmp_path, FLAKY)
    assert kami.get(rid).state.attempts == 1
    run_once(tmp_path, FLAKY, wall=lambda: time.time() + 31)
    state = kami.get(rid).state
    assert state.attempts == 2 and state.status == "pending"
    assert 55 < (state.not_before or 0) - time.time() <= 61  # doubled
    run_once(tmp_path, FLAKY, wall=lambda: time.time() + 1000)
    state = kami.get(rid).state
    assert state.status == "dead" and state.attempts == 3
    answer = outcome(kami, rid)
    assert answer.message.content.startswith("☠️ flaky: gave up after 3 attempt(s)")
    assert "upstream busy" in answer.message.content
    retries = answers(kami, rid, "progress")
    assert [v.message.content.split(":")[0] for v in retries] == \
        ["⏳ flaky", "🔁 flaky", "⏳ flaky", "🔁 flaky", "⏳ flaky"]
    assert owner_notes(kami) == []  # Kami asked: the answer itself reaches the owner
    # The dead letter is visible where people look.
    shown = cli.ok("inbox", "--for", "kaylee")
    assert "Dead letters (1)" in shown and rid in shown
    listed = orjson.loads(cli.ok("inbox", "--for", "kaylee", "--json"))
    assert [(i["id"], i["status"]) for i in listed] == [(rid, "dead")]
    assert "dead" in cli.ok("show", rid)


def test_a_failure_that_is_not_retryable_fails_at_once(tmp_path: Path) -> None:
    extra = f"""
[[recipe]]
name = "broken"
argv = ["{PY}", "-c", "import sys; print('no such table'); sys.exit(1)"]
retries = 3
"""
    with Bridge(tmp_path / "bridge", agent="claude") as b:
        rid = b.send("broken", to="kaylee").id
        run_once(tmp_path, extra)
        state = b.get(rid).state
        assert state.status == "failed" and state.attempts == 1
        assert "exited with status 1" in (state.reason or "")
        content = outcome(b, rid).message.content
        assert content.startswith("❌ broken failed: ") and "no such table" in content
        [note] = owner_notes(b)
        assert note.message.content.startswith("Kaylee: ❌ broken failed")


def test_a_recipe_that_hangs_is_killed_at_its_timeout(tmp_path: Path, kami: Bridge) -> None:
    extra = """
[[recipe]]
name = "hang"
argv = ["sleep", "300"]
timeout = "1s"
"""
    rid = kami.send("hang", to="kaylee").id
    run_once(tmp_path, extra)  # were it not killed, this would wait 300 s (pytest's limit)
    state = kami.get(rid).state
    assert state.status == "failed"
    assert "did not finish within 1s and was killed" in (state.reason or "")


def test_megabytes_of_output_are_capped_in_the_answer(tmp_path: Path, kami: Bridge) -> None:
    extra = f"""
output_limit = 2048
[[recipe]]
name = "loud"
argv = ["{PY}", "-c", "import sys; sys.stdout.write('y' * 3_000_000 + 'END')"]
"""
    rid = kami.send("loud", to="kaylee").id
    run_once(tmp_path, extra)
    answer = outcome(kami, rid)
    assert len(answer.message.content) < 4096
    assert answer.message.content.endswith("END")
    side = Path(answer.message.metadata["output_file"])
    assert side.parent == tmp_path / "state" / "output"
    assert side.stat().st_size == 3_000_003


def test_dry_run_runs_nothing_and_says_what_it_would_do(tmp_path: Path, kami: Bridge) -> None:
    marker = tmp_path / "ran"
    extra = touch_recipe("touch", marker)
    rid = kami.send("touch --dry-run", to="kaylee").id
    run_once(tmp_path, extra)
    assert not marker.exists()
    content = outcome(kami, rid).message.content
    assert content.startswith("✅ touch (dry run): dry run: nothing was run")
    assert f"touch {marker}" in content
    # The global switch: every recipe in dry-run mode.
    rid = kami.send("touch", to="kaylee").id
    run_once(tmp_path, "dry_run = true\n" + extra)
    assert not marker.exists()
    assert "(dry run)" in outcome(kami, rid).message.content
    rid = kami.send("touch", to="kaylee").id
    run_once(tmp_path, extra)
    assert marker.exists()


def test_a_multi_step_recipe_stops_at_the_first_failing_step(tmp_path: Path,
                                                            kami: Bridge) -> None:
    log = tmp_path / "steps"
    extra = f"""
[[recipe]]
name = "pipeline"
steps = [["sh", "-c", "echo one >> {log}"], ["sh", "-c", "echo two >> {log}; exit 2"],
         ["sh", "-c", "echo three >> {log}"]]
"""
    rid = kami.send("pipeline", to="kaylee").id
    run_once(tmp_path, extra)
    assert log.read_text() == "one\ntwo\n"
    assert "step 2 of 3" in (kami.get(rid).state.reason or "")


def test_scheduled_runs_are_requests_from_kaylee_with_their_outcomes(
        tmp_path: Path, kami: Bridge, cli: CLI) -> None:
    extra = """
[[job]]
name = "greet"
cron = "* * * * *"
recipe = "echo"
params = { text = "tick" }
"""
    now = time.time() // 60 * 60 + 10  # ten seconds into a minute
    run_once(tmp_path, extra, wall=lambda: now)  # the job starts from now
    run_once(tmp_path, extra, wall=lambda: now + 61)  # its next minute
    with Bridge(tmp_path / "bridge", agent="tester") as b:
        runs = [s for s in b.fold() if s.sender == "kaylee" and s.type == "request"]
        assert len(runs) == 1
        run = b.get(runs[0].id)
        assert run.message.to == "kaylee"
        assert run.message.metadata["job"] == "greet"
        assert run.state.status == "done"
        result = outcome(b, run.id)
        assert result.state.status == "done"  # the record is complete: nobody else reads it
        assert b.inbox("kaylee") == []
        # Clock set back, then forward over the same minute again: the run of that minute
        # carries the same idempotency key, so it is not sent twice.
        run_once(tmp_path, extra, wall=lambda: now + 30)
        run_once(tmp_path, extra, wall=lambda: now + 65)
        assert len([s for s in b.fold() if s.sender == "kaylee" and s.type == "request"]) == 1
    history = cli.ok("tail", "--from", "kaylee", "-n", "50")
    assert "echo text=tick" in history and "✅" in history


def test_a_crashed_kaylees_claim_is_taken_back_when_its_lease_ends(tmp_path: Path,
                                                                   kami: Bridge) -> None:
    rid = kami.send("echo text=again", to="kaylee").id
    with Bridge(tmp_path / "bridge", agent="kaylee") as dead_kaylee:
        dead_kaylee.claim(rid, lease=60)  # ... and then it died
    run_once(tmp_path)
    assert kami.get(rid).state.status == "claimed"  # the lease still runs: nobody takes it
    run_once(tmp_path, wall=lambda: time.time() + 61)
    state = kami.get(rid).state
    assert state.status == "done" and state.attempts == 2
    history = kami.history(rid).changes
    assert any("running it again" in (c.get("reason") or "") for c in history)


def test_a_crashed_non_idempotent_task_is_failed_as_interrupted(tmp_path: Path,
                                                                kami: Bridge) -> None:
    marker = tmp_path / "charged"
    extra = touch_recipe("charge", marker)
    rid = kami.send("charge", to="kaylee", sender="claude").id
    with Bridge(tmp_path / "bridge", agent="kaylee") as dead_kaylee:
        dead_kaylee.claim(rid, lease=60)
    run_once(tmp_path, extra, wall=lambda: time.time() + 61)
    assert not marker.exists()  # not run again
    state = kami.get(rid).state
    assert state.status == "failed"
    assert "not idempotent, so it is not run again" in (state.reason or "")
    assert outcome(kami, rid).message.metadata["outcome"] == "interrupted"
    [note] = owner_notes(kami)
    assert "interrupted" in note.message.content


def test_an_outcome_written_just_before_a_crash_is_completed_not_rerun(tmp_path: Path,
                                                                      kami: Bridge) -> None:
    marker = tmp_path / "ran"
    extra = touch_recipe("once", marker, idempotent=True)
    rid = kami.send("once", to="kaylee").id
    with Bridge(tmp_path / "bridge", agent="kaylee") as dead_kaylee:
        dead_kaylee.claim(rid, lease=60)
        dead_kaylee.send("❌ once failed: disk full", to="kami", type="response", reply_to=rid,
                         metadata={"kaylee": "outcome", "outcome": "failed"})
    run_once(tmp_path, extra, wall=lambda: time.time() + 61)
    assert not marker.exists()
    state = kami.get(rid).state
    assert state.status == "failed" and "already reported" in (state.reason or "")
