"""Kaylee's exceptions, under the toolkit's one tree (``bridge.BridgeError``).

::

    BridgeError
    └── KayleeError                           exit 1
        ├── RequestRefused (InvalidInput)     exit 5   unknown recipe, bad parameter: never run
        └── RecipeFailed                               a recipe ran and failed; ``retryable`` says
                                                       whether another attempt may succeed

    Interrupted (outside the tree)            control flow: Kaylee is stopping; the task is
                                                       handed back or failed as interrupted
"""

from __future__ import annotations

from pathlib import Path

from bridge import BridgeError, InvalidInput

__all__ = ["Interrupted", "KayleeError", "RecipeFailed", "RequestRefused"]


class KayleeError(BridgeError):
    """Root of Kaylee's own errors."""


class RequestRefused(KayleeError, InvalidInput):
    """A request that will not be run as given: the message says why (never approximated)."""

    exit_code = 5


class RecipeFailed(KayleeError):
    """A recipe ran and did not succeed.

    Args:
        reason: one line for the requester and the owner.
        retryable: another attempt later may succeed (a network error, an overloaded
            model); Kaylee retries with backoff up to the recipe's limit.
        output: what the failing command printed (capped), shown with the reason.
        output_file: where its whole output is, when it was longer than the cap.
    """

    def __init__(self, reason: str, *, retryable: bool = False, output: str | None = None,
                 output_file: Path | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.output = output
        self.output_file = output_file


class Interrupted(Exception):  # a signal, not an error: outside the tree
    """Kaylee was asked to stop while a task ran (raised at a step boundary)."""

    def __init__(self, step: str) -> None:
        super().__init__(f"interrupted at {step}")
        self.step = step
