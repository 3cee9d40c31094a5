"""``bridge claude install``: wire the hooks and the MCP server into Claude Code's settings.

Writes, merged with what is there and idempotent:

- ``<project>/.claude/settings.json`` (``--user``: ``~/.claude/settings.json``):
  a ``SessionStart``, ``UserPromptSubmit`` and ``Stop`` hook running ``bridge hook
  …``, ``enabledMcpjsonServers: ["bridge"]`` (so an interactive session does not ask
  to approve the project's server), and with ``allow_tools`` the permission rule
  ``mcp__bridge`` (every bridge tool without a prompt; headless ``claude -p``
  denies MCP tools without it);
- ``<project>/.mcp.json`` (``--user``: the ``mcpServers`` of ``~/.claude.json``):
  the server ``bridge`` running ``bridge mcp``.

Entries are recognised as ours by their command (``… hook session-start`` of a
``bridge`` executable, or the ``bridge`` server running ``… mcp``), so
``uninstall`` removes exactly those and nothing the user wrote. A file that is
not a JSON object is reported and left as it is.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .._errors import InvalidInput

__all__ = ["HOOK_EVENTS", "Change", "InstallPlan", "install"]

HOOK_EVENTS = {"SessionStart": "session-start", "UserPromptSubmit": "prompt", "Stop": "stop"}
SERVER_NAME = "bridge"
PERMISSION = "mcp__bridge"
HOOK_TIMEOUT_S = 10
"""Claude Code's own default is 60 s; a hook of ours answers in milliseconds or not at all."""



@dataclass
class Change:
    path: Path
    what: list[str] = field(default_factory=list)


@dataclass
class InstallPlan:
    """Where the entries go and what they run."""

    settings: Path
    mcp: Path
    mcp_key: str | None  # None: the file is {"mcpServers": …}; else the same under ~/.claude.json
    command: str
    url: str | None
    agent: str

    @classmethod
    def for_target(cls, project: Path | None, *, user: bool, command: str, url: str | None,
                   agent: str, home: Path | None = None) -> InstallPlan:
        home = home or Path.home()
        if user:
            return cls(home / ".claude" / "settings.json", home / ".claude.json", "user",
                       command, url, agent)
        root = (project or Path.cwd()).expanduser().resolve()
        if not root.is_dir():
            raise InvalidInput(f"{root} is not a directory")
        return cls(root / ".claude" / "settings.json", root / ".mcp.json", None, command,
                   url, agent)

    def target_args(self) -> list[str]:
        args = ["--url", self.url] if self.url else []
        return [*args, "--agent", self.agent]

    def hook_command(self, event: str) -> str:
        return shlex.join([self.command, "hook", HOOK_EVENTS[event], *self.target_args()])

    def server(self) -> dict[str, Any]:
        return {"type": "stdio", "command": self.command, "args": ["mcp", *self.target_args()]}


def _load(path: Path) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    if not data.strip():
        return {}
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"{path} is not valid JSON ({exc}); fix it or move it away, "
                           "nothing was changed") from None
    if not isinstance(doc, dict):
        raise InvalidInput(f"{path} is not a JSON object; nothing was changed")
    return doc


def _save(path: Path, doc: dict[str, Any]) -> None:
    # Through a symlink (settings kept in a dotfiles repository), to the file it names.
    path = path.resolve() if path.is_symlink() else path
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o600
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _is_ours(hook: Any, command: str) -> bool:
    """A hook this command wrote: ``<command> hook <event>``, with any options.

    Matched on the executable's exact path, so a ``bridge hook …`` entry the user
    wrote by hand with another path (or another tool's) is never touched.
    """
    if not isinstance(hook, dict) or not isinstance(hook.get("command"), str):
        return False
    try:
        words = shlex.split(hook["command"])
    except ValueError:
        return False
    return (len(words) >= 3 and words[0] == command and words[1] == "hook"
            and words[2] in HOOK_EVENTS.values())


def _strip_hooks(settings: dict[str, Any], command: str) -> list[str]:
    """Remove our hook entries; the events they were removed from."""
    removed: list[str] = []
    hooks = settings.get("hooks")
    if not isinstance(hooks, dict):
        return removed
    for event in list(hooks):
        groups = hooks[event]
        if not isinstance(groups, list):
            continue
        kept = []
        for group in groups:
            inner = group.get("hooks") if isinstance(group, dict) else None
            if isinstance(inner, list) and any(_is_ours(h, command) for h in inner):
                rest = [h for h in inner if not _is_ours(h, command)]
                removed.append(event)
                if rest:
                    kept.append({**group, "hooks": rest})
                continue
            kept.append(group)
        if kept:
            hooks[event] = kept
        else:
            del hooks[event]
    if not hooks:
        del settings["hooks"]
    return removed


