"""`bridge --help` and every command's help read well at 80 columns (issue 13)."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator

import pytest
import typer

from tests.conftest import CLI


def _walk(group: object, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], object]]:
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        yield (*path, name), command
        if getattr(command, "commands", None):
            yield from _walk(command, (*path, name))


def _commands() -> list[tuple[tuple[str, ...], object]]:
    import cli

    return list(_walk(typer.main.get_command(cli.app)))


COMMANDS = [" ".join(path) for path, _ in _commands()]


def test_every_first_paragraph_is_one_line() -> None:
    """Rich markup mode keeps a summary's single newlines: `bridge --help` would break it."""
    long = {" ".join(path): command.help for path, command in _commands()  # type: ignore[attr-defined]
            if "\n" in inspect.cleandoc(command.help or "").split("\n\n")[0]}  # type: ignore[attr-defined]
    assert long == {}


def test_every_parameter_has_help() -> None:
    missing = [f"{' '.join(path)} {param.name}" for path, command in _commands()
               for param in command.params  # type: ignore[attr-defined]
               if not getattr(param, "help", None)]
    assert missing == []


def test_help_texts_pair_their_brackets() -> None:
    """A stray `]` ("any agent but the sender]") or `(` is a typo somebody reads."""
    texts = [(" ".join(path), getattr(param, "help", None) or "")
             for path, command in _commands() for param in command.params]  # type: ignore[attr-defined]
    texts += [(" ".join(path), command.help or "") for path, command in _commands()]  # type: ignore[attr-defined]
    odd = [(where, text) for where, text in texts
           if text.count("(") != text.count(")") or text.count("[") != text.count("]")]
    assert odd == []


def test_short_options_mean_one_thing() -> None:
    """-i is --ignore-case (search) and nothing else; ssh's --identity has no short form."""
    import cli

    longs: dict[str, set[str]] = {}
    for command in [typer.main.get_command(cli.app), *(c for _, c in _commands())]:
        for param in command.params:  # type: ignore[attr-defined]
            opts = getattr(param, "opts", [])
            for short in (o for o in opts if re.fullmatch(r"-\w", o)):
                longs.setdefault(short, set()).update(o for o in opts if o.startswith("--"))
    assert longs["-i"] == {"--ignore-case"}
    assert longs["-u"] == {"--url"} and longs["-d"] == {"--dir"}


def _panels(text: str) -> Iterator[tuple[str, list[str]]]:
    title: str | None = None
    rows: list[str] = []
    for line in text.splitlines():
        if line.startswith("╭─"):
            title, rows = line.strip("╭─╮ "), []
        elif line.startswith("╰") and title is not None:
            yield title, rows
            title = None
        elif title is not None and line.startswith("│"):
            rows.append(line.strip("│").rstrip())


@pytest.mark.parametrize("group", [(), ("hook",), ("claude",)])
def test_help_at_80_columns_has_one_line_per_command(cli: CLI, group: tuple[str, ...]) -> None:
    text = cli.ok(*group, "--help", env={"COLUMNS": "80"})
    panels = dict(_panels(text))
    commands = {t: rows for t, rows in panels.items() if t not in ("Options", "Arguments")}
    assert commands, text
    for title, rows in commands.items():
        continued = [row for row in rows if row.startswith("  ")]
        assert continued == [], f"{title}: a summary runs onto a second line:\n{text}"
    assert max(len(line) for line in text.splitlines()) <= 80
    listed = [row.split()[0] for rows in commands.values() for row in rows]
    wanted = [c.split()[-1] for c in COMMANDS if c.count(" ") == len(group)
              and c.startswith(" ".join(group))]
    assert sorted(listed) == sorted(wanted)


def test_the_top_level_lists_every_module_s_commands_in_order(cli: CLI) -> None:
    text = cli.ok("--help", env={"COLUMNS": "80"})
    listed = [row.split()[0] for title, rows in _panels(text) if title != "Options"
              for row in rows]
    assert listed == ["send", "tail", "inbox", "show", "reply", "done", "fail", "cancel",
                      "pause", "resume", "status", "doctor", "stats", "rotate", "search",
                      "health", "logs", "ctl", "deploy", "serve", "ping", "mcp", "hook",
                      "claude"]
    # Rich markup would swallow "[user@]" as a tag.
    assert "ssh://[user@]host[:port]/path" in text


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_no_bool_and_no_doubled_brackets(cli: CLI, command: str) -> None:
    text = cli.ok(*command.split(), "--help", env={"COLUMNS": "120"})
    assert "<bool>" not in text
    usage = next(line for line in text.splitlines() if "Usage:" in line)
    assert not re.search(r"\[\[|\]\]|\{[^}]*\.\.\.\}|\.\.\.\]\.\.\.", usage), usage


@pytest.mark.parametrize("group", [(), ("hook",), ("claude",)])
def test_no_arguments_print_the_help_once(cli: CLI, group: tuple[str, ...]) -> None:
    result = cli.run(*group)
    assert result.returncode == 2
    assert result.stdout.count("Usage:") == 1, result.stdout
    assert result.stderr == ""
