"""Report: what happened in a run, for people (debrief) and machines (JSON, JUnit).

The JSON schema is documented in ``docs/report-schema.md``; keep the two in step.
"""

from __future__ import annotations

import datetime as _dt
import json
import reprlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .state import FAILURE, SUCCESS, State
from .store.base import DONE_STATES, SAME_RESULT

if TYPE_CHECKING:
    from .runner import Runner

SCHEMA_VERSION = 1
_short = reprlib.Repr()
_short.maxstring = 80
_short.maxother = 80
_short.maxlist = _short.maxtuple = _short.maxdict = _short.maxset = 6

EXIT_OK, EXIT_FAILED, EXIT_ABORTED, EXIT_TIMED_OUT, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


@dataclass
class JobRecord:
    """One job's outcome in a run."""

    name: str
    state: State
    requires: list[str]
    attempts: int = 0
    started_at: float | None = None
    ended_at: float | None = None
    error: str | None = None
    returncode: int | None = None
    skipped_because: list[str] = field(default_factory=list)
    result: str | None = None
    note: str | None = None
    forever: bool = False

    @property
    def duration(self) -> float | None:
        """Seconds from the last attempt's start to the end, or None."""
        if self.started_at is None or self.ended_at is None:
            return None
        return max(0.0, self.ended_at - self.started_at)

    @property
    def first_error_line(self) -> str:
        """The final exception's first line (``ValueError: bad row 12``), or ''."""
        return summary_line(self.error)

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data (see docs/report-schema.md)."""
        return {
            "name": self.name,
            "state": self.state.name,
            "requires": list(self.requires),
            "attempts": self.attempts,
            "started_at": iso(self.started_at),
            "ended_at": iso(self.ended_at),
            "duration": self.duration,
            "error": self.error,
            "returncode": self.returncode,
            "skipped_because": list(self.skipped_because),
            "result": self.result,
            "note": self.note,
        }


_CHAINED = (
    "The above exception was the direct cause of the following exception:",
    "During handling of the above exception, another exception occurred:",
)


def summary_line(error: str | None) -> str:
    """The first line of the last exception in a traceback text.

    A traceback ends with the exception block (``Type: message``, possibly more lines of
    message) after its last indented frame line; a text without frames is its own block.
    """
    text = error or ""
    for separator in _CHAINED:
        text = text.rpartition(separator)[2]  # the last exception of a chain
    lines = text.strip().splitlines()
    last_frame = max((k for k, line in enumerate(lines) if line.startswith("  ")), default=-1)
    block = lines[last_frame + 1 :]
    return block[0] if block else (lines[-1] if lines else "")


def _timestamp(text: str | None) -> float | None:
    if not text:
        return None
    return _dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def iso(timestamp: float | None) -> str | None:
    """A timestamp as ISO 8601 in UTC (``2026-11-21T14:03:07.123456Z``), or None."""
    if timestamp is None:
        return None
    moment = _dt.datetime.fromtimestamp(timestamp, _dt.timezone.utc)
    return moment.isoformat().replace("+00:00", "Z")


def _record(runner: Runner, i: int, prefix: str) -> JobRecord:
    job = runner.jobs[i]
    names = runner.core.names
    return JobRecord(
        name=prefix + names[i],
        state=job._state,
        requires=[prefix + names[r] for r in runner.plan.reqs[i]],
        attempts=job._attempts,
        started_at=job._t0,
        ended_at=job._t1,
        error=job._error,
        returncode=job._returncode,
        skipped_because=[prefix + c for c in job._causes],
        result=_short.repr(job._result) if job._state in SUCCESS else None,
        note=job._note,
        forever=job.forever,
    )


def _prefixed(record: JobRecord, prefix: str) -> JobRecord:
    return replace(
        record,
        name=prefix + record.name,
        requires=[prefix + r for r in record.requires],
        skipped_because=[prefix + c for c in record.skipped_because],
    )


def _walk(runner: Runner, only_bad: bool) -> list[JobRecord]:
    """Records in topological order, nested schedulers' jobs after their scheduler.

    With ``only_bad``, just those that make the run not ok, built without the others.
    """
    records: list[JobRecord] = []
    jobs, states = runner.jobs, runner.core.state
    causes = runner.core.causes
    for i in runner.plan.order:
        if not only_bad or _is_bad(states[i], jobs[i].forever, causes[i]):
            records.append(_record(runner, i, ""))
        nested = runner.nested.get(i)
        if nested is not None:
            prefix = runner.core.names[i] + "/"
            inner = nested.bad if only_bad else nested.jobs
            records.extend(_prefixed(r, prefix) for r in inner)
    return records


def _any_bad(runner: Runner, own: Counter[State]) -> bool:
    """Cheap test first: a run where every job succeeded has no bad record to look for.

    ``own`` counts the run's own jobs by state.
    """
    settled = sum(n for state, n in own.items() if state in SUCCESS)
    return settled != len(runner.jobs) or bool(runner.nested)


def _is_bad(state: State, forever: bool, causes: tuple[str, ...]) -> bool:
    """True for an end that makes a run not ok.

    A forever job may end cancelled. A job skipped with no failure behind it (an alert
    with ``run_if="failure"`` on a run where nothing failed) is not a problem either.
    """
    if state in SUCCESS:
        return False
    if state is State.SKIPPED and not causes:
        return False
    return not forever or state in FAILURE


def _counts(runner: Runner, own: Counter[State]) -> Counter[State]:
    """Every job's state counted, nested schedulers' jobs included."""
    counts = own.copy()
    for nested in runner.nested.values():
        counts.update(nested.counts)
    return counts


def _stored_record(end: Any) -> JobRecord:
    result = None
    if end.result == SAME_RESULT:  # an up-to-date job's, made by a run since deleted
        result = "<no longer kept: the run that made it was deleted>"
    elif end.state in DONE_STATES:
        import pickle

        try:  # a result of None is stored as no bytes
            result = _short.repr(pickle.loads(end.result) if end.result is not None else None)
        except Exception:
            result = "<cannot be read back>"
    return JobRecord(
        end.name,
        State[end.state],
        list(end.requires),
        end.attempts,
        end.started_at,
        end.ended_at,
        end.error,
        end.returncode,
        list(end.skipped_because),
        result,
        end.note,
    )


class Report:
    """The outcome of one run: states, times, errors, and why it ended as it did."""

    def __init__(
        self,
        *,
        records: Any,
        counts: Mapping[State, int],
        bad: list[JobRecord],
        started_at: float,
        ended_at: float,
        stop_kind: str | None = None,
        reason: str | None = None,
        run_id: str | None = None,
        abort_cause: str | None = None,
        notes: list[str] | None = None,
    ) -> None:
        self._records = records  # a list, or a callable that builds it on first use
        self._counts = counts
        self.bad = bad  # the records that make the run not ok
        self.started_at_ts = started_at
        self.ended_at_ts = ended_at
        self.stop_kind = stop_kind
        self.reason = reason
        self.run_id = run_id
        self.abort_cause = abort_cause
        self.notes = notes or []  # things worth knowing about the run as a whole

    @classmethod
    def from_run(cls, runner: Runner) -> Report:
        """Build the report of a finished run (job records are built on first use)."""
        own = Counter(runner.core.state)
        return cls(
            records=lambda: _walk(runner, only_bad=False),
            counts=_counts(runner, own),
            bad=_walk(runner, only_bad=True) if _any_bad(runner, own) else [],
            started_at=runner.started_at,
            ended_at=runner.ended_at,
            stop_kind=runner.stop_kind,
            reason=runner.reason,
            abort_cause=runner.core.abort_cause,
            run_id=runner.rec.run_id,
            notes=list(runner.rec.notes) if runner.parent is None else [],
        )

    @classmethod
    def from_store(cls, store: Any, run_id: str) -> Report:
        """Rebuild the report of a recorded run (jobs ordered by when they started)."""
        from .errors import StoreError

        info = store.find_run("", run_id)
        if info is None:
            raise StoreError(f"no run {run_id!r} in the store")
        records = [_stored_record(end) for end in store.job_ends(run_id).values()]
        ended = {r.name for r in records}
        for start in store.job_starts(run_id):
            if start.name not in ended:  # began, never ended: the run died meanwhile
                ended.add(start.name)
                records.append(
                    JobRecord(
                        start.name,
                        State.RUNNING,
                        [],
                        start.attempt,
                        start.started_at,
                        note="no end recorded: the run stopped while it ran",
                    )
                )
        records.sort(key=lambda r: (r.started_at or r.ended_at or 0.0, r.name))
        kind = {2: "critical", 3: "timeout", 130: "interrupted"}.get(info.exit_code or 0)
        counts = Counter(r.state for r in records)
        bad = [r for r in records if _is_bad(r.state, r.forever, tuple(r.skipped_because))]
        report = cls(
            records=records,
            counts=counts,
            bad=bad,
            started_at=info.started_at,
            ended_at=info.ended_at or info.started_at,
            stop_kind=kind,
            reason=info.why if kind else None,
            run_id=run_id,
        )
        if info.ended_at is None:
            report.notes.append("the run has no recorded end: it is running, or it died")
        return report

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        """Rebuild a report from :meth:`to_dict` data (e.g. sent by a server)."""
        records = [
            JobRecord(
                name=j["name"],
                state=State[j["state"]],
                requires=list(j.get("requires") or []),
                attempts=j.get("attempts") or 0,
                started_at=_timestamp(j.get("started_at")),
                ended_at=_timestamp(j.get("ended_at")),
                error=j.get("error"),
                returncode=j.get("returncode"),
                skipped_because=list(j.get("skipped_because") or []),
                result=j.get("result"),
                note=j.get("note"),
            )
            for j in data.get("jobs") or []
        ]
        kind = {2: "critical", 3: "timeout", 130: "interrupted"}.get(data.get("exit_code") or 0)
        started = _timestamp(data.get("started_at")) or 0.0
        return cls(
            records=records,
            counts=Counter(r.state for r in records),
            bad=[r for r in records if _is_bad(r.state, r.forever, tuple(r.skipped_because))],
            started_at=started,
            ended_at=_timestamp(data.get("ended_at")) or started,
            stop_kind=kind,
            reason=data.get("why") if kind else None,
            run_id=data.get("run_id"),
            notes=list(data.get("notes") or []),
        )

    # -- the outcome ----------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        """A pickled report (a nested run's result, kept in a store) holds its records."""
        state = self.__dict__.copy()
        state["_records"] = self.jobs  # built now: a run's are built on first use
        return state

    @property
    def jobs(self) -> list[JobRecord]:
        """One record per job, in topological order (nested jobs after their scheduler)."""
        if callable(self._records):
            self._records = self._records()
        return self._records  # type: ignore[no-any-return]

    @property
    def counts(self) -> dict[State, int]:
        """How many jobs ended in each state (states with no job are left out)."""
        found = self._counts
        return {state: found[state] for state in State if found.get(state)}

    @property
    def started_at(self) -> _dt.datetime:
        """When the run started (UTC)."""
        return _dt.datetime.fromtimestamp(self.started_at_ts, _dt.timezone.utc)

    @property
    def ended_at(self) -> _dt.datetime:
        """When the run ended (UTC)."""
        return _dt.datetime.fromtimestamp(self.ended_at_ts, _dt.timezone.utc)

    @property
    def elapsed(self) -> float:
        """Seconds from start to end."""
        return max(0.0, self.ended_at_ts - self.started_at_ts)

    @property
    def ok(self) -> bool:
        """Every job succeeded or was up to date (forever jobs aside) and no timeout."""
        return self.stop_kind is None and not self.bad

    @property
    def exit_code(self) -> int:
        """0 ok, 1 a job failed or was skipped, 2 aborted, 3 timed out, 130 interrupted."""
        kind = self.stop_kind
        if kind == "interrupted" or kind == "cancelled":
            return EXIT_INTERRUPTED
        if kind == "timeout":
            return EXIT_TIMED_OUT
        if kind == "critical":
            return EXIT_ABORTED
        return EXIT_FAILED if self.bad else EXIT_OK

    def why(self) -> str:
        """One line on why the run ended as it did (``ok`` when it did not fail)."""
        if self.stop_kind == "critical":
            culprit = self._record(self.abort_cause)
            detail = f": {culprit.first_error_line}" if culprit and culprit.error else ""
            return f"{self.reason}{detail}"
        if self.stop_kind is not None:
            return self.reason or self.stop_kind
        failed = _root_failures([r for r in self.bad if r.state in FAILURE])
        if len(failed) == 1:
            return _one_failure(failed[0])
        if failed:
            return f"{len(failed)} jobs failed: {_names(failed)}"
        bad = self.bad
        if bad:
            state = bad[0].state.name.lower().replace("_", " ")
            return f"{len(bad)} job{'s' if len(bad) > 1 else ''} {state}: {_names(bad)}"
        return "ok"

    def _record(self, name: str | None) -> JobRecord | None:
        return next((r for r in self.bad if r.name == name), None)

    # -- exports --------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (schema: docs/report-schema.md)."""
        return {
            "schema": SCHEMA_VERSION,
            "run_id": self.run_id,
            "started_at": iso(self.started_at_ts),
            "ended_at": iso(self.ended_at_ts),
            "elapsed": self.elapsed,
            "ok": self.ok,
            "exit_code": self.exit_code,
            "why": self.why(),
            "counts": {state.name: n for state, n in self.counts.items()},
            "notes": list(self.notes),
            "instances": self.instances,
            "jobs": [record.to_dict() for record in self.jobs],
        }

    def to_json(self, path: str | Path | None = None) -> str:
        """The report as JSON text; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    def to_junit(self, path: str | Path | None = None) -> str:
        """JUnit XML, one test case per job; also written to ``path`` when given."""
        from .render.junit import to_junit

        text = to_junit(self)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    @property
    def instances(self) -> dict[str, dict[str, str]]:
        """Jobs of instance ranges (``render[3]``) grouped: ``{"render": {"FAILED": "2"}}``."""
        from .instances import group

        return group(self.jobs)

    def debrief(self) -> str:
        """Text: every job with its state and duration, then each failure's traceback."""
        from .render.text import debrief

        return debrief(self)

    def critical_path(self) -> list[tuple[str, float]]:
        """The chain of jobs that set the run's length, first to last, with durations."""
        from .render.text import critical_path

        return critical_path(self)

    def __repr__(self) -> str:
        # Cheap on purpose: asyncio formats the repr of a task's result in places.
        total = sum(self._counts.values())
        return f"<Report {self.why()!r} exit_code={self.exit_code} jobs={total}>"


def _root_failures(failed: list[JobRecord]) -> list[JobRecord]:
    """Leave out nested schedulers that failed only because jobs inside them failed."""
    parents: set[str] = set()
    for record in failed:
        parts = record.name.split("/")
        parents.update("/".join(parts[:k]) for k in range(1, len(parts)))
    return [r for r in failed if r.name not in parents]


def _one_failure(record: JobRecord) -> str:
    if record.state is State.TIMED_OUT:
        line = record.first_error_line
        return line.split(": ", 1)[1] if ": " in line else f"job {record.name!r} timed out"
    return f"job {record.name!r} failed: {record.first_error_line}"


def _names(records: list[JobRecord], most: int = 5) -> str:
    names = [r.name for r in records[:most]]
    more = f" and {len(records) - most} more" if len(records) > most else ""
    return ", ".join(names) + more
