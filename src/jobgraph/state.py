"""Job states and the one table of transitions allowed between them."""

from __future__ import annotations

import enum


class State(enum.Enum):
    """Where a job is in its life within one run."""

    PENDING = "pending"
    READY = "ready"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    UP_TO_DATE = "up_to_date"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"

    @property
    def is_terminal(self) -> bool:
        """True for the states a job ends a run in."""
        return self in TERMINAL

    @property
    def is_success(self) -> bool:
        """True for the states whose result dependents can use."""
        return self in SUCCESS

    def __repr__(self) -> str:
        return f"State.{self.name}"

    # Members are singletons compared by identity; the C-level identity hash keeps the
    # core's set and dict look-ups cheap (Enum's own __hash__ runs Python code).
    __hash__ = object.__hash__


TERMINAL = frozenset(
    {
        State.SUCCEEDED,
        State.UP_TO_DATE,
        State.FAILED,
        State.TIMED_OUT,
        State.CANCELLED,
        State.SKIPPED,
    }
)
SUCCESS = frozenset({State.SUCCEEDED, State.UP_TO_DATE})
FAILURE = frozenset({State.FAILED, State.TIMED_OUT})

_S = State
# Every move a job may make. RUNNING -> PENDING is a retry waiting for its delay;
# RUNNING -> READY a retry with no delay.
TRANSITIONS: dict[State, frozenset[State]] = {
    _S.PENDING: frozenset({_S.READY, _S.SKIPPED, _S.CANCELLED, _S.UP_TO_DATE}),
    _S.READY: frozenset({_S.RUNNING, _S.SKIPPED, _S.CANCELLED, _S.UP_TO_DATE}),
    # RUNNING -> UP_TO_DATE: a cached job whose fingerprint is unchanged ends at dispatch.
    _S.RUNNING: frozenset(
        {_S.SUCCEEDED, _S.UP_TO_DATE, _S.FAILED, _S.TIMED_OUT, _S.CANCELLED, _S.PENDING, _S.READY}
    ),
    _S.SUCCEEDED: frozenset(),
    _S.UP_TO_DATE: frozenset(),
    _S.FAILED: frozenset(),
    _S.TIMED_OUT: frozenset(),
    _S.CANCELLED: frozenset(),
    _S.SKIPPED: frozenset(),
}


class TransitionError(RuntimeError):
    """An internal attempt to move a job between states the table forbids."""


def check_transition(name: str, old: State, new: State) -> None:
    """Raise :class:`TransitionError` unless ``old -> new`` is in the table."""
    if new not in TRANSITIONS[old]:
        raise TransitionError(f"job {name!r}: illegal transition {old.name} -> {new.name}")
