"""``bridge`` commands for operating agents and reaching bridges elsewhere: health, logs,
serve, ping, ctl, deploy (merged into ``bridge`` by cli.py; what they share with the other
command modules is in cli_common)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

import bridge as lib
from cli_common import (
    JsonOption,
    check_choice,
    err,
    new_app,
    open_bridge,
    out,
    print_json,
    short_time,
    state,
    visible,
)

if TYPE_CHECKING:
    from bridge.runtime import PeerResult

app = new_app()
AGENTS = "Operating agents"
REMOTE = "Remote bridges"

# -- agent operations ----------------------------------------------------------------------

_STATE_STYLE = {"ok": "green", "slow": "yellow", "paused": "cyan", "degraded": "red",
                "down": "bold red"}


def health_json(result: PeerResult) -> dict[str, Any]:
    """One peer as ``health --json`` prints it: the latency in milliseconds, ``latency_ms``."""
    shaped = result.to_dict()
    latency = shaped.pop("latency", None)
    shaped["latency_ms"] = None if latency is None else round(latency * 1000, 1)
    return shaped


@app.command(rich_help_panel=AGENTS)
def health(
    urls: Annotated[list[str], typer.Argument(metavar="URL", help="Agents' /health URLs "
                                              "(http://host:port/health).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON array, an object "
                                          "per URL.")] = False,
    timeout: Annotated[str, typer.Option("--timeout", metavar="DURATION",
                                         help="Give up on a peer after this long.")] = "5s",
    slow: Annotated[str, typer.Option("--slow", metavar="DURATION",
                                      help="An answer later than this is slow.")] = "2s",
) -> int:
    """Check agents' /health endpoints once.

    Each is ok, slow, paused, degraded or down; exit 1 if any is down or
    degraded. A bearer token, if needed, comes from $BRIDGE_HEALTH_TOKEN (or
    the systemd credential health-token), never from the command line.
    """
    import httpx

    from bridge.runtime import check_peer

    token = os.environ.get("BRIDGE_HEALTH_TOKEN") or None
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if token is None and creds and Path(creds, "health-token").is_file():
        token = Path(creds, "health-token").read_text().strip() or None
    limit, late = lib.parse_duration(timeout), lib.parse_duration(slow)
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise lib.InvalidInput(f"{url!r} is not an http(s) URL")
    with httpx.Client() as client:
        results = [check_peer(client, url, url, token=token, timeout=limit, slow=late)
                   for url in urls]
    if as_json:
        print_json([health_json(r) for r in results])
    else:
        console = out()
        for r in results:
            row = Text(f"{r.state:9}", style=_STATE_STYLE.get(r.state, ""))
            row.append(f" {r.url}")
            if r.agent:
                row.append(visible(f"  {r.agent} {r.version or ''}"), style="dim")
            row.append(visible(f"  {r.detail}"))
            console.print(row)
    return 1 if any(r.state in ("down", "degraded") for r in results) else 0


@app.command(rich_help_panel=AGENTS)
def logs(
    files: Annotated[list[Path], typer.Argument(metavar="FILE", help="Agent log files "
                                                "(JSON lines); - reads stdin.")],
    agent: Annotated[str | None, typer.Option("--agent", metavar="NAME",
                                              help="Only this agent.")] = None,
    level: Annotated[str | None, typer.Option("--level", metavar="LEVEL",
                                              help="This level and above: debug, info, "
                                              "warning, error.")] = None,
    event: Annotated[str | None, typer.Option("--event", metavar="EVENT",
                                              help="An event name, or a prefix ending in . "
                                              "or * (e.g. bridge.*).")] = None,
    since: Annotated[str | None, typer.Option("--since", metavar="DATE",
                                              help="A date, timestamp or duration ago (2h).")
                     ] = None,
    until: Annotated[str | None, typer.Option("--until", metavar="DATE",
                                              help="Same forms as --since.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print each kept line as one JSON "
                                          "object (JSONL).")] = False,
) -> None:
    """Read and filter agents' structured logs.

    Their log files, or - for stdin (journalctl -o cat).
    """
    from bridge.format import parse_when
    from bridge.runtime import LEVEL_RANK, LogFilter, read_logs

    check_choice(level, frozenset(LEVEL_RANK), "--level")
    keep = LogFilter(agent=agent, level=level, event=event,
                     since=parse_when(since) if since else None,
                     until=parse_when(until) if until else None)
    console = out()
    for path in files:
        stream = sys.stdin.buffer if str(path) == "-" else None
        try:
            handle = stream or open(path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            raise lib.InvalidInput(f"log file {path} does not exist") from None
        try:
            for line in read_logs(handle, keep):
                if as_json:
                    print_json(line)
                    continue
                row = Text(short_time(line.get("ts")), style="dim")
                lvl = str(line.get("level"))
                row.append(f"  {lvl:7}", style={"error": "red", "critical": "bold red",
                                                 "warning": "yellow"}.get(lvl, ""))
                row.append(visible(f"  {line.get('agent')}  "))
                row.append(visible(str(line.get("event"))), style="bold")
                rest = {k: v for k, v in line.items()
                        if k not in ("ts", "level", "agent", "event", "traceback")}
                if rest:
                    row.append(visible("  " + " ".join(f"{k}={v}" for k, v in rest.items())))
                console.print(row)
        finally:
            if stream is None:
                handle.close()


@app.command(rich_help_panel=REMOTE)
def serve(
    stdio: Annotated[bool, typer.Option("--stdio", help="Speak the line protocol on stdin "
                                        "and stdout (how SSH runs it).")] = False,
    directory: Annotated[Path | None, typer.Option(
        "--dir", metavar="DIR", help="Serve only this bridge directory (for a locked-down "
        "key); by default the client names it.")] = None,
    idle_timeout: Annotated[float, typer.Option(
        "--idle-timeout", min=1.0, metavar="SECONDS", help="Exit after this many seconds "
        "without a line from the client (clients ping every few seconds).")] = 60.0,
) -> int:
    """Serve a bridge on this host to a remote client (run by ssh)."""
    from bridge.remote import serve_command

    if not stdio:
        raise lib.InvalidInput("serve speaks only over stdin/stdout: give --stdio")
    return serve_command(directory, idle_timeout=idle_timeout)


@app.command(rich_help_panel=REMOTE)
def ping(
    url: Annotated[str | None, typer.Argument(
        metavar="URL", help="The bridge (default: --url, $BRIDGE_URL, --dir).")] = None,
    count: Annotated[int, typer.Option("--count", "-c", min=1, max=1000, metavar="N",
                                       help="Round trips to time.")] = 5,
    as_json: JsonOption = False,
) -> None:
    """Time round trips to a bridge; report its version and pause state."""
    b = open_bridge(create=False, url=lib.parse_url(url) if url else state.url)
    r = b.ping(count)
    if as_json:
        print_json(r.to_dict())
        return
    line = Text(f"{r.url}: kami-bridge {r.server}")
    if r.remote:
        t = r.to_dict()["rtt_ms"]
        line.append(f" (protocol {r.protocol}) at {r.directory}; connected in "
                    f"{r.connect_ms:.0f} ms; round trip {t['median']:.2f} ms "
                    f"(min {t['min']:.2f}, max {t['max']:.2f}, {t['count']} pings)")
    else:
        line.append(" (local)")
    if r.paused is not None:
        p = r.paused
        since = f" since {short_time(p.since)}" if p.since else ""
        why = f": {p.reason}" if p.reason else ""
        line.append(f"; PAUSED by {p.by or 'someone'}{since}{why}", style="bold yellow")
    else:
        line.append("; running", style="green")
    out().print(line)


SshConfigOption = Annotated[Path | None, typer.Option(
    "--ssh-config", metavar="FILE", help="ssh_config file instead of ~/.ssh/config.")]
KnownHostsOption = Annotated[Path | None, typer.Option(
    "--known-hosts", metavar="FILE", help="known_hosts file instead of ~/.ssh/known_hosts.")]
IdentityOption = Annotated[Path | None, typer.Option(
    # No -i: across bridge's commands -i is search's --ignore-case.
    "--identity", metavar="FILE", help="Private key file (default: the agent, then "
    "~/.ssh/id_*).")]
HostArgument = Annotated[str, typer.Argument(
    metavar="HOST", help="\\[user@]host\\[:port], or a Host from ssh_config.")]


@app.command(rich_help_panel=AGENTS)
def ctl(
    host: HostArgument,
    action: Annotated[str, typer.Argument(metavar="ACTION",
                                          help="status, start, stop or restart.")],
    agent: Annotated[str, typer.Argument(metavar="AGENT",
                                         help="The agent (unit kami-bridge@AGENT).")],
    as_json: JsonOption = False,
    sudo: Annotated[bool, typer.Option("--sudo", help="Run systemctl through sudo -n.")
                    ] = False,
    systemctl: Annotated[str, typer.Option("--systemctl", metavar="PATH",
                                           help="systemctl on the host.")] = "systemctl",
    ssh_config: SshConfigOption = None,
    known_hosts: KnownHostsOption = None,
    identity: IdentityOption = None,
) -> int:
    """Run systemctl for an agent's service on another host.

    Start, stop or restart it, or show its state. Exit 0 when the unit is
    then running (for stop: stopped), 1 otherwise.
    """
    from bridge.runtime import RemoteHost
    from bridge.runtime import ctl as run_ctl

    with RemoteHost(host, ssh_config=ssh_config, known_hosts=known_hosts,
                    identity_file=identity) as remote:
        result = run_ctl(remote, action, agent, systemctl=systemctl, sudo=sudo)
    if as_json:
        print_json(result.to_dict())
    else:
        style = "green" if result.running else "yellow"
        line = Text(f"{result.agent} on {result.host}: ")
        line.append(f"{result.active} ({result.sub})", style=style)
        if result.restarts:
            line.append(f", {result.restarts} restart(s)", style="dim")
        if result.result and result.result != "success":
            line.append(f", last result {result.result}", style="red")
        out().print(line)
    wanted = not result.running if action == "stop" else result.running
    # 1, "a check found problems", as for doctor and health: 3 means no such message.
    return 0 if wanted else 1


@app.command(rich_help_panel=AGENTS)
def deploy(
    host: HostArgument,
    agent: Annotated[str, typer.Option("--agent", metavar="NAME", help="kami, kaylee, ...")],
    config: Annotated[Path | None, typer.Option("--config", metavar="FILE",
                                                help="The agent's TOML config to install.")
                      ] = None,
    credentials: Annotated[Path | None, typer.Option(
        "--credentials", metavar="DIR", help="A directory of credential files "
        "(green-api-token, ...) to install 0600 for LoadCredential=.")] = None,
    wheel: Annotated[Path | None, typer.Option("--wheel", metavar="FILE",
                                               help="Deploy this wheel instead of building "
                                               "one from the checkout.")] = None,
    units: Annotated[Path | None, typer.Option("--units", metavar="DIR",
                                               help="Unit files directory (default: "
                                               "systemd/ of the checkout).")] = None,
    health_timeout: Annotated[str, typer.Option("--health-timeout", metavar="DURATION",
                                                help="How long the new release has to "
                                                "report ok.")] = "60s",
    sudo: Annotated[bool, typer.Option("--sudo", help="Run the host side through sudo -n.")
                    ] = False,
    python: Annotated[str, typer.Option("--python", metavar="PATH",
                                        help="Python 3.11+ on the host.")] = "python3",
    pip_arg: Annotated[list[str] | None, typer.Option(
        "--pip-arg", metavar="ARG", help="Extra pip install arguments on the host (e.g. "
        "--index-url URL).")] = None,
    root: Annotated[str, typer.Option("--root", metavar="DIR", help="Install under this "
                                      "directory on the host (for trials and tests).")
                    ] = "/",
    systemctl: Annotated[str, typer.Option("--systemctl", metavar="PATH",
                                           help="systemctl on the host.")] = "systemctl",
    sysusers: Annotated[str, typer.Option("--sysusers", metavar="PATH",
                                          help="systemd-sysusers on the host.")
                        ] = "systemd-sysusers",
    tmpfiles: Annotated[str, typer.Option("--tmpfiles", metavar="PATH",
                                          help="systemd-tmpfiles on the host.")
                        ] = "systemd-tmpfiles",
    extra_site: Annotated[str | None, typer.Option(
        "--extra-site", metavar="DIR", help="A site-packages on the host to add to the new "
        "venv (offline installs).")] = None,
    as_json: JsonOption = False,
    ssh_config: SshConfigOption = None,
    known_hosts: KnownHostsOption = None,
    identity: IdentityOption = None,
) -> None:
    """Install or upgrade an agent on a host over SSH, with rollback.

    Waits for the new release's /health to say ok, and puts the previous
    release back when it does not.
    """
    from bridge.runtime import PROJECT_ROOT, DeployPlan, RemoteHost, parse_pip_args
    from bridge.runtime import deploy as run_deploy

    plan = DeployPlan(agent=agent, wheel=wheel, config=config, credentials=credentials,
                      units=units or PROJECT_ROOT / "systemd", root=root, python=python,
                      systemctl=systemctl, sysusers=sysusers, tmpfiles=tmpfiles,
                      health_timeout=lib.parse_duration(health_timeout),
                      pip_args=parse_pip_args(pip_arg or []), extra_site=extra_site, sudo=sudo)
    console = err()

    def show(step: dict[str, Any]) -> None:
        if not as_json:
            fields = " ".join(f"{k}={v}" for k, v in step.items() if k != "step")
            console.print(Text(f"{step['step']:12}", style="bold") + Text(f" {fields}"))

    with RemoteHost(host, ssh_config=ssh_config, known_hosts=known_hosts,
                    identity_file=identity) as remote:
        result = run_deploy(remote, plan, on_step=show)
    if as_json:
        print_json(result.to_dict())
    else:
        console.print(Text(f"{agent} {result.release} deployed on {host}: healthy",
                           style="green"))
