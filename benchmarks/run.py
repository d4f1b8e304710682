"""Benchmark jobgraph against a plain-asyncio floor, asynciojobs and dask on no-op DAGs.

Run ``python benchmarks/run.py --help``. Each measurement runs in a fresh child process
(``run.py --case peer,kind,shape,N``) that prints one JSON line; the parent repeats each
case, takes medians and prints a table. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from peers import IMPORTS, PEERS, NotApplicable, applicable, calls_so_far
from shapes import LAYER_WIDTH, SEED, SHAPES, make_dag

DEFAULT_SIZES = (1_000, 10_000, 100_000)
FULL_SIZES = (1_000, 10_000, 100_000, 1_000_000)
DEFAULT_PEERS = ("jobgraph", "floor", "asynciojobs", "dask")

CAPS: dict[str, int] = {
    "asynciojobs": 10_000,
    "dask": 100_000,
    "dask/layered": 10_000,
}
"""Largest N run by default, per ``peer`` or ``peer/shape`` (others: no cap).

asynciojobs grows faster than linearly (17-30 s for one 100,000-job ``func`` chain) and
would take half the default run's budget; dask's graph ordering blows up on the layered DAG
(100,000 jobs: 145 s and 17 GB). Measured on 2 cores, 2026-11-21.
"""

FULL_CAPS: dict[str, int] = {**CAPS, "asynciojobs": 100_000}
"""Caps of ``--full``: every peer at each size where one run stays under about a minute."""

MB = 1024.0  # ru_maxrss is in KiB on Linux


@dataclass(frozen=True)
class Case:
    """One measurement: a peer running an N-job DAG of one shape and kind."""

    peer: str
    kind: str
    shape: str
    n: int

    @property
    def spec(self) -> str:
        """Return the ``--case`` argument that names this case."""
        return f"{self.peer},{self.kind},{self.shape},{self.n}"

    @classmethod
    def parse(cls, spec: str) -> Case:
        """Parse ``peer,kind,shape,N``."""
        try:
            peer, kind, shape, n = spec.split(",")
            return cls(peer, kind, shape, int(n))
        except ValueError:
            raise ValueError(f"--case wants peer,kind,shape,N; got {spec!r}") from None


@dataclass
class Outcome:
    """What one child process reported (or what happened to it)."""

    status: str  # ok, failed, error, timeout, n/a
    build_s: float = 0.0
    run_s: float = 0.0
    total_s: float = 0.0
    peak_mb: float = 0.0
    base_mb: float = 0.0
    detail: str = ""


@dataclass
class CaseResult:
    """All the repeats of one case and their medians."""

    case: Case
    runs: list[Outcome] = field(default_factory=list)

    @property
    def status(self) -> str:
        """Return ``ok`` when every repeat succeeded, else the first bad status."""
        bad = [run.status for run in self.runs if run.status != "ok"]
        return bad[0] if bad else "ok"

    def median(self, attribute: str) -> float:
        """Return the median of a numeric attribute over the successful repeats."""
        values = [getattr(run, attribute) for run in self.runs if run.status == "ok"]
        return statistics.median(values) if values else float("nan")

    def us_per_job(self) -> float:
        """Return the median total time per job, in microseconds."""
        return self.median("total_s") / self.case.n * 1e6


# -- child side -----------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """Return this process's peak resident set size so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / MB


def measure(case: Case) -> Outcome:
    """Build and run one case in this process; time build and run apart."""
    if case.peer not in PEERS:
        raise ValueError(f"unknown peer {case.peer!r}; choose from {', '.join(PEERS)}")
    for module in IMPORTS[case.peer]:
        importlib.import_module(module)
    dag = make_dag(case.shape, case.n)
    gc.collect()
    base_mb = peak_rss_mb()
    start = time.perf_counter()
    runner = PEERS[case.peer](dag, case.kind)
    built = time.perf_counter()
    peer_ok = runner()
    ended = time.perf_counter()
    calls = calls_so_far()
    ok = peer_ok and calls == case.n
    detail = "" if ok else f"peer reported ok={peer_ok}, {calls} of {case.n} jobs ran"
    return Outcome(
        status="ok" if ok else "failed",
        build_s=built - start,
        run_s=ended - built,
        total_s=ended - start,
        peak_mb=peak_rss_mb(),
        base_mb=base_mb,
        detail=detail,
    )


