"""One palette for every rendering, so a state looks the same everywhere."""

from __future__ import annotations

from ..state import State

FILL: dict[State, str] = {
    State.PENDING: "#ffffff",
    State.READY: "#e8f0fe",
    State.RUNNING: "#fff3bf",
    State.SUCCEEDED: "#d3f9d8",
    State.UP_TO_DATE: "#e6fcf5",
    State.FAILED: "#ffc9c9",
    State.TIMED_OUT: "#ffd8a8",
    State.CANCELLED: "#e9ecef",
    State.SKIPPED: "#f1f3f5",
}
