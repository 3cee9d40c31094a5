"""The ``bridge`` command: a thin typer + rich layer over the ``bridge`` library.

Each command parses its arguments, calls one library function and renders the
result. Every error the library raises on purpose becomes one line on stderr
and the exit code documented in docs/cli.md; nothing prints a traceback.
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
from bridge.format._records import MESSAGE_TYPES, PRIORITIES, STATUSES
from bridge.format._time import human_duration, parse_ts

app = typer.Typer(
    name="bridge",
    help="Agents on different machines talking through one append-only JSONL file.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Tracebacks with locals would print tokens and message content.
    pretty_exceptions_show_locals=False,
    rich_markup_mode="rich",
)

EXIT_USAGE = 2
CLI_LOCK_TIMEOUT = 30.0
"""A command waits this long for the bridge lock, then names the holder and exits 6."""
EXIT_IO = 7
EXIT_INTERRUPTED = 130


class _State:
    """Options given before the command (``bridge --dir X send ...``)."""

    directory: Path | None = None
    url: lib.BridgeURL | None = None
    bridges: list[lib.AnyBridge] = []  # noqa: RUF012 - one process, one command


state = _State()


def _no_color() -> bool:
    # NO_COLOR (https://no-color.org): rich alone drops colours but keeps bold
    # and dim; plain text is what people setting it ask for.
    return bool(os.environ.get("NO_COLOR"))


def out() -> Console:
    # Created on use, not at import: rich probes the terminal when a Console is made.
    tty = sys.stdout.isatty()
    wide = tty or "COLUMNS" in os.environ  # else a pipe: do not cut lines at 80
    return Console(highlight=False, soft_wrap=not tty, width=None if wide else 240,
                   color_system=None if _no_color() else "auto")


def err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True,
                   color_system=None if _no_color() else "auto")


def default_agent() -> str:
    return os.environ.get("BRIDGE_AGENT") or "cli"


def open_bridge(*, agent: str | None = None, create: bool = True,
                url: lib.BridgeURL | None = None) -> lib.AnyBridge:
    """The bridge named by --url / $BRIDGE_URL or --dir / $BRIDGE_DIR, opened for this command.

    A remote one (ssh://) has the same API: every command works on both alike.
    """
    durability = os.environ.get("BRIDGE_DURABILITY", "always")
    if durability not in ("always", "batch", "none"):
        raise lib.ConfigError("BRIDGE_DURABILITY", "must be always, batch or none")
    url = url or state.url
    b: lib.AnyBridge
    if url is not None and url.remote:
        b = lib.connect(url, agent=agent or default_agent(), durability=durability,
                        group=os.environ.get("BRIDGE_GROUP") or None, create=create,
                        lock_timeout=CLI_LOCK_TIMEOUT)
    else:
        b = lib.Bridge(
            Path(url.path).expanduser() if url is not None and url.path else state.directory,
            agent=agent or default_agent(),
            durability=durability,  # type: ignore[arg-type]
            group=os.environ.get("BRIDGE_GROUP") or None,
            create=create,
            lock_timeout=CLI_LOCK_TIMEOUT,
        )
    state.bridges.append(b)
    if getattr(b, "created", False):
        # A typo in --dir or $BRIDGE_DIR would otherwise make a bridge nobody reads.
        err().print(Text(f"note: created a new bridge at {b.directory}", style="yellow"))
    return b


def read_text_arg(text: str) -> str:
    """TEXT as given, or all of stdin for ``-``."""
    if text != "-":
        return text
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise lib.InvalidInput(f"stdin is not UTF-8 text (byte {exc.start})") from None


def print_json(obj: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE))
    sys.stdout.buffer.flush()


# -- rendering -------------------------------------------------------------------------

_STATUS_STYLE = {
    "pending": "yellow", "claimed": "cyan", "done": "green", "failed": "red",
    "cancelled": "magenta", "expired": "dim", "dead": "bold red",
}  # fmt: skip
_STATUS_MARK = {"done": "✓", "failed": "✗", "cancelled": "⊘", "expired": "⌛", "dead": "☠",
                "claimed": "▶", "pending": "↺"}


def _short_time(ts: str | None) -> str:
    if not ts:
        return "?"
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(parse_ts(ts)))
    except ValueError:
        return ts


# C0 controls but tab and newline, DEL, and C1 controls (0x9b is CSI on its own).
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))
            if c not in (0x09, 0x0A)}


def visible(text: str) -> str:
    """``text`` with control characters shown as ``\\xHH``.

    Message text comes from WhatsApp senders and remote agents: an escape sequence
    in it must not recolour, clear or retitle the terminal of whoever reads the
    bridge. (``--json`` output escapes them as JSON does.)
    """
    return text.translate(_CONTROL)


def _one_line(text: str, limit: int | None) -> str:
    flat = visible(text.replace("\r\n", "\n").replace("\n", " ⏎ "))
    if limit is not None and len(flat) > limit:
        return flat[: max(limit - 1, 0)] + "…"
    return flat


def render_record(rec: dict[str, Any], width: int | None) -> Text:
    """One human-readable row for any record."""
    kind = rec.get("t") or "msg"
    line = Text(_short_time(rec.get("ts")), style="dim")
    line.append("  ")
    sender = visible(str(rec.get("from", "?")))
    if kind == "msg":
        to = rec.get("to") or "*"
        line.append(sender, style="bold")
        line.append(" → ")
        line.append(visible(str(to)), style="bold")
        line.append(f"  {visible(str(rec.get('type', '?')))}", style="blue")
        prio = (rec.get("metadata") or {}).get("priority")
        if prio == "high":
            line.append(" !", style="bold red")
        line.append(f"  {visible(str(rec.get('id')))}", style="dim")
        if rec.get("reply_to"):
            line.append(f" ↩ {visible(str(rec['reply_to']))}", style="dim")
        line.append("  ")
        used = len(line.plain)
        line.append(_one_line(str(rec.get("content", "")), None if width is None
                              else max(width - used, 10)))
    elif kind == "status":
        status = str(rec.get("status"))
        line.append(sender, style="bold")
        line.append(f"  {_STATUS_MARK.get(status, '•')} {visible(status)}",
                    style=_STATUS_STYLE.get(status, ""))
        line.append(f"  {visible(str(rec.get('ref')))}", style="dim")
        if rec.get("lease_until"):
            line.append(f"  lease until {_short_time(rec['lease_until'])}", style="dim")
        if rec.get("reason"):
            line.append(f"  {_one_line(str(rec['reason']), None)}")
    elif kind == "event":
        line.append(sender, style="bold")
        line.append(f"  ◆ {visible(str(rec.get('event')))}", style="magenta")
        extra = {k: v for k, v in rec.items()
                 if k not in ("v", "t", "id", "ts", "from", "event")}
        if extra:
            line.append("  " + visible(" ".join(f"{k}={v}" for k, v in extra.items())),
                        style="dim")
    else:
        line.append(sender, style="bold")
        line.append(f"  ({visible(str(kind))})", style="dim")
        if kind == "repair":
            line.append(f"  terminated a {rec.get('bytes')}-byte fragment at offset "
                        f"{rec.get('offset')}", style="yellow")
    return line


def _age(ts: str, now: float) -> str:
    try:
        return human_duration(now - parse_ts(ts))
    except ValueError:
        return "?"


def view_json(view: lib.MessageView, now: float) -> dict[str, Any]:
    st = view.state
    return {
        "message": view.message.to_record(),
        "status": st.effective_status(now),
        "claimed_by": st.claimed_by,
        "lease_until": st.lease_until,
        "attempts": st.attempts,
        "reason": st.reason,
        "updated": st.updated,
    }


# -- commands --------------------------------------------------------------------------

DirOption = Annotated[
    Path | None,
    typer.Option("--dir", "-d", envvar="BRIDGE_DIR", show_envvar=True,
                 help="Bridge directory (default: ~/.claude/kami-bridge)."),
]
FromOption = Annotated[
    str | None,
    typer.Option("--from", help="Sender name (default: $BRIDGE_AGENT, else cli)."),
]
UrlOption = Annotated[
    str | None,
    typer.Option("--url", "-u", envvar="BRIDGE_URL", show_envvar=True,
                 help="The bridge as a local path or ssh://[user@]host[:port]/path "
                 "(instead of --dir)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


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

    The bridge comes from --url or --dir, else $BRIDGE_URL, else $BRIDGE_DIR, else
    ~/.claude/kami-bridge.
    """
    del version
    state.directory = directory
    state.url = _choose_url(ctx, directory, url)


def _check_choice(value: str | None, allowed: frozenset[str], what: str) -> None:
    if value is not None and value not in allowed:
        raise lib.InvalidInput(f"{what} must be one of {', '.join(sorted(allowed))}, "
                               f"not {value!r}")


@app.command()
def send(
    text: Annotated[str | None, typer.Argument(help="Message text, or - to read stdin.")] = None,
    sender: FromOption = None,
    to: Annotated[str | None, typer.Option("--to", help="Recipient (default: every agent "
                                           "but the sender].")] = None,
    type_: Annotated[str, typer.Option("--type", help="request, response or notification.")
                     ] = "request",
    reply_to: Annotated[str | None, typer.Option("--reply-to", help="Id this answers.")] = None,
    priority: Annotated[str | None, typer.Option("--priority", help="low, normal or high.")
                        ] = None,
    meta: Annotated[list[str] | None, typer.Option("--meta", help="Metadata KEY=VALUE "
                                                   "(repeatable).")] = None,
    idempotency_key: Annotated[str | None, typer.Option(
        "--idempotency-key", help="A retried send with the same key appends nothing and "
        "prints the original id.")] = None,
    expires: Annotated[str | None, typer.Option("--expires", help="Expire after DURATION "
                                                "(e.g. 10m, 2h, 7d).")] = None,
    batch: Annotated[bool, typer.Option("--batch", help="Read one JSON message object per "
                                        "stdin line; print one id per line.")] = False,
) -> None:
    """Append a message and print its id."""
    # Every check before the bridge is opened: opening may create the directory.
    if sender is not None and not sender.strip():
        raise lib.InvalidInput("--from is empty (give an agent name, or leave it out for "
                               "$BRIDGE_AGENT)")
    if batch:
        if text not in (None, "-"):
            raise lib.InvalidInput("--batch reads stdin; give no TEXT (or -)")
        _send_batch(open_bridge(agent=sender))
        return
    if text is None:
        raise lib.InvalidInput("missing TEXT (give the message, or - to read stdin)")
    _check_choice(type_, MESSAGE_TYPES, "--type")
    _check_choice(priority, PRIORITIES, "--priority")
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


def _send_batch(b: lib.AnyBridge) -> None:
    write = sys.stdout.write
    count = 0
    try:
        for result in b.send_many(_stdin_objects()):
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


@app.command()
def tail(
    lines: Annotated[int, typer.Option("-n", "--lines", min=0, help="How many records "
                                       "to show first.")] = 10,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing new "
                                         "records.")] = False,
    as_json: JsonOption = False,
    sender: Annotated[str | None, typer.Option("--from", help="Only records from NAME.")
                      ] = None,
    to: Annotated[str | None, typer.Option("--to", help="Only messages to NAME.")] = None,
    type_: Annotated[str | None, typer.Option("--type", help="Only messages of this type.")
                     ] = None,
    status: Annotated[str | None, typer.Option("--status", help="Only messages whose "
                                               "current status is this.")] = None,
) -> None:
    """Show the last records (and, with -f, new ones as they arrive)."""
    _check_choice(type_, MESSAGE_TYPES, "--type")
    _check_choice(status, STATUSES, "--status")
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
        # A local follower reads each line from the file it came from (after a rotation
        # the name may point elsewhere); a remote one asks the host for the bytes.
        raw = follower.raw_line if isinstance(follower, lib.Follower) else b.raw_line
        for entry in follower:
            rec = entry.record
            if status is not None and rec.get("t") in (None, "msg") \
                    and rec.get("status", "pending") == status and wanted is not None:
                wanted.add(rec["id"])
            if _matches(rec, sender, to, type_, wanted):
                emit(entry, raw)
                sys.stdout.flush()


