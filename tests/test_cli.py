"""Every CLI command through the installed ``bridge`` entry point (a real subprocess)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
from pathlib import Path

import orjson
import pytest

from tests.conftest import BIN, CLI, require_tool


def test_send_prints_an_id_and_tail_shows_it(cli: CLI) -> None:
    mid = cli.ok("send", "Check the server status", "--from", "kami", "--to", "claude").strip()
    assert mid.startswith("kami-")
    out = cli.ok("tail")
    assert mid in out
    assert "kami → claude" in out
    assert "Check the server status" in out


def test_send_options_land_in_the_record(cli: CLI) -> None:
    asked = cli.ok("send", "deploy?", "--to", "claude").strip()  # --reply-to must exist
    mid = cli.ok("send", "deploy", "--to", "kaylee", "--type", "notification",
                 "--priority", "high", "--meta", "whatsapp_sender=972501234567@c.us",
                 "--meta", "attempt=2", "--expires", "10m", "--reply-to", asked).strip()
    rec = orjson.loads(cli.ok("tail", "-n", "1", "--json"))
    assert rec["id"] == mid
    assert rec["type"] == "notification"
    assert rec["reply_to"] == asked
    assert rec["metadata"] == {"whatsapp_sender": "972501234567@c.us", "attempt": 2,
                               "priority": "high"}
    assert rec["expires"] > rec["ts"]


def test_send_reads_stdin_and_uses_bridge_agent(cli: CLI) -> None:
    text = "שלום! multi\nline ✓ מה נשמע"
    mid = cli.ok("send", "-", input=text, env={"BRIDGE_AGENT": "kami"}).strip()
    assert mid.startswith("kami-")
    rec = orjson.loads(cli.ok("tail", "-n", "1", "--json"))
    assert rec["content"] == text


def test_idempotency_key_on_the_command_line(cli: CLI) -> None:
    a = cli.ok("send", "once", "--idempotency-key", "k-1").strip()
    b = cli.ok("send", "once", "--idempotency-key", "k-1").strip()
    assert a == b
    assert len(cli.ok("tail", "--json").splitlines()) == 1


def test_send_batch(cli: CLI) -> None:
    lines = "\n".join(orjson.dumps(o).decode() for o in [
        {"content": "one", "to": "claude"},
        {"content": "two", "from": "kami", "priority": "low"},
        {"content": "one again", "idempotency_key": "x"},
        {"content": "dup", "idempotency_key": "x"},
    ])
    ids = cli.ok("send", "--batch", input=lines + "\n").split()
    assert len(ids) == 4
    assert ids[2] == ids[3]
    assert ids[1].startswith("kami-")


def test_send_batch_stops_at_a_bad_line_and_says_what_was_appended(cli: CLI) -> None:
    result = cli.run("send", "--batch", input='{"content": "ok"}\n{"content": \n')
    assert result.returncode == 5
    assert len(result.stdout.split()) == 1
    assert "stdin line 2" in result.stderr
    assert "1 message(s) before it were appended" in result.stderr


def test_inbox_reply_done_fail_cancel_show(cli: CLI) -> None:
    ask = cli.ok("send", "status?", "--from", "kami", "--to", "claude",
                 "--meta", "whatsapp_sender=972501234567@c.us").strip()
    other = cli.ok("send", "other", "--from", "kami", "--to", "claude").strip()
    third = cli.ok("send", "third", "--from", "kami", "--to", "claude").strip()
    inbox = orjson.loads(cli.ok("inbox", "--for", "claude", "--json"))
    assert [i["id"] for i in inbox] == [ask, other, third]
    assert "status?" in cli.ok("inbox", "--for", "claude")
    answer = cli.ok("reply", ask, "all green", "--from", "claude").strip()
    assert answer.startswith("claude-")
    cli.ok("fail", other, "--reason", "disk full", "--from", "claude")
    cli.ok("cancel", third)
    assert orjson.loads(cli.ok("inbox", "--for", "claude", "--json")) == []
    kami_inbox = orjson.loads(cli.ok("inbox", "--for", "kami", "--json"))
    assert [i["id"] for i in kami_inbox] == [answer]
    assert kami_inbox[0]["metadata"]["whatsapp_sender"] == "972501234567@c.us"
    cli.ok("done", answer, "--from", "kami")
    shown = orjson.loads(cli.ok("show", ask, "--json"))
    assert shown["status"] == "done"
    assert [h["status"] for h in shown["changes"]] == ["done"]
    assert [t["id"] for t in shown["thread"]] == [ask, answer]
    human = cli.ok("show", other)
    assert "failed" in human
    assert "disk full" in human


def test_status_changes_refused_with_documented_codes(cli: CLI) -> None:
    mid = cli.ok("send", "x", "--to", "claude").strip()
    cli.ok("done", mid)
    again = cli.run("done", mid)
    assert again.returncode == 4
    assert f"{mid} is already done" in again.stderr
    missing = cli.run("show", "kami-nope")
    assert missing.returncode == 3
    assert missing.stderr.startswith("error: no message kami-nope")


def test_pause_resume_status(cli: CLI) -> None:
    cli.ok("send", "x")
    cli.ok("pause", "--reason", "deploying", "--by", "owner")
    st = orjson.loads(cli.ok("status", "--json"))
    assert st["paused"] is True
    assert st["pause"]["by"] == "owner"
    assert st["pause"]["reason"] == "deploying"
    assert "PAUSED by owner" in cli.ok("status")
    assert (cli.directory / "PAUSE").exists()
    cli.ok("resume")
    st = orjson.loads(cli.ok("status", "--json"))
    assert st["paused"] is False
    assert st["counts"] == {"pending": 1}
    events = [orjson.loads(x)["event"] for x in cli.ok("tail", "--json").splitlines()
              if b'"event"' in x.encode()]
    assert events == ["pause", "resume"]


def test_a_touched_pause_file_counts(cli: CLI) -> None:
    cli.ok("send", "x")
    (cli.directory / "PAUSE").touch()
    st = orjson.loads(cli.ok("status", "--json"))
    assert st["paused"] is True


def test_tail_filters(cli: CLI) -> None:
    a = cli.ok("send", "a", "--from", "kami", "--to", "claude").strip()
    b = cli.ok("send", "b", "--from", "kaylee", "--to", "claude", "--type", "notification").strip()
    c = cli.ok("send", "c", "--from", "kami", "--to", "kaylee").strip()
    cli.ok("done", a)

    def ids(*args: str) -> list[str]:
        return [orjson.loads(x).get("id") for x in cli.ok("tail", "--json", *args).splitlines()]

    assert ids("--from", "kami") == [a, c]
    assert ids("--to", "claude") == [a, b]
    assert ids("--type", "notification") == [b]
    assert ids("--status", "pending") == [b, c]
    assert ids("--status", "done") == [a]
    assert len(ids("-n", "2")) == 2
    assert ids("-n", "0") == []


def test_tail_follow_prints_new_records(cli: CLI) -> None:
    cli.ok("send", "before")
    # Unbuffered: a buffered readline() could pull several lines out of the pipe,
    # and select() would then wait for data that was already read.
    proc = subprocess.Popen([str(BIN / "bridge"), "tail", "-f", "-n", "0", "--json"],
                            env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            bufsize=0)
    assert proc.stdout is not None
    sent: list[str] = []
    printed: list[str] = []
    try:
        # tail -f has no "ready" signal: keep sending until it prints (bounded), then
        # every later record must follow with no gap.
        for _ in range(40):
            sent.append(cli.ok("send", f"after {len(sent)}").strip())
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                break
        assert sent, "nothing sent"
        for _ in range(3):
            sent.append(cli.ok("send", "more").strip())
        while len(printed) < 3 or printed[-1] != sent[-1]:
            ready, _, _ = select.select([proc.stdout], [], [], 20)
            assert ready, f"tail -f stopped printing after {printed}"
            printed.append(orjson.loads(proc.stdout.readline())["id"])
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=20)
        assert proc.stderr is not None
        err = proc.stderr.read().decode()
        proc.stdout.close()
        proc.stderr.close()
    assert printed == sent[sent.index(printed[0]):]
    assert code == 130
    assert "Traceback" not in err


def test_doctor_clean_and_broken(cli: CLI) -> None:
    cli.ok("send", "x")
    report = orjson.loads(cli.ok("doctor", "--json"))
    assert report["ok"] is True
    assert report["errors"] == 0
    with open(cli.directory / "messages.jsonl", "ab") as f:
        f.write(b"garbage line\n")
        f.write(b'{"v":1,"t":"status","id":"s-1","ts":"2026-01-01T00:00:00Z","from":"x",'
                b'"ref":"ghost","status":"done"}\n')
        f.write(b'{"v":1,"t":"msg","id":"m","ts":"2026-01-01T00:00:00Z","from":"x",'
                b'"type":"shout","content":"hi"}\n')
    result = cli.run("doctor", "--json")
    assert result.returncode == 1
    report = orjson.loads(result.stdout)
    kinds = sorted(f["kind"] for f in report["findings"])
    assert kinds == ["corrupt", "orphan-status", "schema"]
    lines = {f["kind"]: f["line"] for f in report["findings"]}
    assert lines["corrupt"] == 3
    human = cli.run("doctor")
    assert human.returncode == 1
    assert "line 3" in human.stdout
    assert "3 error(s)" in human.stdout


def test_stats(cli: CLI) -> None:
    cli.ok("send", "a", "--from", "kami", "--to", "claude")
    b = cli.ok("send", "b", "--from", "kaylee", "--type", "notification").strip()
    cli.ok("done", b)
    data = orjson.loads(cli.ok("stats", "--json"))
    assert data["kinds"] == {"msg": 2, "epoch": 1, "status": 1}
    assert data["types"] == {"request": 1, "notification": 1}
    assert data["counts"] == {"done": 1, "pending": 1}
    assert data["senders"]["kami"] == 2  # the epoch header and one message
    assert "msg 2" in cli.ok("stats")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["send"], 5, "missing TEXT"),
        (["send", "x", "--priority", "urgent"], 5, "--priority must be one of"),
        (["send", "x", "--type", "question"], 5, "--type must be one of"),
        (["send", "x", "--expires", "soon"], 5, "duration 'soon'"),
        (["send", "x", "--from", "Kami Bot"], 5, "not valid"),
        (["send", "x", "--meta", "novalue"], 5, "KEY=VALUE"),
        (["tail", "-n", "-1"], 2, "greater than or equal to 0"),
        (["tail", "--status", "happy"], 5, "--status must be one of"),
        (["bogus"], 2, "No such command"),
        (["send", "x", "--bogus"], 2, "No such option"),
        (["inbox"], 2, "--for"),
    ],
)
def test_bad_input_is_one_line_and_a_documented_code(cli: CLI, args: list[str], code: int,
                                                     message: str) -> None:
    result = cli.run(*args)
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_oversized_message_is_refused(cli: CLI) -> None:
    result = cli.run("send", "-", input="x" * (1 << 20))
    assert result.returncode == 5
    assert "over the 1048576-byte limit" in result.stderr


def test_not_utf8_stdin_is_refused(cli: CLI) -> None:
    result = cli.run("send", "-", input=b"\xff\xfe bad")
    assert result.returncode == 5
    assert "not UTF-8" in result.stderr


def test_reading_a_missing_bridge_is_exit_6(cli: CLI) -> None:
    result = cli.run("inbox", "--for", "kami")
    assert result.returncode == 6
    assert "does not exist" in result.stderr
    assert not cli.directory.exists()


def test_unwritable_log_is_an_io_error(cli: CLI) -> None:
    cli.ok("send", "x")
    log = cli.directory / "messages.jsonl"
    log.unlink()
    log.mkdir()  # something that cannot be opened as the log
    result = cli.run("send", "y")
    assert result.returncode == 7
    assert result.stderr.startswith("error: cannot open")


def test_help_on_every_command(cli: CLI) -> None:
    from cli import app

    names = [c.name or c.callback.__name__ for c in app.registered_commands]  # type: ignore[union-attr]
    assert len(names) >= 13
    for name in names:
        result = cli.run(name, "--help")
        assert result.returncode == 0, name
        assert "Usage" in result.stdout


def test_no_color_means_no_escape_codes(cli: CLI) -> None:
    cli.ok("send", "x", "--priority", "high")
    forced = {"FORCE_COLOR": "1", "TERM": "xterm-256color"}
    colored = cli.run("tail", env={**forced, "NO_COLOR": ""})
    plain = cli.run("tail", env=forced)  # cli.env has NO_COLOR=1
    assert "\x1b[" in colored.stdout
    assert "\x1b[" not in plain.stdout


def test_dir_option_overrides_the_environment(cli: CLI, tmp_path: Path) -> None:
    other = tmp_path / "other"
    mid = cli.ok("--dir", str(other), "send", "x").strip()
    assert mid.encode() in (other / "messages.jsonl").read_bytes()
    assert not cli.directory.exists()


def test_version(cli: CLI) -> None:
    assert cli.ok("--version").startswith("bridge ")


def test_jq_reads_every_line_the_bridge_writes(cli: CLI) -> None:
    jq = require_tool("jq")
    mid = cli.ok("send", "שלום 👋 \"quoted\" \\ back", "--from", "kami", "--to", "claude",
                 "--meta", "k=v").strip()
    cli.ok("reply", mid, "תשובה", "--from", "claude")
    cli.ok("pause", "--reason", "r")
    cli.ok("resume")
    bad = cli.directory / "x"
    bad.write_text("")
    log = cli.directory / "messages.jsonl"
    with open(log, "ab") as f:
        f.write(b'{"torn')
    cli.ok("send", "after a torn tail")  # writes a repair record too
    # Every line but the torn fragment parses with jq, one object per line.
    valid = [line for line in log.read_bytes().split(b"\n")[:-1] if line != b'{"torn']
    out = subprocess.run([jq, "-c", "."], input=b"\n".join(valid) + b"\n",
                         capture_output=True, check=True).stdout.decode().splitlines()
    assert len(out) == len(valid)
    kinds = subprocess.run([jq, "-r", ".t"], input=b"\n".join(valid) + b"\n",
                           capture_output=True, check=True).stdout.decode().split()
    assert kinds == ["epoch", "msg", "msg", "status", "event", "event", "repair", "msg"]
    content = subprocess.run([jq, "-r", f'select(.id=="{mid}") | .content'],
                             input=b"\n".join(valid) + b"\n", capture_output=True,
                             check=True).stdout.decode()
    assert content.strip() == 'שלום 👋 "quoted" \\ back'
    os.unlink(bad)
