"""Declared recipe parameters: types, allowed values, and how values enter an argv.

Message text is data, never a command line. A request's parameters are checked
against the recipe's declarations — unknown names, wrong types, values outside
``choices`` or not matching ``pattern`` are refused with the reason — and a
value reaches a command only by replacing a ``{name}`` placeholder inside one
argv element (or one environment value) of the recipe's own template. A value
is never split, never passed through a shell, and never becomes a second
argument: ``; rm -rf /`` stays the single argument ``; rm -rf /``.

Text values are also refused when they contain control characters, exceed
``max_length`` (200 by default), or start with ``-`` (so a value cannot turn
into an option of the command; ``allow_dash = true`` permits it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bridge import ConfigError

from ._errors import RequestRefused

__all__ = ["ParamSpec", "Template", "validate_params"]

TYPES = ("str", "int", "bool")
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}|[{}]")


def shown(value: Any, limit: int = 60) -> str:
    """A value quoted for an error message, shortened."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter."""

    name: str
    type: str = "str"
    required: bool = False
    default: Any = None
    choices: tuple[Any, ...] | None = None  # in TOML: a list
    pattern: str | None = None
    min: int | None = None
    max: int | None = None
    max_length: int = 200
    allow_dash: bool = False
    description: str = ""

    def check_declaration(self, key: str) -> None:
        """Raise ConfigError for a declaration that cannot work."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", self.name):
            raise ConfigError(f"{key}.name", f"{self.name!r} is not a parameter name "
                                             "(lower-case letters, digits and _)")
        if self.type not in TYPES:
            raise ConfigError(f"{key}.type", f"must be one of {', '.join(TYPES)}, "
                                             f"not {self.type!r}")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ConfigError(f"{key}.pattern", f"not a regular expression: {exc}") from None
        if self.choices is not None:
            for value in self.choices:
                try:
                    self.convert(value)
                except RequestRefused as exc:
                    raise ConfigError(f"{key}.choices", str(exc)) from None
        if self.default is not None:
            try:
                self.convert(self.default)
            except RequestRefused as exc:
                raise ConfigError(f"{key}.default", str(exc)) from None

    def convert(self, value: Any) -> str | int | bool:
        """The checked value (raises RequestRefused saying why it is not acceptable)."""
        what = f"parameter {self.name!r}"
        if self.type == "int":
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise RequestRefused(f"{what} must be a whole number, not {shown(value)}")
            if isinstance(value, str):
                if not re.fullmatch(r"-?[0-9]{1,18}", value.strip()):
                    raise RequestRefused(f"{what} must be a whole number, not {shown(value)}")
                value = int(value.strip())
            if self.min is not None and value < self.min:
                raise RequestRefused(f"{what} must be at least {self.min}, not {value}")
            if self.max is not None and value > self.max:
                raise RequestRefused(f"{what} must be at most {self.max}, not {value}")
            number: int = value
            return self._in_choices(number)
        if self.type == "bool":
            if isinstance(value, bool):
                return self._in_choices(value)
            if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
                return self._in_choices(value.strip().lower() in _TRUE)
            raise RequestRefused(f"{what} must be true or false, not {shown(value)}")
        if not isinstance(value, str):
            raise RequestRefused(f"{what} must be text, not {shown(value)}")
        if _CONTROL.search(value):
            raise RequestRefused(f"{what} must not contain control characters (newlines, tabs, "
                                 "NUL...)")
        if len(value) > self.max_length:
            raise RequestRefused(f"{what} is {len(value)} characters long; at most "
                                 f"{self.max_length} are allowed")
        if value.startswith("-") and not self.allow_dash:
            raise RequestRefused(f"{what} must not start with '-' (it could be read as an "
                                 f"option): {shown(value)}")
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise RequestRefused(f"{what}: {shown(value)} does not match {self.pattern}")
        return self._in_choices(value)

    def _in_choices(self, value: str | int | bool) -> str | int | bool:
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(str(c) for c in self.choices)
            raise RequestRefused(f"parameter {self.name!r} must be one of {allowed}, "
                                 f"not {shown(value)}")
        return value


def one_of(name: str, names: Sequence[str], description: str) -> ParamSpec:
    """A parameter choosing one configured item (a deploy target, a repository); optional
    when only one is configured."""
    return ParamSpec(name, required=len(names) != 1, default=names[0] if len(names) == 1 else None,
                     choices=tuple(names), description=description)


def validate_params(specs: Sequence[ParamSpec], given: Mapping[str, Any]
                    ) -> dict[str, str | int | bool]:
    """The request's parameters checked against the declarations, defaults filled in.

    Raises:
        RequestRefused: an unknown name, a missing required one, or a bad value.
    """
    by_name = {s.name: s for s in specs}
    unknown = sorted(set(given) - set(by_name))
    if unknown:
        known = ", ".join(by_name) or "none"
        raise RequestRefused(f"unknown parameter{'s' if len(unknown) > 1 else ''} "
                             f"{', '.join(shown(u, 40) for u in unknown)} (this recipe takes: "
                             f"{known})")
    out: dict[str, str | int | bool] = {}
    for spec in specs:
        if spec.name in given and given[spec.name] is not None:
            out[spec.name] = spec.convert(given[spec.name])
        elif spec.default is not None:
            out[spec.name] = spec.convert(spec.default)
        elif spec.required:
            raise RequestRefused(f"parameter {spec.name!r} is required"
                                 + (f" ({spec.description})" if spec.description else ""))
    return out


def render_value(value: str | int | bool) -> str:
    """How a checked value is written into an argv element or an environment value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class Template:
    """One argv element or environment value with ``{name}`` placeholders (``{{`` is ``{``)."""

    text: str

    def names(self) -> set[str]:
        """The placeholders it uses (raises ConfigError for a stray brace)."""
        out: set[str] = set()
        for match in _PLACEHOLDER.finditer(self.text):
            token = match.group(0)
            if token in ("{{", "}}"):
                continue
            if match.group(1) is None:
                raise ConfigError("recipe", f"{self.text!r}: a lone {token!r} (write {token * 2} "
                                            "for the character, {name} for a parameter)")
            out.add(match.group(1))
        return out

    def render(self, values: Mapping[str, str | int | bool]) -> str | None:
        """The text with each placeholder replaced; None when a placeholder has no value
        (an optional parameter that was not given: the whole element is left out)."""
        missing = False

        def sub(match: re.Match[str]) -> str:
            nonlocal missing
            text = match.group(0)
            if text in ("{{", "}}"):
                return text[0]
            name = match.group(1)
            if name not in values:
                missing = True
                return ""
            return render_value(values[name])

        result = _PLACEHOLDER.sub(sub, self.text)
        return None if missing else result


def render_argv(argv: Sequence[str], values: Mapping[str, str | int | bool]) -> list[str]:
    """The argv with placeholders filled; elements naming an absent optional value dropped."""
    out = []
    for element in argv:
        rendered = Template(element).render(values)
        if rendered is not None:
            out.append(rendered)
    return out
