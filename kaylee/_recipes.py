"""The recipes Kaylee runs: the configured commands and the built-ins that have what they need."""

from __future__ import annotations

from ._config import KayleeConfig
from ._deploy import DeployRecipe
from ._ops import HealthSweepRecipe, ReportRecipe, RotateRecipe
from ._recipe import CommandRecipe, Recipe
from ._review import CodeReviewRecipe

__all__ = ["build_recipes"]


def build_recipes(config: KayleeConfig) -> dict[str, Recipe]:
    """Name → recipe. ``deploy`` needs a ``[[deploy.target]]``, ``code-review`` a
    ``[[code_review.repo]]`` and ``health-sweep`` a ``[[peers.peer]]``; without them they are
    not offered (a request for one is refused as unknown, naming what Kaylee runs)."""
    recipes: dict[str, Recipe] = {
        "rotate": RotateRecipe(config.rotate),
        "report": ReportRecipe(config.report),
    }
    if config.peers.peer:
        recipes["health-sweep"] = HealthSweepRecipe(config.health_sweep)
    if config.deploy.target:
        recipes["deploy"] = DeployRecipe(config.deploy)
    if config.code_review.repo:
        recipes["code-review"] = CodeReviewRecipe(config.code_review)
    for i, rc in enumerate(config.recipe):
        recipes[rc.name] = CommandRecipe(rc, rc.check(f"recipe[{i}]"))
    return recipes
