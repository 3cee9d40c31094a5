"""The ``bridge`` command: a thin typer + rich layer over the ``bridge`` library.

Each command parses its arguments, calls one library function and renders the
result. Every error the library raises on purpose becomes one line on stderr
and the exit code documented in docs/cli.md; nothing prints a traceback.

This module holds the message commands and assembles the app: the other command
modules (cli_archive, cli_ops, cli_claude) each have their own typer app, merged
in here at the top level; what they share is in cli_common, which imports none of
them. Nothing imports this module but the console script (cli_entry) and tests.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

import bridge as lib
import cli_archive
import cli_claude
import cli_ops
from bridge import history_dict, status_dict
from bridge.format import MESSAGE_TYPES, PRIORITIES, STATUSES, human_duration
from cli_common import (
    EXIT_INTERRUPTED,
    EXIT_IO,
    STATUS_MARK,
    STATUS_STYLE,
    FromOption,
    JsonOption,
    age,
    check_choice,
    close_bridges,
    err,
    new_app,
    one_line,
    open_bridge,
    out,
    print_json,
    read_text_arg,
    render_record,
    short_time,
    state,
    view_json,
    visible,
)

app = new_app(
    name="bridge",
    help="Agents on different machines talking through one append-only JSONL file.",
    no_args_is_help=True,
)

MESSAGES = "Messages"
CONTROL = "Control and inspection"

DirOption = Annotated[
    Path | None,
    typer.Option("--dir", "-d", envvar="BRIDGE_DIR", show_envvar=True, metavar="DIR",
                 help="Bridge directory (default: ~/.claude/kami-bridge)."),
]
UrlOption = Annotated[
    str | None,
    typer.Option("--url", "-u", envvar="BRIDGE_URL", show_envvar=True, metavar="URL",
                 help="The bridge as a local path or ssh://\\[user@]host\\[:port]/path "
                 "(instead of --dir)."),
]
IdArgument = Annotated[str, typer.Argument(metavar="ID", help="Message id.")]


def _version(value: bool) -> None:
    if value:
        print(f"bridge {lib.__version__}")
        raise typer.Exit


@app.callback()
def _root(
    ctx: typer.Context,
    directory: DirOption = None,
    url: UrlOption = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Agents on different machines talking through one append-only JSONL file.

    The bridge comes from --url or --dir, else $BRIDGE_URL, else $BRIDGE_DIR,
    else ~/.claude/kami-bridge. Every command has --help; docs/cli.md has all.
    """
    del version
    state.directory = directory
    state.url = _choose_url(ctx, directory, url)


def _choose_url(ctx: typer.Context, directory: Path | None, url: str | None
                ) -> lib.BridgeURL | None:
    """--url or --dir: a flag given on the command line beats one from the environment."""
    if url is None:
        return None

    def on_command_line(name: str) -> bool:
        return getattr(ctx.get_parameter_source(name), "name", None) == "COMMANDLINE"

    dir_flag, url_flag = on_command_line("directory"), on_command_line("url")
    if directory is not None and dir_flag and url_flag:
        raise lib.InvalidInput("give --dir or --url, not both")
    if directory is not None and dir_flag:
        return None  # --dir on the command line beats $BRIDGE_URL
    return lib.parse_url(url)


def _sent_json(result: lib.SendResult) -> dict[str, Any]:
    """What send and reply print with --json (a repeated idempotency key: duplicate true)."""
    return {"id": result.id, "offset": result.offset, "duplicate": result.duplicate}


