"""The agent runtime that Kami and Kaylee stand on.

Lifecycle (config → /health → READY → loop with WATCHDOG and PAUSE → STOPPING),
typed configuration with secrets from systemd credentials, structured JSON logs
with redaction, the /health endpoint, and peer checks with alerts. Importing it
does nothing; an agent calls :meth:`Agent.run`.
"""

# The names below are imported from their modules on first use (PEP 562), so
# importing this package costs nothing until one of them is asked for.

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._lazy import lazy_attribute

if TYPE_CHECKING:
    from ._agent import (
        EXIT_FAILED,
        EXIT_OK,
        Agent,
    )
    from ._config import (
        AgentConfig,
        HealthConfig,
        LogConfig,
        PeerConfig,
        PeersConfig,
        Secret,
        SSHConfig,
        duration,
        load_config,
        secret,
    )
    from ._ctl import (
        CTL_ACTIONS,
        CtlResult,
        ctl,
        unit_name,
    )
    from ._deploy import (
        PROJECT_ROOT,
        DeployPlan,
        deploy,
        parse_pip_args,
    )
    from ._health import (
        HealthServer,
    )
    from ._logging import (
        AgentLogger,
        JsonFormatter,
        get_logger,
        setup_logging,
    )
    from ._logs import (
        LEVEL_RANK,
        LogFilter,
        read_logs,
    )
    from ._main import (
        agent_main,
    )
    from ._models import (
        BudgetExhausted,
        Completion,
        Ledger,
        ModelError,
        ModelRoute,
        ModelRouter,
        ModelsConfig,
        ModelUnavailable,
    )
    from ._notify import (
        notify,
        watchdog_interval,
    )
    from ._peers import (
        BAD_STATES,
        Alert,
        AlertSink,
        BridgeSink,
        PeerMonitor,
        PeerResult,
        check_peer,
    )
    from ._redact import (
        redact,
        register_secret,
    )
    from ._remote_exec import (
        CommandResult,
        RemoteCommandFailed,
        RemoteHost,
    )

_EXPORTS: dict[str, str] = {
    "Agent": "._agent",
    "AgentConfig": "._config",
    "AgentLogger": "._logging",
    "Alert": "._peers",
    "AlertSink": "._peers",
    "BAD_STATES": "._peers",
    "BridgeSink": "._peers",
    "BudgetExhausted": "._models",
    "CTL_ACTIONS": "._ctl",
    "CommandResult": "._remote_exec",
    "Completion": "._models",
    "CtlResult": "._ctl",
    "DeployPlan": "._deploy",
    "EXIT_FAILED": "._agent",
    "EXIT_OK": "._agent",
    "HealthConfig": "._config",
    "HealthServer": "._health",
    "JsonFormatter": "._logging",
    "LEVEL_RANK": "._logs",
    "Ledger": "._models",
    "LogConfig": "._config",
    "LogFilter": "._logs",
    "ModelError": "._models",
    "ModelRoute": "._models",
    "ModelRouter": "._models",
    "ModelUnavailable": "._models",
    "ModelsConfig": "._models",
    "PROJECT_ROOT": "._deploy",
    "PeerConfig": "._config",
    "PeerMonitor": "._peers",
    "PeerResult": "._peers",
    "PeersConfig": "._config",
    "RemoteCommandFailed": "._remote_exec",
    "RemoteHost": "._remote_exec",
    "SSHConfig": "._config",
    "Secret": "._config",
    "agent_main": "._main",
    "check_peer": "._peers",
    "ctl": "._ctl",
    "deploy": "._deploy",
    "duration": "._config",
    "get_logger": "._logging",
    "load_config": "._config",
    "notify": "._notify",
    "parse_pip_args": "._deploy",
    "read_logs": "._logs",
    "redact": "._redact",
    "register_secret": "._redact",
    "secret": "._config",
    "setup_logging": "._logging",
    "unit_name": "._ctl",
    "watchdog_interval": "._notify",
}


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _EXPORTS, name)


__all__ = [
    "BAD_STATES",
    "CTL_ACTIONS",
    "EXIT_FAILED",
    "EXIT_OK",
    "LEVEL_RANK",
    "PROJECT_ROOT",
    "Agent",
    "AgentConfig",
    "AgentLogger",
    "Alert",
    "AlertSink",
    "BridgeSink",
    "BudgetExhausted",
    "CommandResult",
    "Completion",
    "CtlResult",
    "DeployPlan",
    "HealthConfig",
    "HealthServer",
    "JsonFormatter",
    "Ledger",
    "LogConfig",
    "LogFilter",
    "ModelError",
    "ModelRoute",
    "ModelRouter",
    "ModelUnavailable",
    "ModelsConfig",
    "PeerConfig",
    "PeerMonitor",
    "PeerResult",
    "PeersConfig",
    "RemoteCommandFailed",
    "RemoteHost",
    "SSHConfig",
    "Secret",
    "agent_main",
    "check_peer",
    "ctl",
    "deploy",
    "duration",
    "get_logger",
    "load_config",
    "notify",
    "parse_pip_args",
    "read_logs",
    "redact",
    "register_secret",
    "secret",
    "setup_logging",
    "unit_name",
    "watchdog_interval",
]