@app.command()
def inbox(
    agent: Annotated[str, typer.Option("--for", help="Agent whose waiting messages to list.")],
    as_json: JsonOption = False,
) -> None:
    """List the messages waiting for an agent (open, addressed to it; in-flight shown too),
    then its dead letters (given up on after their retries)."""
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
        row.append(f"{label:<{st_w}}", style=_STATUS_STYLE.get(eff, ""))
        row.append(f"  {_age(v.message.ts, now):>5}  ")
        if v.state.priority == "high":
            row.append("! ", style="bold red")
        room = None if width is None else max(width - len(row.plain), 10)
        row.append(_one_line(v.message.content, room))
        console.print(row)


@app.command()
def show(
    message_id: Annotated[str, typer.Argument(metavar="ID", help="Message id.")],
    as_json: JsonOption = False,
) -> None:
    """Show a message, its status history and its thread."""
    b = open_bridge(create=False)
    hist = b.history(message_id)
    now = time.time()
    if as_json:
        print_json({**view_json(hist.view, now), "history": hist.changes,
                    "thread": [view_json(v, now) for v in hist.thread],
                    "archive": str(hist.archive) if hist.archive else None})
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
            ("sent", f"{_short_time(m.ts)} ({_age(m.ts, now)} ago)")]
    if m.reply_to:
        rows.append(("reply to", visible(m.reply_to)))
    if m.expires:
        rows.append(("expires", _short_time(m.expires)))
    for key, value in m.metadata.items():
        if key != "priority":
            rows.append((f"meta.{visible(key)}", visible(str(value))))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim")
    grid.add_column()
    for key, value in rows:
        grid.add_row(Text(key), Text(value))
    grid.add_row("status", Text(eff, style=_STATUS_STYLE.get(eff, "")))
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


