"""A store that keeps everything in this process (the library's default)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace

from .base import (
    NO_GENERATION,
    Generation,
    GraphSnapshot,
    JobEnd,
    JobStart,
    RunInfo,
    RunLockedError,
    Store,
    Success,
)
from .journal import check_lease, lease_live, new_successes, run_gone


class MemoryStore(Store):
    """Runs and results live as long as the object; nothing touches the disk."""

    def __init__(self) -> None:
        self._runs: dict[str, RunInfo] = {}
        self._ends: dict[str, dict[str, JobEnd]] = {}
        self._starts: dict[str, list[JobStart]] = {}
        self._success: dict[tuple[str, str], Success] = {}
        self._output: dict[tuple[str, str, str], list[str]] = {}
        self._leases: dict[str, tuple[str, float]] = {}
        self._generations: dict[str, Generation] = {}  # writes of successes, by scheduler
        self._snapshots: dict[tuple[str, str], GraphSnapshot] = {}  # by scheduler and graph

    def create_run(self, info: RunInfo) -> None:
        self._runs[info.run_id] = replace(info)
        self._ends[info.run_id] = {}
        self._starts[info.run_id] = []

    def find_run(self, scheduler: str, run_id: str) -> RunInfo | None:
        if run_id == "last":
            mine = [r for r in self._runs.values() if r.scheduler == scheduler]
            return self._copy(mine[-1]) if mine else None
        found = self._runs.get(run_id)
        return self._copy(found) if found else None

    def _copy(self, info: RunInfo) -> RunInfo:
        owner, until = self._leases.get(info.run_id, (None, None))
        return replace(info, owner=owner, lease_until=until)

    def finish_run(self, run_id: str, ended_at: float, exit_code: int, why: str) -> None:
        run = self._runs.get(run_id)
        if run is not None:  # (a run deleted meanwhile has no end to keep, as in SQL)
            run.ended_at, run.exit_code, run.why = ended_at, exit_code, why

    def success_generation(self, scheduler: str) -> Generation | None:
        return self._generations.get(scheduler, NO_GENERATION)

    def keep_graph_snapshot(
        self, scheduler: str, graph_digest: str, snapshot: GraphSnapshot, run_id: str, owner: str
    ) -> None:
        held = run_id in self._runs and self._leases.get(run_id, (None,))[0] == owner
        if held and snapshot.generation == self.success_generation(scheduler):
            self._snapshots[(scheduler, graph_digest)] = snapshot

    def graph_snapshot(self, scheduler: str, graph_digest: str) -> GraphSnapshot | None:
        found = self._snapshots.get((scheduler, graph_digest))
        if found is None or found.generation != self.success_generation(scheduler):
            return None
        return found

    def runs(self, limit: int = 50) -> list[RunInfo]:
        return [self._copy(r) for r in reversed(list(self._runs.values()))][:limit]

    def delete_runs(self, run_ids: Sequence[str], now: float) -> list[str]:
        gone = [r for r in run_ids if r in self._runs and not self._live(r, now)]
        for run_id in gone:
            for table in (self._runs, self._ends, self._starts, self._leases):
                table.pop(run_id, None)
        if gone:
            dropped = set(gone)
            self._output = {k: v for k, v in self._output.items() if k[0] not in dropped}
        return gone

    def _live(self, run_id: str, now: float) -> bool:
        holder, until = self._leases.get(run_id, (None, None))
        return lease_live(holder, until, now)

    def acquire(
        self, run_id: str, owner: str, ttl: float, now: float, takeover: str | None = None
    ) -> None:
        holder, until = self._leases.get(run_id, (None, None))
        check_lease(run_id, holder, until, owner, takeover, now)
        self._leases[run_id] = (owner, now + ttl)
        run = self._runs.get(run_id)
        if run is not None:  # held again (a resume): running, its old end no longer holds
            run.ended_at = run.exit_code = run.why = None

    def renew(self, run_id: str, owner: str, ttl: float, now: float) -> None:
        if run_id not in self._runs:
            raise run_gone(run_id)
        held = self._leases.get(run_id)
        if held is not None and held[0] != owner:
            raise RunLockedError(f"run {run_id}: the lease was lost to {held[0]}", held[0])
        self._leases[run_id] = (owner, now + ttl)

    def release(self, run_id: str, owner: str) -> None:
        held = self._leases.get(run_id)
        if held is not None and held[0] == owner:
            del self._leases[run_id]

    def record(
        self, run_id: str, starts: Sequence[JobStart], ends: Sequence[JobEnd]
    ) -> Generation | None:
        if run_id not in self._runs:
            raise run_gone(run_id)
        self._starts[run_id].extend(starts)
        table = self._ends[run_id]
        scheduler = self._runs[run_id].scheduler
        for end in ends:
            table[end.name] = end
        wins = new_successes(ends, run_id)
        if not wins:
            return None
        for name, fingerprint, result, parts, source, stamp in wins:
            self._success[(scheduler, name)] = Success(fingerprint, result, parts, stamp, source)
        return self._next_generation(scheduler)

    def _next_generation(self, scheduler: str) -> Generation:
        """One more write of the scheduler's successes: its graph snapshots no longer hold."""
        writes = self._generations.get(scheduler, NO_GENERATION).writes + 1
        generation = self._generations[scheduler] = Generation(writes, os.urandom(8).hex())
        for key in [key for key in self._snapshots if key[0] == scheduler]:
            del self._snapshots[key]
        return generation

    def job_starts(self, run_id: str) -> list[JobStart]:
        return list(self._starts.get(run_id, ()))

    def recorded_ends(self, run_id: str) -> dict[str, JobEnd]:
        return dict(self._ends.get(run_id, {}))

    def successes(self, scheduler: str) -> dict[str, Success]:
        return {name: s for (owner, name), s in self._success.items() if owner == scheduler}

    def last_success(self, scheduler: str, name: str) -> Success | None:
        return self._success.get((scheduler, name))

    def append_output(self, run_id: str, name: str, stream: str, text: str) -> None:
        if run_id not in self._runs:
            raise run_gone(run_id)
        self._output.setdefault((run_id, name, stream), []).append(text)

    def output(self, run_id: str, name: str, stream: str) -> str:
        return "".join(self._output.get((run_id, name, stream), ()))
