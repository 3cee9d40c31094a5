"""``bridge rotate`` and ``bridge search``: the archive commands (merged into ``bridge`` by
cli.py; what they share with the others is in cli_common)."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.text import Text

import bridge as lib
from cli_common import err, new_app, open_bridge, out, print_json, render_record

app = new_app()
PANEL = "Archives"

# -- rotation and search -------------------------------------------------------------------

def _parse_size(text: str) -> int:
    """``500M``, ``2G``, ``64k`` or a number of bytes."""
    units = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    raw = text.strip().lower().removesuffix("ib").removesuffix("b") if text.strip() else ""
    num, unit = raw.rstrip("kmgt"), raw[len(raw.rstrip("kmgt")):]
    try:
        value = float(num)
    except ValueError:
        value = -1.0
    if value < 0 or unit not in units:
        raise lib.InvalidInput(f"size {text!r} is not understood: use bytes or a number with "
                               "k, M, G (e.g. 500M)")
    return int(value * units[unit])


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def rotation_json(result: lib.RotationResult) -> dict[str, Any]:
    """``rotate --json``: the result, its duration as ``elapsed_s`` (the library's seconds)."""
    shaped = result.to_dict()
    shaped["elapsed_s"] = shaped.pop("seconds")
    return shaped


@app.command(rich_help_panel=PANEL)
def rotate(
    older_than: Annotated[str, typer.Option("--older-than", metavar="AGE",
                                            help="Archive finished messages whose last "
                                            "change is older than this (e.g. 30d, 12h); "
                                            "'off' to rotate by size only.")] = "30d",
    max_size: Annotated[str | None, typer.Option("--max-size", metavar="SIZE",
                                                 help="Also archive finished messages, "
                                                 "oldest first, until the live file is "
                                                 "about this size (e.g. 500M).")] = None,
    compress: Annotated[bool, typer.Option("--compress", help="Gzip new archive months "
                                           "(zcat | jq still reads them).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would move; change "
                                          "nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full result as one "
                                          "JSON object.")] = False,
) -> None:
    """Move finished messages into archive/, by month.

    Their status records go with them. Pending and claimed messages stay.
    """
    age = None if older_than.strip().lower() in ("off", "none") else \
        lib.parse_duration(older_than)
    size = _parse_size(max_size) if max_size is not None else None
    b = open_bridge(create=False)
    if not b.capabilities.rotate:
        raise lib.RemoteUnsupported(
            "rotation runs on the bridge's host with the toolkit installed; the SFTP "
            "fallback cannot rotate" if b.capabilities.remote else
            f"{b.directory}: this bridge keeps no archives (nothing to rotate)")
    if as_json or dry_run or not sys.stderr.isatty() or b.capabilities.remote:
        # (On another host the copying happens there: nothing to show a bar for.)
        result = b.rotate(older_than=age, max_size=size, compress=compress, dry_run=dry_run)
    else:
        from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

        bar = Progress("rotating", BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                       console=err(), transient=True)
        with bar:
            task = bar.add_task("rotate", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            result = b.rotate(older_than=age, max_size=size, compress=compress,
                              dry_run=dry_run, progress=progress)
    if as_json:
        print_json(rotation_json(result))
        return
    console = err()
    if result.recovered:
        console.print(Text(f"an interrupted rotation was {result.recovered} first",
                           style="yellow"))
    if not result.moved_records and not result.corrupt_moved:
        console.print(f"nothing to rotate: no finished message is old enough to move; kept "
                      f"{result.kept_records:,} records ({_human_bytes(result.kept_bytes)}); "
                      f"{result.seconds:.2f} s")
        return
    verb = "would move" if dry_run else "moved"
    months = ", ".join(sorted(result.archives))
    line = (f"{verb} {result.moved_records:,} records ({result.moved_messages:,} messages, "
            f"{_human_bytes(result.moved_bytes)}) to {months}; kept {result.kept_records:,} "
            f"records ({_human_bytes(result.kept_bytes)}); {result.seconds:.2f} s")
    if result.rotated:
        line += f", lock held {result.lock_held_ms:.1f} ms"
    console.print(line)
    if result.corrupt_moved or result.corrupt_kept:
        console.print(Text(
            f"{result.corrupt_moved + result.corrupt_kept} corrupt line(s) carried as they are "
            f"({result.corrupt_moved} into the archives, {result.corrupt_kept} kept) at offsets "
            f"{', '.join(map(str, result.corrupt_offsets[:10]))}; see bridge doctor",
            style="yellow"))
    if result.pinned_messages:
        names = ", ".join(f"{k} (at {v:,})" for k, v in result.behind_cursors.items())
        console.print(Text(
            f"{result.pinned_messages:,} finished message(s) stay because consumer cursors "
            f"have not read past them: {names}", style="yellow"))


@app.command(rich_help_panel=PANEL)
def search(
    query: Annotated[str, typer.Argument(metavar="QUERY",
                                         help="Text to find in message content.")],
    regex: Annotated[bool, typer.Option("--regex", "-E", help="QUERY is a regular "
                                        "expression.")] = False,
    ignore_case: Annotated[bool, typer.Option("--ignore-case", "-i", help="Upper and lower "
                                              "case match each other.")] = False,
    since: Annotated[str | None, typer.Option("--since", metavar="DATE",
                                              help="Only messages sent at or after DATE "
                                              "(2026-11-01, a timestamp, or 7d ago).")] = None,
    until: Annotated[str | None, typer.Option("--until", metavar="DATE",
                                              help="Only messages sent before DATE.")] = None,
    sender: Annotated[str | None, typer.Option("--from", metavar="NAME",
                                               help="Only messages from NAME.")] = None,
    to: Annotated[str | None, typer.Option("--to", metavar="NAME",
                                           help="Only messages to NAME.")] = None,
    archives: Annotated[bool, typer.Option("--archives", "-a", help="Search the archives "
                                           "too.")] = False,
    limit: Annotated[int, typer.Option("--limit", "-n", min=0, metavar="N",
                                       help="At most this many results (0: all).")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print each matching line exactly "
                                          "as it is in its file (JSONL).")] = False,
) -> None:
    """Find messages by content, newest first (archives too)."""
    from bridge.format import parse_when

    b = open_bridge(create=False)
    if archives and not b.capabilities.search_archives:
        raise lib.RemoteUnsupported(
            "search runs on the bridge's host with the toolkit installed; the SFTP "
            "fallback cannot search archives" if b.capabilities.remote else
            f"{b.directory}: this bridge keeps no archives (search without --archives)")
    hits = b.search(query, regex=regex, ignore_case=ignore_case, sender=sender, to=to,
                    since=parse_when(since) if since else None,
                    until=parse_when(until) if until else None, archives=archives,
                    limit=limit or None)
    console = out()
    width = console.width if sys.stdout.isatty() else None
    for hit in hits:
        if as_json:  # the line exactly as it is in its file
            sys.stdout.buffer.write(hit.line)
        else:
            row = render_record(hit.record, width)
            if hit.source != lib.LOG_NAME:
                row.append(f"  [{hit.source}]", style="dim")
            console.print(row)
    sys.stdout.flush()