@app.command()
def reply(
    message_id: Annotated[str, typer.Argument(metavar="ID", help="Message to answer.")],
    text: Annotated[str, typer.Argument(help="Answer text, or - to read stdin.")],
    sender: FromOption = None,
) -> None:
    """Append a response to ID (addressed to its sender) and mark ID done; print the new id."""
    b = open_bridge(agent=sender, create=False)
    print(b.reply(message_id, read_text_arg(text)).id)


def _set(message_id: str, status: str, reason: str | None, sender: str | None,
         force: bool = False) -> None:
    b = open_bridge(agent=sender, create=False)
    b.set_status(message_id, status, reason=reason, force=force)
    err().print(f"{_STATUS_MARK[status]} {message_id} {status}")


ReasonOption = Annotated[str | None, typer.Option("--reason", help="Why (kept in the log).")]
ForceOption = Annotated[bool, typer.Option("--force", help="Even if another agent holds "
                                           "a claim on it.")]


@app.command()
def done(message_id: Annotated[str, typer.Argument(metavar="ID")], reason: ReasonOption = None,
         sender: FromOption = None, force: ForceOption = False) -> None:
    """Mark a message done."""
    _set(message_id, "done", reason, sender, force)


@app.command()
def fail(message_id: Annotated[str, typer.Argument(metavar="ID")], reason: ReasonOption = None,
         sender: FromOption = None, force: ForceOption = False) -> None:
    """Mark a message failed."""
    _set(message_id, "failed", reason, sender, force)


