"""Model routes and daily token budgets, shared by every agent that calls a model.

A *route* is a model with a daily token budget. An agent (or one of Kaylee's
recipes) tries its routes in order: a route whose budget for the day is spent
is skipped, so work downgrades from a strong model to a cheaper one instead of
stopping, as the 16-agent system in the seeds does. Usage is recorded in a
ledger file after every call, so a restart does not reset the day's spend.
When every route is spent the call fails with :class:`BudgetExhausted`; when
every route fails for another reason (overloaded, timeouts), with
:class:`ModelUnavailable`. The ``anthropic`` SDK is imported only when a call
is made.

Days are UTC days.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .._errors import BridgeError, ConfigError
from ..store import Perms, atomic_write
from ._config import Secret, duration, secret

__all__ = [
    "BudgetExhausted",
    "Completion",
    "Ledger",
    "ModelError",
    "ModelRoute",
    "ModelRouter",
    "ModelUnavailable",
    "ModelsConfig",
]


class ModelError(BridgeError):
    """A model call could not be made."""

    exit_code = 1


class BudgetExhausted(ModelError):
    """Every route's daily token budget is spent."""


class ModelUnavailable(ModelError):
    """Every route failed (overloaded, rate-limited, unreachable, timed out)."""


class ModelAuthError(ModelError):
    """The API key was refused: a configuration problem, not worth another route."""


@dataclass(frozen=True)
class ModelRoute:
    """One model and its daily budget (input + output tokens)."""

    name: str
    model: str
    daily_tokens: int = 100_000
    max_tokens: int = 1024


@dataclass(frozen=True)
class ModelsConfig:
    """The ``[models]`` section: routes in order of preference, and how to call them."""

    base_url: str | None = None
    timeout: float = duration(60.0)
    retries: int = 2
    ledger: Path | None = None
    api_key: Secret | None = secret("anthropic-api-key")
    route: tuple[ModelRoute, ...] = ()

    def validate(self) -> None:
        names = [r.name for r in self.route]
        if len(set(names)) != len(names):
            raise ConfigError("models.route", "route names must be unique")
        for i, r in enumerate(self.route):
            if r.daily_tokens < 0 or r.max_tokens < 1:
                raise ConfigError(f"models.route[{i}]", "daily_tokens must be >= 0 and "
                                                        "max_tokens >= 1")


@dataclass(frozen=True)
class Completion:
    """A model's answer: content blocks as plain dicts, and what it cost."""

    route: str
    model: str
    content: list[dict[str, Any]]
    stop_reason: str | None
    input_tokens: int
    output_tokens: int

    @property
    def text(self) -> str:
        """The text blocks joined."""
        return "".join(b.get("text", "") for b in self.content if b.get("type") == "text")

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        """The ``tool_use`` blocks (``name``, ``input``, ``id``)."""
        return [b for b in self.content if b.get("type") == "tool_use"]


def _today(now: float | None = None) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(time.time() if now is None else now))


@dataclass
class Ledger:
    """Tokens used per route today, persisted after every change (atomic replace)."""

    path: Path | None = None
    day: str = field(default_factory=_today)
    used: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def load(cls, path: Path | None) -> Ledger:
        ledger = cls(path)
        if path is None:
            return ledger
        try:
            data = orjson.loads(path.read_bytes())
        except (FileNotFoundError, orjson.JSONDecodeError):
            return ledger
        if isinstance(data, dict) and isinstance(data.get("day"), str):
            # Kept as written; the first query with the current time rolls a stale day.
            ledger.day = data["day"]
            used = data.get("used") or {}
            ledger.used = {str(k): int(v) for k, v in used.items() if isinstance(v, int)}
        return ledger

    def _roll(self, now: float | None) -> None:
        today = _today(now)
        if today != self.day:
            self.day, self.used = today, {}

    def spent(self, route: str, now: float | None = None) -> int:
        with self._lock:
            self._roll(now)
            return self.used.get(route, 0)

    def add(self, route: str, tokens: int, now: float | None = None) -> None:
        with self._lock:
            self._roll(now)
            self.used[route] = self.used.get(route, 0) + tokens
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(self.path, orjson.dumps({"day": self.day, "used": self.used}),
                             Perms())