def _remove_from_list(settings: dict[str, Any], path: tuple[str, ...], value: str) -> bool:
    node: Any = settings
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    if not isinstance(node, dict) or not isinstance(node.get(path[-1]), list):
        return False
    items = node[path[-1]]
    if value not in items:
        return False
    items.remove(value)
    if not items:
        del node[path[-1]]
    if path[:-1] and isinstance(settings.get(path[0]), dict) and not settings[path[0]]:
        del settings[path[0]]
    return True


def _add_to_list(settings: dict[str, Any], path: tuple[str, ...], value: str) -> bool:
    node = settings
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            if child is not None:
                raise InvalidInput(f"'{key}' in the settings is not an object; nothing was "
                                   "changed")
            child = node[key] = {}
        node = child
    items = node.setdefault(path[-1], [])
    if not isinstance(items, list):
        raise InvalidInput(f"'{path[-1]}' in the settings is not a list; nothing was changed")
    if value in items:
        return False
    items.append(value)
    return True


def _server_is_ours(entry: Any) -> bool:
    return (isinstance(entry, dict) and isinstance(entry.get("args"), list)
            and entry["args"][:1] == ["mcp"]
            and Path(str(entry.get("command", ""))).name == "bridge")


def install(plan: InstallPlan, *, uninstall: bool = False, allow_tools: bool = False
            ) -> list[Change]:
    """Apply (or remove) the entries; the changes made, per file (empty: nothing to do)."""
    settings = _load(plan.settings)
    mcp_doc = _load(plan.mcp)
    before_settings = orjson.dumps(settings)
    before_mcp = orjson.dumps(mcp_doc)
    changes = [Change(plan.settings), Change(plan.mcp)]
    removed = _strip_hooks(settings, plan.command)
    servers = mcp_doc.get("mcpServers")
    if servers is not None and not isinstance(servers, dict):
        raise InvalidInput(f"'mcpServers' in {plan.mcp} is not an object; nothing was changed")
    existing = (servers or {}).get(SERVER_NAME)
    if existing is not None and not _server_is_ours(existing) and not uninstall:
        raise InvalidInput(f"{plan.mcp} already has an MCP server named {SERVER_NAME!r} that "
                           "is not kami-bridge's; rename or remove it first")
    if uninstall:
        if removed:
            changes[0].what.append(f"removed hooks {', '.join(sorted(set(removed)))}")
        ours = existing is not None and _server_is_ours(existing)
        # The enable and permission entries name a server "bridge": remove them only
        # with our server, never beside a server of the user's with that name.
        if ours and _remove_from_list(settings, ("enabledMcpjsonServers",), SERVER_NAME):
            changes[0].what.append(f"removed {SERVER_NAME} from enabledMcpjsonServers")
        if ours and _remove_from_list(settings, ("permissions", "allow"), PERMISSION):
            changes[0].what.append(f"removed permission {PERMISSION}")
        if servers is not None and existing is not None and _server_is_ours(existing):
            del servers[SERVER_NAME]
            if not servers:
                del mcp_doc["mcpServers"]
            changes[1].what.append(f"removed MCP server {SERVER_NAME}")
    else:
        hooks = settings.setdefault("hooks", {})
        if not isinstance(hooks, dict):
            raise InvalidInput(f"'hooks' in {plan.settings} is not an object; nothing was "
                               "changed")
        for event in HOOK_EVENTS:
            groups = hooks.setdefault(event, [])
            if not isinstance(groups, list):
                raise InvalidInput(f"hooks.{event} in {plan.settings} is not a list; nothing "
                                   "was changed")
            groups.append({"hooks": [{"type": "command", "command": plan.hook_command(event),
                                      "timeout": HOOK_TIMEOUT_S}]})
        changes[0].what.append(f"hooks {', '.join(HOOK_EVENTS)} → {plan.command} hook …")
        if plan.mcp_key is None and _add_to_list(settings, ("enabledMcpjsonServers",),
                                                 SERVER_NAME):
            changes[0].what.append(f"enabledMcpjsonServers += {SERVER_NAME}")
        if allow_tools and _add_to_list(settings, ("permissions", "allow"), PERMISSION):
            changes[0].what.append(f"permissions.allow += {PERMISSION}")
        mcp_doc.setdefault("mcpServers", {})[SERVER_NAME] = plan.server()
        changes[1].what.append(f"MCP server {SERVER_NAME} → {plan.command} mcp "
                               f"{shlex.join(plan.target_args())}")
    done: list[Change] = []
    if orjson.dumps(settings) != before_settings:
        _save(plan.settings, settings)
        done.append(changes[0])
    if orjson.dumps(mcp_doc) != before_mcp:
        _save(plan.mcp, mcp_doc)
        done.append(changes[1])
    return done