@app.command(rich_help_panel=MESSAGES)
def send(
    text: Annotated[str | None, typer.Argument(metavar="TEXT",
                                               help="Message text, or - to read stdin.")] = None,
    sender: FromOption = None,
    to: Annotated[str | None, typer.Option("--to", metavar="NAME", help="Recipient (default: "
                                           "any agent but the sender).")] = None,
    type_: Annotated[str, typer.Option("--type", metavar="TYPE",
                                       help="request, response or notification.")
                     ] = "request",
    reply_to: Annotated[str | None, typer.Option("--reply-to", metavar="ID",
                                                 help="Id this answers.")] = None,
    priority: Annotated[str | None, typer.Option("--priority", metavar="PRIORITY",
                                                 help="low, normal or high.")] = None,
    meta: Annotated[list[str] | None, typer.Option("--meta", metavar="KEY=VALUE",
                                                   help="Metadata (repeatable).")] = None,
    idempotency_key: Annotated[str | None, typer.Option(
        "--idempotency-key", metavar="KEY", help="A retried send with the same key appends "
        "nothing and prints the original id.")] = None,
    expires: Annotated[str | None, typer.Option("--expires", metavar="DURATION",
                                                help="Expire after this long (e.g. 10m, 2h, "
                                                "7d).")] = None,
    batch: Annotated[bool, typer.Option("--batch", help="Read one JSON message object per "
                                        "stdin line; print one id per line.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help='Print {"id", "offset", '
                                          '"duplicate"} (one line per message with '
                                          "--batch).")] = False,
) -> None:
    """Append a message and print its id."""
    # Every check before the bridge is opened: opening may create the directory.
    if sender is not None and not sender.strip():
        raise lib.InvalidInput("--from is empty (give an agent name, or leave it out for "
                               "$BRIDGE_AGENT)")
    if batch:
        if text not in (None, "-"):
            raise lib.InvalidInput("--batch reads stdin; give no TEXT (or -)")
        _send_batch(open_bridge(agent=sender), as_json)
        return
    if text is None:
        raise lib.InvalidInput("missing TEXT (give the message, or - to read stdin)")
    check_choice(type_, MESSAGE_TYPES, "--type")
    check_choice(priority, PRIORITIES, "--priority")
    content = read_text_arg(text)
    if not content.strip():
        raise lib.InvalidInput("the message is empty (nothing but whitespace); nothing was "
                               "sent")
    metadata = lib.parse_meta(meta or [])
    expires_in = lib.parse_duration(expires) if expires else None
    b = open_bridge(agent=sender)
    if reply_to is not None:
        b.get(reply_to)  # NotFound (exit 3) for an id that is neither live nor archived
    result = b.send(
        content, to=to, type=type_, reply_to=reply_to, priority=priority,
        metadata=metadata, idempotency_key=idempotency_key, expires_in=expires_in,
    )
    if as_json:
        print_json(_sent_json(result))
    else:
        print(result.id)


def _stdin_objects() -> Iterator[dict[str, Any]]:
    for n, raw in enumerate(sys.stdin.buffer, 1):
        if not raw.strip():
            continue
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            why = str(exc).split(":", 1)[0]
            raise lib.InvalidInput(f"stdin line {n}: not JSON ({why})") from None
        if not isinstance(obj, dict):
            raise lib.InvalidInput(f"stdin line {n}: expected a JSON object")
        yield obj


def _send_batch(b: lib.Backend, as_json: bool = False) -> None:
    write = sys.stdout.write
    count = 0
    try:
        for result in b.send_many(_stdin_objects()):
            if as_json:
                write(orjson.dumps(_sent_json(result)).decode() + "\n")
            else:
                write(result.id + "\n")
            count += 1
    except lib.InvalidInput as exc:
        sys.stdout.flush()
        raise lib.InvalidInput(f"{exc} (the {count} message(s) before it were appended and "
                               "their ids printed)") from None
    sys.stdout.flush()


def _matches(rec: dict[str, Any], sender: str | None, to: str | None, type_: str | None,
             statuses: set[str] | None) -> bool:
    kind = rec.get("t") or "msg"
    if kind == "epoch":  # the file's header: structure, not activity
        return False
    if type_ is not None or statuses is not None or to is not None:
        if kind != "msg":
            return False
        if type_ is not None and rec.get("type") != type_:
            return False
        if to is not None and rec.get("to") != to:
            return False
        if statuses is not None and rec.get("id") not in statuses:
            return False
    return not (sender is not None and rec.get("from") != sender)