@app.command()
def cancel(message_id: Annotated[str, typer.Argument(metavar="ID")],
           reason: ReasonOption = None, sender: FromOption = None) -> None:
    """Cancel a message (allowed even while another agent holds it)."""
    _set(message_id, "cancelled", reason, sender)


@app.command()
def pause(
    reason: ReasonOption = None,
    by: Annotated[str | None, typer.Option("--by", help="Who pauses (default: "
                                           "$BRIDGE_AGENT, else cli].")] = None,
) -> None:
    """Create the PAUSE file: every agent stops taking work until resume."""
    b = open_bridge(agent=by)
    before = b.paused()
    info = b.pause(reason)
    why = f": {escape(visible(info.reason))}" if info.reason else ""
    if before is not None:
        # The first pause stands: saying "paused" with the new reason would be a lie.
        err().print(f"⏸ already paused by {escape(visible(str(info.by)))} since "
                    f"{_short_time(info.since)}{why} (unchanged)")
        return
    err().print(f"⏸ paused by {escape(visible(str(info.by)))}{why}")


@app.command()
def resume(by: Annotated[str | None, typer.Option("--by", help="Who resumes.")] = None
           ) -> None:
    """Remove the PAUSE file."""
    b = open_bridge(agent=by, create=False)
    if b.resume():
        err().print("▶ resumed")
    else:
        err().print("not paused")