def child_main(spec: str) -> int:
    """Measure the case named by ``spec`` and print its outcome as one JSON line."""
    case = Case.parse(spec)
    try:
        outcome = measure(case)
    except NotApplicable as exc:
        outcome = Outcome(status="n/a", detail=str(exc))
    except Exception as exc:
        outcome = Outcome(status="error", detail=f"{type(exc).__name__}: {exc}")
    print(json.dumps({"case": asdict(case), "us_per_job": _us(outcome, case), **asdict(outcome)}))
    return 0 if outcome.status in ("ok", "n/a") else 1


def _us(outcome: Outcome, case: Case) -> float:
    """Return microseconds per job of one outcome (total time)."""
    return outcome.total_s / case.n * 1e6


# -- parent side ----------------------------------------------------------------------------


def spawn(case: Case, timeout: float) -> Outcome:
    """Run one case in a fresh Python process, with a time limit."""
    command = [sys.executable, str(Path(__file__).resolve()), "--case", case.spec]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # its own process group: a timeout kills its helpers too
    ) as child:
        try:
            stdout, stderr = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            return Outcome(status="timeout", detail=f"no result within {timeout:g} s")
    return _parse_child(stdout, stderr, child.returncode)


def _parse_child(stdout: str, stderr: str, returncode: int) -> Outcome:
    """Read the child's last JSON line; a crash without one is an error with stderr's end."""
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            data = json.loads(line)
            fields = {key: data[key] for key in Outcome.__dataclass_fields__}
            return Outcome(**fields)
    tail = " | ".join(stderr.strip().splitlines()[-3:])
    return Outcome(status="error", detail=f"exit {returncode}: {tail}")


def cap_for(peer: str, shape: str, caps: dict[str, int]) -> int | None:
    """Return the largest N to run for this peer and shape, or ``None`` for no limit."""
    return caps.get(f"{peer}/{shape}", caps.get(peer))


def active_caps(args: argparse.Namespace) -> dict[str, int]:
    """Return the caps in force: none with ``--no-caps``, else those of the mode."""
    if args.no_caps:
        return {}
    return FULL_CAPS if args.full else CAPS


def plan(args: argparse.Namespace) -> Iterator[Case]:
    """Yield the cases to run, by shape, size, kind, then peer (jobgraph and floor first)."""
    for shape in args.shapes:
        for n in args.sizes:
            for kind in args.kinds:
                for peer in args.peers:
                    cap = cap_for(peer, shape, active_caps(args))
                    if applicable(peer, kind) and (cap is None or n <= cap):
                        yield Case(peer, kind, shape, n)


def run_all(cases: Sequence[Case], repeat: int, timeout: float) -> list[CaseResult]:
    """Run every case ``repeat`` times; after a timeout, skip that line's larger sizes.

    The peers of one shape, size and kind take turns (A B A B ...), so that a machine
    that slows down or speeds up meanwhile moves all of them alike and their ratios hold.
    """
    results: list[CaseResult] = []
    timed_out: set[tuple[str, str, str]] = set()
    done = 0
    for group in _groups(cases):
        live: list[CaseResult] = []
        for case in group:
            if (case.peer, case.kind, case.shape) in timed_out:
                done += 1
                _progress(f"[{done}/{len(cases)}] {case.spec}: skipped (timed out at a smaller N)")
            else:
                live.append(CaseResult(case))
        for _ in range(repeat):
            for result in live:
                if not result.runs or result.runs[-1].status == "ok":
                    result.runs.append(spawn(result.case, timeout))
        for result in live:
            if result.status == "timeout":
                timed_out.add((result.case.peer, result.case.kind, result.case.shape))
            done += 1
            _progress(f"[{done}/{len(cases)}] {result.case.spec}: {_summary(result)}")
            results.append(result)
    return results


def _groups(cases: Sequence[Case]) -> Iterator[list[Case]]:
    """Consecutive cases of one shape, size and kind (the peers to compare)."""
    group: list[Case] = []
    for case in cases:
        if group and (case.shape, case.n, case.kind) != (group[0].shape, group[0].n, group[0].kind):
            yield group
            group = []
        group.append(case)
    if group:
        yield group