@app.command(rich_help_panel=MESSAGES)
def tail(
    lines: Annotated[int, typer.Option("-n", "--lines", min=0, metavar="N",
                                       help="How many records to show first.")] = 10,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing new "
                                         "records.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print each record's line exactly "
                                          "as it is in the file (JSONL).")] = False,
    sender: Annotated[str | None, typer.Option("--from", metavar="NAME",
                                               help="Only records from NAME.")] = None,
    to: Annotated[str | None, typer.Option("--to", metavar="NAME",
                                           help="Only messages to NAME.")] = None,
    type_: Annotated[str | None, typer.Option("--type", metavar="TYPE",
                                              help="Only messages of this type.")] = None,
    status: Annotated[str | None, typer.Option("--status", metavar="STATUS",
                                               help="Only messages whose current status is "
                                               "this.")] = None,
) -> None:
    """Show the last records, and with -f new ones as they arrive."""
    check_choice(type_, MESSAGE_TYPES, "--type")
    check_choice(status, STATUSES, "--status")
    b = open_bridge(create=False)
    wanted: set[str] | None = None
    if status is not None:
        now = time.time()
        wanted = {s.id for s in b.fold() if s.effective_status(now) == status}
    console = out()
    width = console.width if sys.stdout.isatty() else None

    def emit(entry: lib.Entry, raw_line: Any = b.raw_line) -> None:
        if as_json:  # the line exactly as it is in the file (the one it was read from)
            sys.stdout.buffer.write(raw_line(entry))
        else:
            console.print(render_record(entry.record, width))

    entries, end = b.tail(lines, lambda r: _matches(r, sender, to, type_, wanted))
    for entry in entries:
        emit(entry)
    sys.stdout.flush()
    if not follow:
        return
    # Continue exactly after the last line read above: nothing missed, nothing twice.
    with b.follow(start=end) as follower:
        # The follower knows the file each entry came from (after a rotation the live
        # name may point elsewhere), so the bytes come from it, not from the bridge.
        raw = follower.raw_line
        for entry in follower:
            rec = entry.record
            if status is not None and rec.get("t") in (None, "msg") \
                    and rec.get("status", "pending") == status and wanted is not None:
                wanted.add(rec["id"])
            if _matches(rec, sender, to, type_, wanted):
                emit(entry, raw)
                sys.stdout.flush()


@app.command(rich_help_panel=MESSAGES)
def inbox(
    agent: Annotated[str, typer.Option("--for", metavar="NAME",
                                       help="Agent whose waiting messages to list.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON array of message "
                                          "views (docs/view.schema.json).")] = False,
) -> None:
    """List the messages waiting for an agent, then its dead letters.

    Open messages addressed to NAME (or to any agent), highest priority first;
    messages in flight are listed with who holds them. Dead letters are its
    messages given up on after their retries.
    """
    b = open_bridge(create=False)
    views = b.inbox(agent)
    dead = b.dead_letters(agent)
    now = time.time()
    if as_json:
        print_json([view_json(v, now) for v in views + dead])
        return
    console = out()
    if not views:
        console.print(f"Nothing waiting for {escape(agent)}.")
    else:
        _print_rows(console, views, now)
    if dead:
        console.print(Text(f"\nDead letters ({len(dead)}): given up on after their retries "
                           "(bridge show ID for why)", style="bold red"))
        _print_rows(console, dead, now)


def _print_rows(console: Console, views: list[lib.MessageView], now: float) -> None:
    """One padded row per message: id, sender, type, status, age, content."""
    # Plain padded rows rather than a rich Table: a table drops whole columns
    # when the terminal is narrow; here only the content is shortened.
    labels = []
    for v in views:
        eff = v.state.effective_status(now)
        labels.append((eff, eff if eff != "claimed" else
                       f"claimed:{visible(str(v.state.claimed_by))}"))
    id_w = max(len(v.id) for v in views)
    from_w = max(4, *(len(v.message.sender) for v in views))
    type_w = max(len(v.message.type) for v in views)
    st_w = max(6, *(len(label) for _, label in labels))
    width = console.width if sys.stdout.isatty() or "COLUMNS" in os.environ else None
    console.print(Text(f"{'id':<{id_w}}  {'from':<{from_w}}  {'type':<{type_w}}  "
                       f"{'status':<{st_w}}  {'age':>5}  content", style="bold"))
    for v, (eff, label) in zip(views, labels, strict=True):
        row = Text(f"{visible(v.id):<{id_w}}  {visible(v.message.sender):<{from_w}}  "
                   f"{visible(v.message.type):<{type_w}}  ")
        row.append(f"{label:<{st_w}}", style=STATUS_STYLE.get(eff, ""))
        row.append(f"  {age(v.message.ts, now):>5}  ")
        if v.state.priority == "high":
            row.append("! ", style="bold red")
        room = None if width is None else max(width - len(row.plain), 10)
        row.append(one_line(v.message.content, room, v.id))
        console.print(row)


