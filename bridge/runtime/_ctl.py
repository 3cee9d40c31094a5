"""``bridge ctl HOST status|start|stop|restart AGENT``: systemctl on another host.

The unit is ``kami-bridge@<agent>.service`` (systemd/kami-bridge@.service). The
account on the host needs the right to manage it (root, or polkit/sudo rights for
those units: docs/operations.md). Tests stop at the systemctl boundary: they
point ``systemctl`` at a stand-in on the far side of a real sshd.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .._errors import InvalidInput
from ..format import validate_agent_name
from ._remote_exec import RemoteHost

__all__ = ["CTL_ACTIONS", "CtlResult", "ctl", "unit_name"]

CTL_ACTIONS = ("status", "start", "stop", "restart")
Action = Literal["status", "start", "stop", "restart"]

_SHOW = "ActiveState,SubState,NRestarts,ExecMainStatus,Result"


def unit_name(agent: str) -> str:
    """The systemd unit of an agent."""
    return f"kami-bridge@{validate_agent_name(agent)}.service"


@dataclass(frozen=True)
class CtlResult:
    """The unit's state after the action."""

    host: str
    agent: str
    action: str
    active: str
    sub: str
    restarts: int | None
    result: str

    @property
    def running(self) -> bool:
        return self.active == "active"

    def to_dict(self) -> dict[str, object]:
        return {"host": self.host, "agent": self.agent, "action": self.action,
                "active": self.active, "sub": self.sub, "restarts": self.restarts,
                "result": self.result}


def ctl(remote: RemoteHost, action: str, agent: str, *, systemctl: str = "systemctl",
        sudo: bool = False) -> CtlResult:
    """Run the action on the host, then report the unit's state.

    Raises:
        InvalidInput: an unknown action or a bad agent name.
        RemoteCommandFailed: systemctl refused (its message is in the error).
    """
    if action not in CTL_ACTIONS:
        raise InvalidInput(f"action must be one of {', '.join(CTL_ACTIONS)}, not {action!r}")
    unit = unit_name(agent)
    prefix = ["sudo", "-n"] if sudo else []
    if action != "status":
        remote.run([*prefix, systemctl, action, unit], timeout=120).check(
            f"systemctl {action} {unit}")
    shown = remote.run([*prefix, systemctl, "show", "-p", _SHOW, unit], timeout=30).check(
        f"systemctl show {unit}")
    props = dict(line.split("=", 1) for line in shown.stdout.splitlines() if "=" in line)
    restarts = props.get("NRestarts", "")
    return CtlResult(remote.host, agent, action, props.get("ActiveState", "unknown"),
                     props.get("SubState", ""), int(restarts) if restarts.isdigit() else None,
                     props.get("Result", ""))
