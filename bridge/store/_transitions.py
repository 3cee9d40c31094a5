"""The state machine of a message: which changes an agent may make, and when.

Every backend asks these before it appends a status record, under whatever
makes its check-then-append atomic (the local bridge's lock, a server's, a
transaction), so the rules are written once.
"""

from __future__ import annotations

from .._errors import InvalidInput, StateConflict
from ..format import TERMINAL_STATUSES, format_ts
from ._fold import MessageState

__all__ = ["check_claim", "check_lease", "check_open", "check_release", "check_terminal_status"]


def check_open(state: MessageState, who: str, now: float, *, force: bool = False) -> None:
    """``who`` may change ``state``: it is not final, and not leased to another agent
    (``force`` overrides the lease). Raises StateConflict."""
    if state.terminal:
        raise StateConflict(f"{state.id} is already {state.status}")
    if (not force and state.status == "claimed" and not state.lease_expired(now)
            and state.claimed_by != who):
        raise StateConflict(
            f"{state.id} is claimed by {state.claimed_by} until "
            f"{format_ts(state.lease_until or now)} (use force to override)"
        )


def check_terminal_status(status: str) -> None:
    """``set_status`` takes only the final statuses. Raises InvalidInput."""
    if status not in TERMINAL_STATUSES:
        raise InvalidInput(
            f"status must be one of {', '.join(sorted(TERMINAL_STATUSES))} "
            "(use claim/release for the others)"
        )


def check_lease(lease: float) -> None:
    """A claim's lease is a positive number of seconds. Raises InvalidInput."""
    if lease <= 0:
        raise InvalidInput("lease must be positive")


def check_claim(state: MessageState, now: float) -> None:
    """An open message (see :func:`check_open`) can be claimed unless it expired."""
    if state.effective_status(now) == "expired":
        raise StateConflict(f"{state.id} expired at {format_ts(state.expires or now)}")


def check_release(state: MessageState) -> None:
    """Only a claimed message can be handed back. Raises StateConflict."""
    if state.status != "claimed":
        raise StateConflict(f"{state.id} is not claimed")