@app.command(rich_help_panel=MESSAGES)
def show(
    message_id: IdArgument,
    as_json: Annotated[bool, typer.Option("--json", help="Print the message view with its "
                                          "changes, thread and archive.")] = False,
) -> None:
    """Show a message, its status history and its thread."""
    b = open_bridge(create=False)
    hist = b.history(message_id)
    now = time.time()
    if as_json:
        print_json(history_dict(hist, now))
        return
    console = out()
    m, st = hist.view.message, hist.view.state
    eff = st.effective_status(now)
    console.print(Text(visible(m.id), style="bold"))
    if hist.archive is not None:
        console.print(Text(f"archived in {hist.archive.parent.name}/{hist.archive.name}",
                           style="dim"))
    rows = [("from", visible(m.sender)), ("to", visible(m.to or "* (any agent but the sender)")),
            ("type", visible(m.type)), ("priority", st.priority),
            ("sent", f"{short_time(m.ts)} ({age(m.ts, now)} ago)")]
    if m.reply_to:
        rows.append(("reply to", visible(m.reply_to)))
    if m.expires:
        rows.append(("expires", short_time(m.expires)))
    for key, value in m.metadata.items():
        if key != "priority":
            rows.append((f"meta.{visible(key)}", visible(str(value))))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim")
    grid.add_column()
    for key, value in rows:
        grid.add_row(Text(key), Text(value))
    grid.add_row("status", Text(eff, style=STATUS_STYLE.get(eff, "")))
    console.print(grid)
    console.print()
    # A Text, not a str: rich would read "[bold]" in a message as its markup.
    console.print(Text(visible(m.content)))
    console.print()
    if hist.changes:
        console.print(Text("history", style="bold"))
        for rec in hist.changes:
            console.print(render_record(rec, None))
    if len(hist.thread) > 1:
        console.print(Text("thread", style="bold"))
        for v in hist.thread:
            marker = "▸ " if v.id == m.id else "  "
            line = Text(marker)
            line.append(render_record(v.message.to_record(), console.width - 2))
            console.print(line)


WriteJsonOption = Annotated[bool, typer.Option("--json", help="Print what was done as one "
                                               "JSON object.")]


@app.command(rich_help_panel=MESSAGES)
def reply(
    message_id: Annotated[str, typer.Argument(metavar="ID", help="Message to answer.")],
    text: Annotated[str, typer.Argument(metavar="TEXT",
                                        help="Answer text, or - to read stdin.")],
    sender: FromOption = None,
    as_json: Annotated[bool, typer.Option("--json", help='Print {"id", "offset", '
                                          '"duplicate"} of the response.')] = False,
) -> None:
    """Answer a message (to its sender) and mark it done.

    Prints the response's id. The response copies ID's WhatsApp chat
    metadata; the answer and the status change are one write.
    """
    b = open_bridge(agent=sender, create=False)
    result = b.reply(message_id, read_text_arg(text))
    if as_json:
        print_json(_sent_json(result))
    else:
        print(result.id)


def _set(message_id: str, status: str, reason: str | None, sender: str | None,
         force: bool = False, as_json: bool = False) -> None:
    b = open_bridge(agent=sender, create=False)
    record = b.set_status(message_id, status, reason=reason, force=force)
    if as_json:
        print_json({"id": message_id, "status": status, "reason": reason,
                    "status_id": record})
    else:
        err().print(f"{STATUS_MARK[status]} {escape(visible(message_id))} {status}")


ReasonOption = Annotated[str | None, typer.Option("--reason", metavar="TEXT",
                                                  help="Why (kept in the log).")]
ForceOption = Annotated[bool, typer.Option("--force", help="Even if another agent holds "
                                           "a claim on it.")]


