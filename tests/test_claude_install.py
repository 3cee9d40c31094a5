"""`bridge claude install`: merged, idempotent, and `--uninstall` removes only its own entries."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import orjson

from tests.conftest import BIN, CLI

BRIDGE = str(BIN / "bridge")


def load(path: Path) -> dict[str, Any]:
    return orjson.loads(path.read_bytes())


def test_install_writes_hooks_and_the_server(cli: CLI, tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    output = cli.ok("claude", "install", str(project), "--url", "ssh://vps1/var/lib/kami-bridge")
    assert ".claude/settings.json" in output and ".mcp.json" in output
    settings = load(project / ".claude" / "settings.json")
    for event, name in (("SessionStart", "session-start"), ("UserPromptSubmit", "prompt"),
                        ("Stop", "stop")):
        [group] = settings["hooks"][event]
        [hook] = group["hooks"]
        assert hook == {"type": "command", "timeout": 10, "command":
                        f"{BRIDGE} hook {name} --url ssh://vps1/var/lib/kami-bridge "
                        "--agent claude"}
    assert settings["enabledMcpjsonServers"] == ["bridge"]
    assert "permissions" not in settings  # tools ask until the user allows them
    assert load(project / ".mcp.json") == {"mcpServers": {"bridge": {
        "type": "stdio", "command": BRIDGE,
        "args": ["mcp", "--url", "ssh://vps1/var/lib/kami-bridge", "--agent", "claude"]}}}
    assert stat.S_IMODE((project / ".mcp.json").stat().st_mode) == 0o600


def test_install_merges_with_the_users_entries_and_is_idempotent(cli: CLI,
                                                                 tmp_path: Path) -> None:
    project = tmp_path / "proj"
    (project / ".claude").mkdir(parents=True)
    mine: dict[str, Any] = {"model": "opus", "permissions": {"allow": ["Bash(git status)"]},
            "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "notify-send done"}]}],
                      "PreToolUse": [{"matcher": "Bash", "hooks": [
                          {"type": "command", "command": "audit"}]}]}}
    (project / ".claude" / "settings.json").write_bytes(orjson.dumps(mine))
    (project / ".mcp.json").write_bytes(orjson.dumps({"mcpServers": {"github": {
        "type": "stdio", "command": "gh-mcp"}}}))
    cli.ok("claude", "install", str(project), "--allow-tools")
    first_settings = (project / ".claude" / "settings.json").read_bytes()
    first_mcp = (project / ".mcp.json").read_bytes()
    settings = orjson.loads(first_settings)
    assert settings["model"] == "opus"
    assert settings["permissions"]["allow"] == ["Bash(git status)", "mcp__bridge"]
    assert settings["hooks"]["Stop"][0] == mine["hooks"]["Stop"][0]
    assert len(settings["hooks"]["Stop"]) == 2
    assert settings["hooks"]["PreToolUse"] == mine["hooks"]["PreToolUse"]
    assert set(load(project / ".mcp.json")["mcpServers"]) == {"github", "bridge"}

    again = cli.ok("claude", "install", str(project), "--allow-tools")
    assert "Nothing to change" in again
    assert (project / ".claude" / "settings.json").read_bytes() == first_settings
    assert (project / ".mcp.json").read_bytes() == first_mcp

    removed = cli.ok("claude", "install", str(project), "--uninstall")
    assert "removed hooks" in removed
    assert load(project / ".claude" / "settings.json") == mine
    assert load(project / ".mcp.json") == {"mcpServers": {"github": {
        "type": "stdio", "command": "gh-mcp"}}}
    assert "Nothing to remove" in cli.ok("claude", "install", str(project), "--uninstall")


def test_install_for_the_user(cli: CLI, tmp_path: Path) -> None:
    home = Path(cli.env["HOME"])
    (home / ".claude.json").write_bytes(orjson.dumps({"numStartups": 3, "projects": {}}))
    cli.ok("claude", "install", "--user", "--url", str(tmp_path / "b"))
    assert "SessionStart" in load(home / ".claude" / "settings.json")["hooks"]
    doc = load(home / ".claude.json")
    assert doc["numStartups"] == 3 and doc["projects"] == {}
    assert doc["mcpServers"]["bridge"]["args"] == ["mcp", "--url", str(tmp_path / "b"),
                                                   "--agent", "claude"]
    cli.ok("claude", "install", "--user", "--uninstall")
    assert load(home / ".claude.json") == {"numStartups": 3, "projects": {}}


def test_a_broken_settings_file_is_reported_and_left_alone(cli: CLI, tmp_path: Path) -> None:
    project = tmp_path / "proj"
    (project / ".claude").mkdir(parents=True)
    (project / ".claude" / "settings.json").write_text('{"hooks": ')
    result = cli.run("claude", "install", str(project))
    assert result.returncode == 5
    assert result.stderr.count("\n") == 1 and "not valid JSON" in result.stderr
    assert (project / ".claude" / "settings.json").read_text() == '{"hooks": '
    assert not (project / ".mcp.json").exists()


def test_someone_elses_server_named_bridge_is_not_replaced(cli: CLI, tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    theirs = {"mcpServers": {"bridge": {"type": "stdio", "command": "/opt/other/bridge-server"}}}
    (project / ".mcp.json").write_bytes(orjson.dumps(theirs))
    result = cli.run("claude", "install", str(project))
    assert result.returncode == 5 and "not kami-bridge's" in result.stderr
    assert load(project / ".mcp.json") == theirs
    assert not (project / ".claude").exists()


def test_a_missing_project_directory_is_an_error(cli: CLI, tmp_path: Path) -> None:
    result = cli.run("claude", "install", str(tmp_path / "nope"))
    assert result.returncode == 5 and "is not a directory" in result.stderr


def test_hand_written_entries_and_symlinks_survive(cli: CLI, tmp_path: Path) -> None:
    project = tmp_path / "proj"
    (project / ".claude").mkdir(parents=True)
    dotfiles = tmp_path / "dotfiles" / "settings.json"
    dotfiles.parent.mkdir()
    hand_written = {"type": "command",
                    "command": "/usr/bin/bridge hook prompt --url ssh://vps/other --agent kaylee"}
    theirs: dict[str, Any] = {"enabledMcpjsonServers": ["bridge"],
                              "hooks": {"UserPromptSubmit": [{"hooks": [hand_written]}]}}
    dotfiles.write_bytes(orjson.dumps(theirs))
    (project / ".claude" / "settings.json").symlink_to(dotfiles)
    cli.ok("claude", "install", str(project))
    assert (project / ".claude" / "settings.json").is_symlink()
    settings = load(dotfiles)
    assert settings["hooks"]["UserPromptSubmit"][0] == theirs["hooks"]["UserPromptSubmit"][0]
    assert len(settings["hooks"]["UserPromptSubmit"]) == 2
    # Someone else's server named "bridge" replaces ours; uninstall then keeps its enable.
    (project / ".mcp.json").write_bytes(orjson.dumps({"mcpServers": {"bridge": {
        "type": "stdio", "command": "/opt/x/server"}}}))
    cli.ok("claude", "install", str(project), "--uninstall")
    assert load(dotfiles) == theirs