def _summary(result: CaseResult) -> str:
    """Return a one-line progress summary of a case."""
    if result.status != "ok":
        return f"{result.status} {result.runs[-1].detail}".strip()
    return f"{result.median('total_s'):.3f} s, {result.us_per_job():.1f} us/job"


def _progress(message: str) -> None:
    """Print a progress line on stderr (the table goes to stdout)."""
    print(message, file=sys.stderr, flush=True)


# -- report ---------------------------------------------------------------------------------

COLUMNS = (
    "shape",
    "N",
    "kind",
    "peer",
    "build s",
    "run s",
    "total s",
    "µs/job",
    "peak MB",
    "ratio",
)


def _reference(results: Iterable[CaseResult]) -> dict[tuple[str, str, str, int], float]:
    """Map (peer, kind, shape, N) to the median total time of each successful case."""
    return {
        (r.case.peer, r.case.kind, r.case.shape, r.case.n): r.median("total_s")
        for r in results
        if r.status == "ok"
    }


def ratio_text(result: CaseResult, totals: dict[tuple[str, str, str, int], float]) -> str:
    """Return a peer's time over jobgraph's, or, for jobgraph, its time over the floor's."""
    case = result.case
    if result.status != "ok":
        return ""
    mine = result.median("total_s")
    base_peer = "floor" if case.peer == "jobgraph" else "jobgraph"
    base = totals.get((base_peer, case.kind, case.shape, case.n))
    if base is None or base <= 0:
        return ""
    label = "jg/floor" if case.peer == "jobgraph" else f"{case.peer}/jg"
    return f"{label} {mine / base:.2f}"


def table_rows(results: Sequence[CaseResult]) -> list[list[str]]:
    """Return the table's cells, one list per case."""
    totals = _reference(results)
    rows = []
    for result in results:
        case = result.case
        head = [case.shape, f"{case.n:,}", case.kind, case.peer]
        if result.status != "ok":
            rows.append([*head, result.status, "", "", "", "", ""])
            continue
        rows.append(
            [
                *head,
                f"{result.median('build_s'):.3f}",
                f"{result.median('run_s'):.3f}",
                f"{result.median('total_s'):.3f}",
                f"{result.us_per_job():.2f}",
                f"{result.median('peak_mb'):.0f}",
                ratio_text(result, totals),
            ]
        )
    return rows


def pivot_rows(results: Sequence[CaseResult], peers: Sequence[str]) -> list[list[str]]:
    """Return one row per (shape, N, kind): each peer's µs/job, or its status."""
    cells: dict[tuple[str, int, str], dict[str, str]] = {}
    for result in results:
        case = result.case
        text = f"{result.us_per_job():.1f}" if result.status == "ok" else result.status
        cells.setdefault((case.shape, case.n, case.kind), {})[case.peer] = text
    return [
        [shape, f"{n:,}", kind, *(by_peer.get(peer, "-") for peer in peers)]
        for (shape, n, kind), by_peer in cells.items()
    ]


def format_table(
    rows: Sequence[Sequence[str]],
    columns: Sequence[str] = COLUMNS,
    numeric: frozenset[int] = frozenset({1, 4, 5, 6, 7, 8, 9}),
) -> str:
    """Format rows as an aligned Markdown table; ``numeric`` columns are right-aligned."""
    widths = [max(len(cell) for cell in column) for column in zip(columns, *rows, strict=False)]

    def fmt(cells: Sequence[str]) -> str:
        """Format one row, numbers aligned right."""
        padded = (
            cell.rjust(width) if i in numeric else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if i in numeric else "-" * (w + 2) for i, w in enumerate(widths)
        )
        + "|"
    )
    return "\n".join([fmt(columns), rule, *(fmt(row) for row in rows)])