@app.command(rich_help_panel=MESSAGES)
def done(message_id: IdArgument, reason: ReasonOption = None, sender: FromOption = None,
         force: ForceOption = False, as_json: WriteJsonOption = False) -> None:
    """Mark a message done."""
    _set(message_id, "done", reason, sender, force, as_json)


@app.command(rich_help_panel=MESSAGES)
def fail(message_id: IdArgument, reason: ReasonOption = None, sender: FromOption = None,
         force: ForceOption = False, as_json: WriteJsonOption = False) -> None:
    """Mark a message failed."""
    _set(message_id, "failed", reason, sender, force, as_json)


@app.command(rich_help_panel=MESSAGES)
def cancel(message_id: IdArgument, reason: ReasonOption = None, sender: FromOption = None,
           as_json: WriteJsonOption = False) -> None:
    """Cancel a message (even one another agent holds)."""
    _set(message_id, "cancelled", reason, sender, as_json=as_json)


@app.command(rich_help_panel=CONTROL)
def pause(
    reason: ReasonOption = None,
    by: Annotated[str | None, typer.Option("--by", metavar="NAME", help="Who pauses "
                                           "(default: $BRIDGE_AGENT, else cli).")] = None,
    as_json: WriteJsonOption = False,
) -> None:
    """Create the PAUSE file: every agent stops taking work.

    Until resume. On a bridge already paused nothing changes: the first
    pause stands.
    """
    b = open_bridge(agent=by)
    before = b.paused()
    info = b.pause(reason)
    if as_json:
        print_json({"paused": True, "pause": info.to_dict(), "changed": before is None})
        return
    why = f": {escape(visible(info.reason))}" if info.reason else ""
    if before is not None:
        # The first pause stands: saying "paused" with the new reason would be a lie.
        err().print(f"⏸ already paused by {escape(visible(str(info.by)))} since "
                    f"{short_time(info.since)}{why} (unchanged)")
        return
    err().print(f"⏸ paused by {escape(visible(str(info.by)))}{why}")


@app.command(rich_help_panel=CONTROL)
def resume(
    by: Annotated[str | None, typer.Option("--by", metavar="NAME", help="Who resumes.")
                  ] = None,
    as_json: WriteJsonOption = False,
) -> None:
    """Remove the PAUSE file."""
    b = open_bridge(agent=by, create=False)
    was = b.resume()
    if as_json:
        print_json({"paused": False, "pause": None, "changed": was})
    elif was:
        err().print("▶ resumed")
    else:
        err().print("not paused")


@app.command(rich_help_panel=CONTROL)
def status(as_json: JsonOption = False) -> None:
    """Pause state, message counts by status, size and last activity."""
    b = open_bridge(create=False)
    st = b.status()
    if as_json:
        print_json(status_dict(st))
        return
    console = out()
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim")
    grid.add_column()
    grid.add_row("bridge", str(st.directory))
    if st.paused:
        p = st.paused
        since = f" since {short_time(p.since)}" if p.since else ""
        why = f": {p.reason}" if p.reason else ""
        grid.add_row("state", Text(visible(f"PAUSED by {p.by or 'someone'}{since}{why}"),
                                   style="bold yellow"))
    else:
        grid.add_row("state", Text("running", style="green"))
    counts = ", ".join(f"{k} {v}" for k, v in sorted(st.counts.items())) or "no messages"
    grid.add_row("messages", counts)
    grid.add_row("size", f"{st.size:,} bytes, {st.records:,} records"
                 + (f", {st.bad_lines} bad line(s)" if st.bad_lines else ""))
    now = time.time()
    last = f"{short_time(st.last_activity)} ({age(st.last_activity, now)} ago)" \
        if st.last_activity else "never"
    grid.add_row("last activity", last)
    console.print(grid)


