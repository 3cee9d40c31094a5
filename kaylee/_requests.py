"""How a request names a recipe on the bridge, and how Kaylee's answers look.

A request is a ``request`` message addressed to Kaylee (``to`` = her name;
messages to "any agent" are left to the others). Either form works, and the
metadata wins when both are present:

* metadata: ``{"recipe": "deploy", "params": {"target": "site"}, "dry_run": true}``
  (what agents send: values keep their JSON types);
* content: ``deploy target=site --dry-run`` — the recipe, then ``name=value``
  words (what a person types with ``bridge send``, or on WhatsApp after Kami's
  ``/kaylee``; a colon after the recipe is allowed: ``deploy: target=site``). A
  value cannot contain spaces here: use the metadata for that. Free text ("please
  deploy the site") is refused with the list of recipes: never guessed at.

The metadata keys Kaylee writes on her own messages all start from
``{"kaylee": KIND}`` so other agents can tell them apart (docs/kaylee.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bridge import Message

from ._errors import RequestRefused
from ._params import shown

__all__ = ["Request", "parse_request"]


@dataclass(frozen=True)
class Request:
    """What a request asks for (not yet checked against the recipe's parameters)."""

    recipe: str
    params: dict[str, Any] = field(default_factory=dict)
    dry_run: bool = False
    job: str | None = None


def parse_request(message: Message, known: Mapping[str, object]) -> Request:
    """Read the recipe, parameters and dry-run switch of a request.

    Raises:
        RequestRefused: no recipe named, an unknown one, or unreadable parameters.
    """
    meta = message.metadata or {}
    known_list = ", ".join(sorted(known)) or "nothing (no recipes are configured)"
    job = meta.get("job") if isinstance(meta.get("job"), str) else None
    if "recipe" in meta:
        name = meta["recipe"]
        if not isinstance(name, str) or not name:
            raise RequestRefused(f"metadata.recipe must name a recipe, not {shown(name)}")
        params = meta.get("params", {})
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise RequestRefused(f"metadata.params must be an object of name: value, not "
                                 f"{shown(params)}")
        dry_run = meta.get("dry_run", False)
        if not isinstance(dry_run, bool):
            raise RequestRefused(f"metadata.dry_run must be true or false, not {shown(dry_run)}")
        request = Request(name, dict(params), dry_run, job)
    else:
        words = message.content.split()
        if not words:
            raise RequestRefused(f"an empty request: name a recipe (Kaylee runs: {known_list})")
        recipe = words[0].removesuffix(":")
        _known(recipe, known, known_list)
        params = {}
        dry_run = False
        for word in words[1:]:
            if word in ("--dry-run", "dry-run", "dry_run=true"):
                dry_run = True
                continue
            key, eq, value = word.partition("=")
            if not eq or not key:
                raise RequestRefused(f"cannot read {shown(word, 40)}: parameters are written "
                                     "name=value (use metadata.params for values with spaces)")
            if key in params:
                raise RequestRefused(f"parameter {shown(key, 40)} is given twice")
            params[key] = value
        request = Request(recipe, params, dry_run, job)
    _known(request.recipe, known, known_list)
    return request


def _known(name: str, known: Mapping[str, object], known_list: str) -> None:
    if name not in known:
        raise RequestRefused(f"unknown recipe {shown(name, 40)}; Kaylee runs: {known_list} "
                             "(name one first, then its parameters as name=value)")
