"""``bridge`` commands for Claude Code: ``mcp``, ``hook …`` and ``claude install``.

``bridge hook …`` and ``bridge mcp`` normally never reach this module: the
console script (cli_entry.py) hands them to :mod:`bridge.claude` before typer
and rich are imported. They are declared here for ``--help``, for the global
``--dir``/``--url`` options, and for the docs. cli.py merges this module's app
into ``bridge``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from cli_common import new_app, out, state

PANEL = "Claude Code"
app = new_app()
hook_app = new_app(help="Claude Code hooks (each reads the event's JSON on stdin).",
                   no_args_is_help=True)
claude_app = new_app(help="Set up Claude Code to use the bridge.", no_args_is_help=True)
app.add_typer(hook_app, name="hook", rich_help_panel=PANEL)
app.add_typer(claude_app, name="claude", rich_help_panel=PANEL)

AgentOption = Annotated[str, typer.Option("--agent", metavar="NAME",
                                          help="Whose inbox (default claude).")]
HookUrlOption = Annotated[
    str | None, typer.Option("--url", "-u", metavar="URL",
                             help="The bridge (default $BRIDGE_URL, $BRIDGE_DIR).")
]


def _target(url: str | None) -> list[str]:
    """``--url`` for the entries: a local path made absolute (hooks run in the project)."""
    chosen = url or (str(state.url) if state.url is not None else None) or (
        str(state.directory) if state.directory is not None else None)
    if chosen is None:
        return []
    if "://" not in chosen:
        chosen = str(Path(chosen).expanduser().resolve())
    return ["--url", chosen]


def _hook(event: str, url: str | None, agent: str) -> int:
    from bridge.claude import run_hook

    return run_hook(event, [*_target(url), "--agent", agent])


@hook_app.command("session-start")
def hook_session_start(url: HookUrlOption = None, agent: AgentOption = "claude") -> None:
    """SessionStart: print what waits for the agent."""
    raise typer.Exit(_hook("session-start", url, agent))


@hook_app.command("prompt")
def hook_prompt(url: HookUrlOption = None, agent: AgentOption = "claude") -> None:
    """UserPromptSubmit: print what arrived since last told."""
    raise typer.Exit(_hook("prompt", url, agent))


@hook_app.command("stop")
def hook_stop(url: HookUrlOption = None, agent: AgentOption = "claude") -> None:
    """Stop: block once on an unanswered claim.

    Or on a new high-priority request the session was not told about.
    """
    raise typer.Exit(_hook("stop", url, agent))


@app.command(rich_help_panel=PANEL)
def mcp(
    url: HookUrlOption = None,
    agent: AgentOption = "claude",
    identity: Annotated[str | None, typer.Option(
        "--as", metavar="NAME",
        help="Name to claim and answer as (default agent.<session id>).")] = None,
    lease: Annotated[str, typer.Option("--lease", metavar="DURATION",
                                                  help="How long a claim holds.")] = "30m",
    channel: Annotated[bool, typer.Option(
        "--channel", help="Push a hint per new message into the session (Claude Code "
        "channels, a research preview).")] = False,
) -> None:
    """Serve the bridge to Claude Code as a stdio MCP server.

    Tools: inbox, show, claim, release, reply, send, done, fail, search, status,
    pause, resume (mcp__bridge__<tool> in Claude Code).
    """
    from bridge.claude import run_mcp as mcp_main

    args = [*_target(url), "--agent", agent, "--lease", lease]
    if identity:
        args += ["--as", identity]
    if channel:
        args.append("--channel")
    raise typer.Exit(mcp_main(args))


def _bridge_command() -> str:
    """The absolute path of this ``bridge`` executable (hooks run without our PATH)."""
    beside = Path(sys.executable).parent / "bridge"
    if beside.exists():
        return str(beside)
    found = shutil.which("bridge")
    return str(Path(found).resolve()) if found else "bridge"


@claude_app.command("install")
def claude_install(
    project: Annotated[Path | None, typer.Argument(
        metavar="PROJECT_DIR", help="The project (default: the current directory).")] = None,
    url: HookUrlOption = None,
    agent: AgentOption = "claude",
    user: Annotated[bool, typer.Option(
        "--user", help="Install into ~/.claude/settings.json and ~/.claude.json.")] = False,
    allow_tools: Annotated[bool, typer.Option(
        "--allow-tools", help="Add permissions.allow mcp__bridge (no prompt per tool call; "
        "needed by claude -p).")] = False,
    uninstall: Annotated[bool, typer.Option(
        "--uninstall", help="Remove only the entries this command wrote.")] = False,
    command: Annotated[str | None, typer.Option(
        "--command", metavar="PATH",
        help="The bridge executable the entries run (default: this one).")] = None,
) -> None:
    """Write the hooks and the MCP server into Claude Code's settings.

    Existing settings are kept (the entries are merged in); a second run
    changes nothing.
    """
    from bridge.claude import InstallPlan, install

    target = _target(url)
    plan = InstallPlan.for_target(project, user=user, command=command or _bridge_command(),
                                  url=target[1] if target else None, agent=agent)
    changes = install(plan, uninstall=uninstall, allow_tools=allow_tools)
    console = out()
    if not changes:
        console.print("Nothing to change: Claude Code is already set up"
                      if not uninstall else "Nothing to remove.")
        return
    for change in changes:
        console.print(Text(str(change.path), style="bold"))
        for line in change.what:
            console.print(f"  {line}")
    if not uninstall:
        console.print(Text("Tools appear in Claude Code as mcp__bridge__<tool>.", style="dim"))