@app.command(rich_help_panel=CONTROL)
def doctor(
    as_json: JsonOption = False,
    repair: Annotated[bool, typer.Option("--repair", help="First finish or roll back an "
                                         "interrupted rotation.")] = False,
) -> int:
    """Validate the live file and the archives (exit 1 on errors).

    Reports torn and corrupt lines, schema violations, orphan status records,
    permissions, cursors, and in the archives damaged data, duplicates and an
    interrupted rotation.
    """
    b = open_bridge(create=False)
    if repair and not b.capabilities.repair:
        raise lib.InvalidInput("doctor --repair changes files: run it on the bridge's host "
                               "(bridge --dir DIR doctor --repair)")
    report = b.doctor(repair=repair)
    if as_json:
        print_json(report.to_dict())
        return 0 if report.ok else 1
    console = out()
    for note in report.repaired:
        console.print(Text(f"repaired: {note}", style="green"))
    for f in report.findings:
        where = f"line {f.line}" if f.line else (f"offset {f.offset}" if f.offset is not None
                                                  else "")
        if f.file:
            where = f"{f.file} {where}".strip()
        style = "red" if f.severity == "error" else "yellow"
        row = Text(f"{f.severity:7}", style=style)
        row.append(f" {f.kind:15} ")
        if where:
            row.append(f"{where}: ", style="dim")
        row.append(visible(f.message))
        console.print(row)
    archives = (f", {report.archives} archive(s) with {report.archived_records:,} records"
                if report.archives else "")
    summary = (f"{report.lines:,} lines, {report.records:,} records, {report.messages:,} "
               f"messages{archives}: {len(report.errors)} error(s), "
               f"{len(report.warnings)} warning(s)")
    console.print(Text(summary, style="green" if report.ok else "bold red"))
    return 0 if report.ok else 1


def stats_json(data: dict[str, Any]) -> dict[str, Any]:
    """``b.stats()`` in the CLI's shape: message counts by status under ``counts``, as in
    ``bridge status`` (a host with an older toolkit says ``statuses``)."""
    shaped: dict[str, Any] = {}
    for key, value in data.items():
        if key == "statuses":
            shaped.setdefault("counts", value)
        else:
            shaped[key] = value
    return shaped


@app.command(rich_help_panel=CONTROL)
def stats(as_json: JsonOption = False) -> None:
    """Counts by kind, sender, type and status; size; time span."""
    b = open_bridge(create=False)
    data = stats_json(b.stats())
    if as_json:
        print_json(data)
        return
    console = out()
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim")
    grid.add_column()
    for key in ("size", "lines", "records", "bad_lines", "first", "last"):
        grid.add_row(key.replace("_", " "), f"{data[key]:,}" if isinstance(data[key], int)
                     else str(data[key]))
    for key, label in (("kinds", "kinds"), ("senders", "senders"), ("types", "types"),
                       ("counts", "statuses")):
        grid.add_row(label, visible(", ".join(f"{k} {v:,}"
                                              for k, v in data.get(key, {}).items()) or "-"))
    if data.get("oldest_open"):
        age_s = data.get("oldest_open_age_s")
        # A host with an older toolkit sends the age as text (oldest_open_age).
        shown = human_duration(age_s) if isinstance(age_s, int | float) else data.get(
            "oldest_open_age", "?")
        grid.add_row("oldest open", f"{visible(str(data['oldest_open']))} ({shown})")
    console.print(grid)


# -- the app: every module's commands at the top level -----------------------------------------

app.add_typer(cli_archive.app)
app.add_typer(cli_ops.app)
app.add_typer(cli_claude.app)


# -- entry point -------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (used by the console script and the tests)."""
    from typer.exceptions import Abort, Exit, TyperException

    command = typer.main.get_command(app)
    try:
        try:
            rv = command.main(args=argv, prog_name="bridge", standalone_mode=False)
        finally:
            close_bridges()
    except Exit as exc:
        return exc.exit_code
    except TyperException as exc:
        # Usage errors: one line, like every other error, plus where help is.
        ctx = getattr(exc, "ctx", None)
        hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
        err().print(Text(f"error: {exc.format_message()}{hint}", style="red"))
        return exc.exit_code
    except Abort:
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except lib.BridgeError as exc:
        err().print(Text(f"error: {exc}", style="red"))
        return exc.exit_code
    except BrokenPipeError:
        # `bridge tail | head`: the reader left; that is not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as exc:
        what = exc.strerror or str(exc)
        where = f": {exc.filename}" if exc.filename else ""
        err().print(Text(f"error: {what}{where}", style="red"))
        return EXIT_IO
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
