"""What every ``bridge`` command module shares: the bridge a command runs on, output,
rendering, the common options, and the typer classes the commands are made of.

A leaf: it imports no other ``cli*`` module, and each command module (cli.py,
cli_archive.py, cli_ops.py, cli_claude.py) imports it and nothing of the others;
cli.py assembles their apps into the one ``bridge`` command.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperCommand, TyperGroup, TyperOption

import bridge as lib
from bridge import view_dict
from bridge.format import human_duration, parse_ts

__all__ = [
    "CLI_LOCK_TIMEOUT",
    "EXIT_INTERRUPTED",
    "EXIT_IO",
    "EXIT_USAGE",
    "STATUS_MARK",
    "STATUS_STYLE",
    "App",
    "FromOption",
    "JsonOption",
    "age",
    "check_choice",
    "err",
    "new_app",
    "one_line",
    "open_bridge",
    "out",
    "print_json",
    "read_text_arg",
    "render_record",
    "short_time",
    "state",
    "view_json",
    "visible",
]

EXIT_USAGE = 2
EXIT_IO = 7
EXIT_INTERRUPTED = 130
CLI_LOCK_TIMEOUT = 30.0
"""A command waits this long for the bridge lock, then names the holder and exits 6."""


class _State:
    """Options given before the command (``bridge --dir X send ...``), and what it opened."""

    directory: Path | None = None
    url: lib.BridgeURL | None = None
    bridges: list[lib.Backend] = []  # noqa: RUF012 - one process, one command


state = _State()


# -- the typer classes -----------------------------------------------------------------------

def _plain_flags(params: list[Any]) -> list[Any]:
    # A flag takes no value: typer would still show its type, `<bool>`, as if it did.
    for param in params:
        if isinstance(param, TyperOption) and param.is_flag and not param.count \
                and param.metavar is None:
            param.metavar = ""
    return params


def show_help(ctx: Any) -> None:
    """Print the help of ``ctx``'s command once (in rich mode, get_help prints it itself)."""
    text = ctx.get_help()
    if text.strip():
        print(text)


class Command(TyperCommand):
    """A command whose flags show no ``<bool>``."""

    def get_params(self, ctx: Any) -> list[Any]:  # typer's vendored click Context
        return _plain_flags(super().get_params(ctx))


class Group(TyperGroup):
    """A group whose flags show no ``<bool>``, and which, given nothing, prints its help once
    and exits 2 (typer's own no_args_is_help prints it in the exception and again after)."""

    def get_params(self, ctx: Any) -> list[Any]:  # typer's vendored click Context
        return _plain_flags(super().get_params(ctx))

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not args and self.no_args_is_help and not ctx.resilient_parsing:
            show_help(ctx)
            ctx.exit(EXIT_USAGE)
        return super().parse_args(ctx, args)


class App(typer.Typer):
    """A ``typer.Typer`` whose commands are :class:`Command` and groups :class:`Group`."""

    def command(self, name: str | None = None, *, cls: type[TyperCommand] | None = None,
                **kwargs: Any) -> Callable[[Any], Any]:
        return super().command(name, cls=cls or Command, **kwargs)


def new_app(**kwargs: Any) -> App:
    """An app for one command module (merged into ``bridge`` by cli.py) or a group."""
    settings: dict[str, Any] = {
        "cls": Group, "add_completion": False, "pretty_exceptions_enable": False,
        # Tracebacks with locals would print tokens and message content.
        "pretty_exceptions_show_locals": False, "rich_markup_mode": "rich",
    }
    return App(**(settings | kwargs))


# -- the bridge ------------------------------------------------------------------------------

def open_bridge(*, agent: str | None = None, create: bool = True,
                url: lib.BridgeURL | None = None) -> lib.Backend:
    """The bridge this command runs on, opened by :func:`bridge.connect`.

    ``url`` (``bridge ping URL``), else ``--url`` (or ``$BRIDGE_URL`` when ``--dir`` is
    not on the command line), else ``--dir`` / ``$BRIDGE_DIR``; connect reads the rest of
    the environment (``$BRIDGE_AGENT``, ``$BRIDGE_DURABILITY``, ``$BRIDGE_GROUP``) and
    opens whichever backend the URL names: every command works on each alike.
    """
    target = url or state.url or state.directory
    b = lib.connect(target, agent=agent, create=create, lock_timeout=CLI_LOCK_TIMEOUT)
    state.bridges.append(b)
    if getattr(b, "created", False):
        # A typo in --dir or $BRIDGE_DIR would otherwise make a bridge nobody reads.
        err().print(Text(f"note: created a new bridge at {b.directory}", style="yellow"))
    return b