def git_commit() -> str | None:
    """Return the checkout's short commit, ``+dirty`` if ``src`` has local changes, or None."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "src"],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return None
    return (commit + ("+dirty" if dirty else "")) or None


def environment() -> dict[str, Any]:
    """Describe the machine and the versions measured."""
    versions: dict[str, str | None] = {}
    for package in ("jobgraph", "asynciojobs", "dask"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "date": time.strftime("%Y-%m-%d"),
        "commit": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "versions": versions,
        "seed": SEED,
        "layer_width": LAYER_WIDTH,
    }


def write_json(path: Path, results: Sequence[CaseResult], meta: dict[str, Any]) -> None:
    """Write every repeat and the medians to ``path``."""
    cases = []
    for result in results:
        medians = {
            key: result.median(key) for key in ("build_s", "run_s", "total_s", "peak_mb", "base_mb")
        }
        cases.append(
            {
                **asdict(result.case),
                "status": result.status,
                "median": {**medians, "us_per_job": result.us_per_job()},
                "runs": [asdict(run) for run in result.runs],
            }
        )
    path.write_text(json.dumps({"meta": meta, "cases": cases}, indent=1) + "\n")


# -- command line ---------------------------------------------------------------------------


def _csv(choices: Iterable[str]) -> Any:
    """Return an argparse type: a comma-separated list of names taken from ``choices``."""
    allowed = tuple(choices)

    def parse(text: str) -> list[str]:
        """Split and check the names."""
        names = [name.strip() for name in text.split(",") if name.strip()]
        unknown = [name for name in names if name not in allowed]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"choose among {', '.join(allowed)}")
        return names

    return parse


def _sizes(text: str) -> list[int]:
    """Parse a comma-separated list of positive job counts (``1000`` or ``1_000``)."""
    try:
        sizes = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("sizes are integers, e.g. 1000,10000") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("sizes must be positive")
    return sizes


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=None,
        help="job counts (default 1000,10000,100000; --full adds 1000000)",
    )
    parser.add_argument("--shapes", type=_csv(SHAPES), default=list(SHAPES))
    parser.add_argument("--kinds", type=_csv(("coro", "func")), default=["coro", "func"])
    parser.add_argument(
        "--peers",
        type=_csv(PEERS),
        default=list(DEFAULT_PEERS),
        help=f"among {', '.join(PEERS)} (default {','.join(DEFAULT_PEERS)})",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; medians shown")
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds one child may take (default 120; 600 with --full)",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="the full matrix, up to 1,000,000 jobs (capped peers stop earlier)",
    )
    parser.add_argument(
        "--no-caps",
        action="store_true",
        help="run every peer at every size (slow peers then hit --timeout)",
    )
    parser.add_argument("--json", type=Path, help="write every run and the medians here")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sizes is None:
        args.sizes = list(FULL_SIZES if args.full else DEFAULT_SIZES)
    if args.timeout is None:
        args.timeout = 600.0 if args.full else 120.0
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def caps_note(args: argparse.Namespace) -> str:
    """Describe the caps in force for the chosen peers."""
    caps = active_caps(args)
    parts = [f"{key} <= {cap:,}" for key, cap in caps.items() if key.split("/")[0] in args.peers]
    return "caps: " + (", ".join(parts) or "none") + "; dask runs kind func only"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the harness (parent) or a single case (child, with ``--case``)."""
    args = parse_args(argv)
    if args.case:
        return child_main(args.case)
    meta = environment()
    cases = list(plan(args))
    _progress(f"{len(cases)} cases, {args.repeat} run(s) each, one process each; {caps_note(args)}")
    started = time.perf_counter()
    results = run_all(cases, args.repeat, args.timeout)
    meta["elapsed_s"] = round(time.perf_counter() - started, 1)
    print(
        f"# jobgraph benchmarks, {meta['date']}, commit {meta['commit']}, "
        f"{meta['cpus']} cores, Python {meta['python']}"
    )
    print(f"# versions: {meta['versions']}; medians of {args.repeat}; {caps_note(args)}")
    print(format_table(table_rows(results)))
    print("\n# µs/job (total time / N), by peer")
    columns = ("shape", "N", "kind", *args.peers)
    numeric = frozenset({1, *range(3, len(columns))})
    print(format_table(pivot_rows(results, args.peers), columns, numeric))
    for result in results:
        if result.status != "ok":
            print(f"# {result.case.spec}: {result.status} {result.runs[-1].detail}".rstrip())
    print(f"# harness took {meta['elapsed_s']} s")
    if args.json:
        write_json(args.json, results, meta)
    return 0 if all(result.status == "ok" for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
