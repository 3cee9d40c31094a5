"""`bridge mcp --channel` and the real Claude Code CLI, interactive, end to end.

Channels work only in an interactive session started with
``--dangerously-load-development-channels server:bridge`` whose ``tengu_harbor``
feature flag is on. The flag is off with ``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC``
(which every other CLI test sets), so this one runs without it, with the flag
seeded in ``~/.claude.json`` (``cachedGrowthBookFeatures``, an unofficial
workaround), and — so that the CLI's lookups of external hosts go nowhere —
the whole scenario runs in a new network namespace holding only loopback
(``unshare -n``): this module runs itself there (``python -m
tests.test_claude_channel_cli SCENARIO_DIR``), with the fake Messages API
inside, the CLI under tmux (a dedicated ``-L`` socket) and its dialogs answered
with ``send-keys``. The outer test reads the scenario's result file.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest

from bridge import Bridge
from bridge.testing.messages_api import FakeMessagesAPI, Reply, request_text, text
from tests.claude_support import API_KEY, CLAUDE_BIN, ROOT, claude_env, require_claude
from tests.conftest import require_tool

BIN = Path(sys.executable).parent
SCENARIO_TIMEOUT_S = 240
STEP_S = 90.0
"""The longest wait for any one thing in the scenario (the CLI starting, a request)."""


def _namespace(unshare: str) -> list[str]:
    """The command prefix for a new network namespace: as root, or in a user namespace."""
    reasons = []
    for prefix in ([unshare, "-n"], [unshare, "-rn"]):
        probe = subprocess.run([*prefix, "ip", "link", "set", "lo", "up"], capture_output=True,
                               timeout=30, check=False)
        if probe.returncode == 0:
            return prefix
        reasons.append(f"{shlex.join(prefix)}: {probe.stderr.decode(errors='replace').strip()}")
    reason = "no network namespace here (" + "; ".join(reasons) + ")"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def test_a_pushed_request_wakes_an_idle_interactive_session(tmp_path: Path) -> None:
    require_claude()
    require_tool("tmux")
    require_tool("ip")
    namespace = _namespace(require_tool("unshare"))
    proc = subprocess.run([*namespace, sys.executable, "-m", "tests.test_claude_channel_cli",
                           str(tmp_path)], cwd=ROOT, capture_output=True,
                          timeout=SCENARIO_TIMEOUT_S, check=False)
    result_file = tmp_path / "result.json"
    assert result_file.exists(), (proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:])
    result = orjson.loads(result_file.read_bytes())
    assert proc.returncode == 0, (result, proc.stderr[-3000:])
    rid = result["rid"]
    assert "Channel notifications registered" in result["debug_channel_lines"], result
    blocks = result["channel_blocks"]
    assert blocks, result
    block = blocks[0]
    assert block.startswith('<channel source="bridge" id="' + rid + '" from="kami" '
                            'type="request" priority="high" '
                            'whatsapp_sender="972501234567@c.us">'), block
    assert f"kami-bridge: new {rid} [request, high priority]" in block
    assert '"Is the backup done?"' in block
    # A hint only: the hooks' record is untouched, so the prompt hook still announces it.
    assert result["hook_told"] is True
    assert result["status"] == "pending"  # the model was told; nothing was done for it


# -- the scenario, inside the namespace ------------------------------------------------------


def _wait(what: str, check: Callable[[], Any], timeout: float = STEP_S) -> Any:
    deadline = time.monotonic() + timeout
    event = threading.Event()
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout} s")
        event.wait(0.2)  # polling a condition (a screen, a file) against a deadline


class Tmux:
    """A tmux server of our own (``-L``), its one pane running ``command``."""

    def __init__(self, socket: str, command: str) -> None:
        self.base = ["tmux", "-L", socket, "-f", "/dev/null"]
        subprocess.run([*self.base, "new-session", "-d", "-s", "s", "-x", "200", "-y", "50",
                        command], check=True, timeout=30)
        self.server_pid = int(self._out("display-message", "-p", "#{pid}"))
        self.pane_pid = int(self._out("display-message", "-p", "#{pane_pid}"))

    def _out(self, *args: str) -> str:
        return subprocess.run([*self.base, *args], check=True, capture_output=True,
                              timeout=30).stdout.decode(errors="replace").strip()

    def screen(self) -> str:
        try:
            return self._out("capture-pane", "-p", "-t", "s")
        except subprocess.CalledProcessError:
            return ""

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.base, "send-keys", "-t", "s", *keys], check=True, timeout=30)

    def stop(self) -> None:
        for pid in (self.pane_pid, self.server_pid):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            try:
                _wait(f"exit of pid {pid}", partial(_gone, pid), timeout=20)
            except TimeoutError:
                os.kill(pid, signal.SIGKILL)


def _gone(pid: int) -> bool:
    """Exited (a zombie counts: its parent, not us, reaps it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _off_screen(tmux: Tmux, needle: str) -> bool:
    return needle not in tmux.screen()


DIALOGS = [
    # (text on the screen, keys that answer it)
    ("I am using this for local development", ["1"]),
    ("Do you trust the files in this folder", ["1"]),
    ("Yes, I trust this folder", ["1"]),
    ("Do you want to use this API key", ["Up", "Enter"]),
    ("Choose the text style", ["Enter"]),
    ("Press Enter to continue", ["Enter"]),
]


CHANNEL_BLOCK = re.compile(r'<channel source="bridge".*?</channel>', re.DOTALL)


def _texts(api: FakeMessagesAPI) -> list[str]:
    return [request_text(r["body"]) for r in list(api.requests) if isinstance(r.get("body"), dict)]


def _channel_blocks(api: FakeMessagesAPI) -> list[str]:
    """Each ``<channel source="bridge" …>`` block the model was sent, once."""
    out: list[str] = []
    for found in (CHANNEL_BLOCK.findall(t) for t in _texts(api)):
        out += [b for b in found if b not in out]
    return out


def scenario(root: Path) -> int:
    """Run inside ``unshare -n``; writes ``root/result.json``."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=30)
    result: dict[str, Any] = {"steps": []}
    bridge_dir, project, home = root / "bridge", root / "proj", root / "home"
    debug = root / "claude-debug.log"
    tmux: Tmux | None = None
    kami = Bridge(bridge_dir, agent="kami")

    def answer(body: dict[str, Any]) -> Reply:
        return text("Noted; I will look at the bridge.")

    try:
        with FakeMessagesAPI(api_key=API_KEY, responder=answer) as api:
            project.mkdir(parents=True)
            subprocess.run([str(BIN / "bridge"), "claude", "install", str(project), "--url",
                            str(bridge_dir)], check=True, capture_output=True, timeout=60)
            mcp = orjson.loads((project / ".mcp.json").read_bytes())
            mcp["mcpServers"]["bridge"]["args"].append("--channel")
            (project / ".mcp.json").write_bytes(orjson.dumps(mcp))
            home.mkdir(parents=True)
            (home / ".claude.json").write_bytes(orjson.dumps({
                # The unofficial workaround: the feature flag as if fetched earlier.
                "cachedGrowthBookFeatures": {"tengu_harbor": True},
                "hasCompletedOnboarding": True,
                "theme": "dark",
                # The fake's key, approved (the CLI keeps the last 20 characters).
                "customApiKeyResponses": {"approved": [API_KEY[-20:]], "rejected": []},
            }))
            env = claude_env(home, api, TERM="xterm-256color")
            del env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"]  # it turns channels off
            script = root / "claude.sh"
            # The key goes in the script's environment, not on any command line.
            script.write_text("#!/bin/sh\n" + "".join(
                f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
                + f"cd {shlex.quote(str(project))}\n"
                + f"exec {shlex.quote(str(CLAUDE_BIN))} --dangerously-load-development-channels"
                  f" server:bridge --debug-file {shlex.quote(str(debug))}\n")
            script.chmod(0o700)
            tmux = Tmux(f"kb-channel-{os.getpid()}", f"env -i {shlex.quote(str(script))}")

            def ready(tmux: Tmux = tmux) -> bool:
                screen = tmux.screen()
                for needle, keys in DIALOGS:
                    if needle in screen:
                        result["steps"].append(needle)
                        tmux.keys(*keys)
                        # Once: the next look must not see the same dialog still fading.
                        _wait(f"the {needle!r} dialog to go", partial(_off_screen, tmux, needle),
                              timeout=30)
                        return False
                log = debug.read_text(errors="replace") if debug.exists() else ""
                return "Channel notifications" in log and "? for shortcuts" in screen

            try:
                _wait("idle interactive session with the channel registered", ready)
            finally:
                log = debug.read_text(errors="replace") if debug.exists() else ""
                result["debug_channel_lines"] = "\n".join(
                    line for line in log.splitlines() if "hannel" in line)[-4000:]
                result["screen"] = tmux.screen() if tmux else ""
            before = len(api.requests)
            rid = kami.send("Is the backup done?\nIt ran at 03:00.", to="claude",
                            priority="high",
                            metadata={"whatsapp_sender": "972501234567@c.us"}).id
            result["rid"] = rid
            try:
                _wait("a model request carrying the pushed request",
                      lambda: any(rid in b for b in _channel_blocks(api)))
            finally:
                result["channel_blocks"] = _channel_blocks(api)
                result["requests_after_push"] = len(api.requests) - before
                result["screen"] = tmux.screen()
            # The push marked nothing announced: the prompt hook (the CLI runs it for the
            # pushed message too) still tells of the request, in its digest.
            try:
                _wait("the prompt hook's digest naming the request", lambda: any(
                    "message new for claude" in t and f"- {rid} [request" in t
                    for t in _texts(api)))
                result["hook_told"] = True
            finally:
                result["screen"] = tmux.screen()
            result["status"] = kami.get(rid).state.status
    except Exception as exc:  # reported in the result file, for the outer test's message
        result["error"] = f"{type(exc).__name__}: {exc}"
        return 1
    else:
        return 0
    finally:
        if tmux is not None:
            tmux.stop()
        kami.close()
        (root / "result.json").write_bytes(orjson.dumps(result))


if __name__ == "__main__":
    sys.exit(scenario(Path(sys.argv[1])))