def close_bridges() -> None:
    for b in state.bridges:
        b.close()
    state.bridges.clear()


# -- input and output ------------------------------------------------------------------------

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
    """One JSON document (or one line of a JSONL stream) on stdout."""
    sys.stdout.buffer.write(orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE))
    sys.stdout.buffer.flush()


def check_choice(value: str | None, allowed: Iterable[str], what: str) -> None:
    allowed = frozenset(allowed)
    if value is not None and value not in allowed:
        raise lib.InvalidInput(f"{what} must be one of {', '.join(sorted(allowed))}, "
                               f"not {value!r}")


JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document (its "
                                          "shape: docs/cli.md).")]
FromOption = Annotated[
    str | None,
    typer.Option("--from", metavar="NAME",
                 help="Sender name (default: $BRIDGE_AGENT, else cli)."),
]


# -- rendering -------------------------------------------------------------------------------

def view_json(view: lib.MessageView, now: float | None = None) -> dict[str, Any]:
    """A message as ``--json`` prints it: the one flat view (docs/view.schema.json)."""
    return view_dict(view, now)


STATUS_STYLE = {
    "pending": "yellow", "claimed": "cyan", "done": "green", "failed": "red",
    "cancelled": "magenta", "expired": "dim", "dead": "bold red",
}  # fmt: skip
STATUS_MARK = {"done": "✓", "failed": "✗", "cancelled": "⊘", "expired": "⌛", "dead": "☠",
               "claimed": "▶", "pending": "↺"}


def short_time(ts: str | None) -> str:
    if not ts:
        return "?"
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(parse_ts(ts)))
    except ValueError:
        return ts


def age(ts: str, now: float) -> str:
    try:
        return human_duration(now - parse_ts(ts))
    except ValueError:
        return "?"


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


HUMAN_CONTENT_CAP = 4_000
"""Characters of a text one human row shows where no width is asked (a pipe, a log): a
record of 50 MB would otherwise be printed whole. ``--json`` and ``show`` have it all."""


def one_line(text: str, limit: int | None, ref: str | None = None) -> str:
    """``text`` on one line, at most ``limit`` characters (None: HUMAN_CONTENT_CAP, and
    a cut says how much is left and, given the message's id, how to see it)."""
    cap = HUMAN_CONTENT_CAP if limit is None else limit
    # Only the part that can be shown is flattened and escaped: the cost of a row is
    # that of its width, not of the record.
    flat = visible(text[: cap + 1].replace("\r\n", "\n").replace("\n", " ⏎ "))
    if len(flat) <= cap and len(text) <= cap:
        return flat
    cut = flat[: max(cap - 1, 0)] + "…"
    if limit is None:
        more = f" (+{len(text) - cap:,} characters"
        cut += more + (f"; all of it: bridge show {visible(ref)})" if ref else ")")
    return cut


def render_record(rec: dict[str, Any], width: int | None) -> Text:
    """One human-readable row for any record."""
    kind = rec.get("t") or "msg"
    line = Text(short_time(rec.get("ts")), style="dim")
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
        line.append(one_line(str(rec.get("content", "")), None if width is None
                             else max(width - used, 10), str(rec.get("id"))))
    elif kind == "status":
        status = str(rec.get("status"))
        line.append(sender, style="bold")
        line.append(f"  {STATUS_MARK.get(status, '•')} {visible(status)}",
                    style=STATUS_STYLE.get(status, ""))
        line.append(f"  {visible(str(rec.get('ref')))}", style="dim")
        if rec.get("lease_until"):
            line.append(f"  lease until {short_time(rec['lease_until'])}", style="dim")
        if rec.get("reason"):
            line.append(f"  {one_line(str(rec['reason']), None)}")
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
