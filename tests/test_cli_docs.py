"""Every `bridge` command is in docs/cli.md (docs are part of done)."""

from __future__ import annotations

import typer

from tests.conftest import ROOT


def _commands() -> list[str]:
    import cli

    group = typer.main.get_command(cli.app)
    names: list[str] = []
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        sub = getattr(command, "commands", None)
        if sub:
            names += [f"{name} {inner}" for inner in sub]
        else:
            names.append(name)
    return names


def test_every_command_is_documented() -> None:
    doc = (ROOT / "docs" / "cli.md").read_text()
    commands = _commands()
    assert {"mcp", "hook session-start", "hook prompt", "hook stop", "claude install"} <= set(
        commands)
    missing = []
    for name in commands:
        head, _, tail = name.partition(" ")
        # `bridge hook session-start|prompt|stop` documents the three at once.
        if f"`bridge {name}" not in doc and not (tail and f"`bridge {head} " in doc
                                                 and tail in doc):
            missing.append(name)
    assert missing == []