class ModelRouter:
    """Calls the first route with budget left; falls through on overload and timeouts."""

    def __init__(self, config: ModelsConfig, *, ledger: Ledger | None = None,
                 clock: Any = time.time) -> None:
        self.config = config
        self.ledger = ledger if ledger is not None else Ledger.load(config.ledger)
        self.clock = clock
        self._client: Any = None

    @property
    def available(self) -> bool:
        """Whether calls can be made at all (a key and at least one route)."""
        return bool(self.config.api_key) and bool(self.config.route)

    def remaining(self, route: ModelRoute) -> int:
        return max(0, route.daily_tokens - self.ledger.spent(route.name, self.clock()))

    def _get_client(self) -> Any:
        if self._client is None:
            import anthropic

            key = self.config.api_key.reveal() if self.config.api_key else None
            self._client = anthropic.Anthropic(api_key=key, base_url=self.config.base_url,
                                               timeout=self.config.timeout,
                                               max_retries=self.config.retries)
        return self._client

    def close(self) -> None:
        """Close the HTTP client (its connection pool)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> ModelRouter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def routes(self, names: Sequence[str] | None = None) -> list[ModelRoute]:
        """The configured routes, or those named (in the order given)."""
        if names is None:
            return list(self.config.route)
        by_name = {r.name: r for r in self.config.route}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise ConfigError("models.route", f"no route named {', '.join(missing)}")
        return [by_name[n] for n in names]

    def complete(
        self,
        messages: list[dict[str, Any]],
        *,
        system: str | None = None,
        tools: list[dict[str, Any]] | None = None,
        routes: Sequence[str] | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        """Ask the first route with budget left; return its answer.

        Raises:
            BudgetExhausted: every route's budget is spent for today.
            ModelUnavailable: every route with budget failed (the last reason is given).
            ModelAuthError: the key was refused.
        """
        import anthropic

        candidates = self.routes(routes)
        if not self.config.api_key:
            raise ModelUnavailable("no model API key is configured")
        reasons: list[str] = []
        spent = 0
        for route in candidates:
            if self.remaining(route) <= 0:
                spent += 1
                reasons.append(f"{route.name}: daily budget of {route.daily_tokens} tokens spent")
                continue
            kwargs: dict[str, Any] = {"model": route.model, "messages": messages,
                                      "max_tokens": max_tokens or route.max_tokens}
            if system:
                kwargs["system"] = system
            if tools:
                kwargs["tools"] = tools
            try:
                message = self._get_client().messages.create(**kwargs)
            except anthropic.AuthenticationError as exc:
                raise ModelAuthError(f"the model API refused the key ({exc.status_code})") from exc
            except anthropic.BadRequestError as exc:
                # The request itself is wrong: another model would refuse it too.
                raise ModelUnavailable(f"{route.name}: request refused: {exc.message}") from exc
            except (anthropic.APIStatusError, anthropic.APIConnectionError) as exc:
                kind = type(exc).__name__
                status = getattr(exc, "status_code", None)
                reasons.append(f"{route.name}: {kind}" + (f" {status}" if status else ""))
                continue
            usage = message.usage
            used = int(usage.input_tokens) + int(usage.output_tokens)
            self.ledger.add(route.name, used, self.clock())
            return Completion(route.name, route.model,
                              [block.model_dump() for block in message.content],
                              message.stop_reason, int(usage.input_tokens),
                              int(usage.output_tokens))
        if candidates and spent == len(candidates):
            raise BudgetExhausted("; ".join(reasons))
        raise ModelUnavailable("; ".join(reasons) or "no model routes are configured")