@app.command()
def status(as_json: JsonOption = False) -> None:
    """Paused or not (by whom, since), message counts by status, size, last activity."""
    b = open_bridge(create=False)
    st = b.status()
    if as_json:
        print_json({
            "directory": str(st.directory), "paused": st.paused is not None,
            "pause": st.paused.to_dict() if st.paused else None, "counts": st.counts,
            "size": st.size, "records": st.records, "bad_lines": st.bad_lines,
            "last_activity": st.last_activity, "epoch": st.epoch,
            "durability": st.durability, "filesystem": st.filesystem,
        })
        return
    console = out()
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim")
    grid.add_column()
    grid.add_row("bridge", str(st.directory))
    if st.paused:
        p = st.paused
        since = f" since {_short_time(p.since)}" if p.since else ""
        why = f": {p.reason}" if p.reason else ""
        grid.add_row("state", Text(f"PAUSED by {p.by or 'someone'}{since}{why}",
                                   style="bold yellow"))
    else:
        grid.add_row("state", Text("running", style="green"))
    counts = ", ".join(f"{k} {v}" for k, v in sorted(st.counts.items())) or "no messages"
    grid.add_row("messages", counts)
    grid.add_row("size", f"{st.size:,} bytes, {st.records:,} records"
                 + (f", {st.bad_lines} bad line(s)" if st.bad_lines else ""))
    now = time.time()
    last = f"{_short_time(st.last_activity)} ({_age(st.last_activity, now)} ago)" \
        if st.last_activity else "never"
    grid.add_row("last activity", last)
    console.print(grid)


@app.command()
def doctor(
    as_json: JsonOption = False,
    repair: Annotated[bool, typer.Option("--repair", help="First finish or roll back an "
                                         "interrupted rotation.")] = False,
) -> int:
    """Validate the live file and the archives; report torn/corrupt lines, schema
    violations, orphan status records, archive problems. Exit 1 when it finds an error."""
    b = open_bridge(create=False)
    report = _doctor_report(b, repair=repair)
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
        row.append(f.message)
        console.print(row)
    archives = (f", {report.archives} archive(s) with {report.archived_records:,} records"
                if report.archives else "")
    summary = (f"{report.lines:,} lines, {report.records:,} records, {report.messages:,} "
               f"messages{archives}: {len(report.errors)} error(s), "
               f"{len(report.warnings)} warning(s)")
    console.print(Text(summary, style="green" if report.ok else "bold red"))
    return 0 if report.ok else 1


@app.command()
def stats(as_json: JsonOption = False) -> None:
    """Counts by kind, sender, type and status; size; time span."""
    b = open_bridge(create=False)
    data = _stats(b)
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
    for key in ("kinds", "senders", "types", "statuses"):
        grid.add_row(key, ", ".join(f"{k} {v:,}" for k, v in data[key].items()) or "-")
    if data.get("oldest_open"):
        age = data.get("oldest_open_age_s")
        # A host with an older toolkit sends the age as text (oldest_open_age).
        shown = human_duration(age) if isinstance(age, int | float) else data.get(
            "oldest_open_age", "?")
        grid.add_row("oldest open", f"{visible(str(data['oldest_open']))} ({shown})")
    console.print(grid)


# -- remote bridges: --url, serve, ping ---------------------------------------------------

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


def _doctor_report(b: lib.AnyBridge, *, repair: bool = False) -> lib.DoctorReport:
    if isinstance(b, lib.RemoteBridge | lib.SftpBridge):
        if repair:
            raise lib.InvalidInput("doctor --repair changes files: run it on the bridge's host "
                                   "(bridge --dir DIR doctor --repair)")
        return b.doctor()  # on the host, or on the fallback's copy
    return lib.run_doctor(b, repair=repair)


def _stats(b: lib.AnyBridge) -> dict[str, Any]:
    if isinstance(b, lib.RemoteBridge | lib.SftpBridge):
        return b.stats()
    return lib.compute_stats(b)


# -- entry point -------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (used by the console script and the tests)."""
    from typer.exceptions import Abort, Exit, TyperException

    command = typer.main.get_command(app)
    try:
        try:
            rv = command.main(args=argv, prog_name="bridge", standalone_mode=False)
        finally:
            for b in state.bridges:
                b.close()
            state.bridges.clear()
    except Exit as exc:
        return exc.exit_code
    except TyperException as exc:
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
            print(ctx.get_help())
            return EXIT_USAGE
        # Usage errors: one line, like every other error, plus where help is.
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


# The other command groups add themselves to `app` when imported; they use the
# helpers above, so they come last.
import cli_archive  # noqa: E402
import cli_claude  # noqa: E402
import cli_ops  # noqa: E402

_ = (cli_archive, cli_claude, cli_ops)

if __name__ == "__main__":
    sys.exit(main())
