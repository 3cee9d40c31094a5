"""The agent runtime that Kami and Kaylee stand on.

Lifecycle (config → /health → READY → loop with WATCHDOG and PAUSE → STOPPING),
typed configuration with secrets from systemd credentials, structured JSON logs
with redaction, the /health endpoint, and peer checks with alerts. Importing it
does nothing; an agent calls :meth:`Agent.run`.
"""

from ._agent import EXIT_FAILED, EXIT_OK, Agent
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
from ._ctl import CTL_ACTIONS, CtlResult, ctl, unit_name
from ._health import HealthServer
from ._logging import AgentLogger, JsonFormatter, get_logger, setup_logging
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
from ._notify import notify, watchdog_interval
from ._redact import redact, register_secret
from ._remote_exec import CommandResult, RemoteCommandFailed, RemoteHost

__all__ = [
    "CTL_ACTIONS",
    "EXIT_FAILED",
    "EXIT_OK",
    "Agent",
    "AgentConfig",
    "AgentLogger",
    "BudgetExhausted",
    "CommandResult",
    "Completion",
    "CtlResult",
    "HealthConfig",
    "HealthServer",
    "JsonFormatter",
    "Ledger",
    "LogConfig",
    "ModelError",
    "ModelRoute",
    "ModelRouter",
    "ModelUnavailable",
    "ModelsConfig",
    "PeerConfig",
    "PeersConfig",
    "RemoteCommandFailed",
    "RemoteHost",
    "SSHConfig",
    "Secret",
    "ctl",
    "duration",
    "get_logger",
    "load_config",
    "notify",
    "redact",
    "register_secret",
    "secret",
    "setup_logging",
    "unit_name",
    "watchdog_interval",
]
