"""The embedded store: one SQLite file, WAL mode, no server.

Writes use ``BEGIN IMMEDIATE`` (the write lock is taken up front, so two writers never
deadlock upgrading a read lock), a busy timeout, and a few retries on "locked" or "busy";
any other database error becomes :class:`StoreError`. The schema carries a version and is
migrated forward when an older file is opened.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeVar

from ..errors import StoreError
from .base import (
    NO_GENERATION,
    Checkup,
    Generation,
    GraphSnapshot,
    JobEnd,
    JobStart,
    RunInfo,
    Store,
    Success,
)
from .journal import (
    SUCCESS_COLUMNS,
    UNREAD_PARTS,
    check_lease,
    ends_of,
    lease_live,
    lost_lease,
    new_successes,
    pack,
    run_gone,
    snapshot_row,
    starts_of,
)

T = TypeVar("T")
_FIRST, _REST = itemgetter(0), itemgetter(slice(1, None))
_SUCCESS = functools.partial(tuple.__new__, Success)

SCHEMA_VERSION = 7
_RETRIES = 8  # attempts at a write that keeps finding the database locked
_BUSY_MS = 5000

# A write of successes by other code than jobgraph's record(), counted by a trigger.
# (No conflict clause: in a trigger, that of the statement that fired it would apply.)
_COUNTED = """
    INSERT INTO generations SELECT {scheduler}, 0, ''
        WHERE NOT EXISTS (SELECT 1 FROM generations WHERE scheduler = {scheduler});
    UPDATE generations SET generation = generation + 1, token = lower(hex(randomblob(8)))
        WHERE scheduler = {scheduler};
    DELETE FROM graph_snapshots WHERE scheduler = {scheduler};
"""

# Each entry moves the schema from version (index) to version (index + 1): a script of
# statements parted by ";", or the statements themselves (a trigger holds ";").
_MIGRATIONS: list[str | tuple[str, ...]] = [
    """
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        scheduler TEXT NOT NULL,
        started_at REAL NOT NULL,
        ended_at REAL,
        exit_code INTEGER,
        why TEXT,
        options TEXT NOT NULL DEFAULT '{}',
        graph_digest TEXT NOT NULL DEFAULT '',
        owner TEXT,
        lease_until REAL
    );
    CREATE INDEX runs_by_scheduler ON runs (scheduler, seq);
    CREATE TABLE journal (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        starts BLOB NOT NULL,
        ends BLOB NOT NULL
    );
    CREATE INDEX journal_by_run ON journal (run_id, seq);
    CREATE TABLE successes (
        scheduler TEXT NOT NULL,
        name TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        result BLOB,
        parts TEXT,
        run_id TEXT NOT NULL,
        PRIMARY KEY (scheduler, name)
    );
    CREATE TABLE output (
        run_id TEXT NOT NULL,
        name TEXT NOT NULL,
        stream TEXT NOT NULL,
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        text TEXT NOT NULL
    );
    CREATE INDEX output_by_job ON output (run_id, name, stream, seq);
    """,
    # 2: a success keeps its stamp, so an unchanged job is known without reading its parts.
    "ALTER TABLE successes ADD COLUMN stamp TEXT",
    # 3: journal rows keep their batch by columns (see journal.py). Nothing to change in
    # the tables, and older rows still read; the version keeps an older jobgraph, which
    # cannot read the new rows, out of the store.
    "",
    # 4: an up-to-date job's end refers to its success's result instead of keeping a copy
    # (base.SAME_RESULT), which an older jobgraph would not understand: nothing to change.
    "",
    # 5: ... by the run that made it (JobEnd.result_of: journal rows of one more column).
    "",
    # 6: a run keeps its graph stamp (see graphstamp.py). Since 7, no longer written.
    "ALTER TABLE runs ADD COLUMN graph_stamp TEXT",
    # 7: each scheduler counts the writes of its successes, and a graph's stamp is kept
    # with the successes it stands for, valid while that count stays (see graphstamp.py).
    # A success written by other code (an older jobgraph that had the file open, a hand)
    # is counted by triggers: jobgraph's own writes name themselves (written_by).
    (
        "ALTER TABLE successes ADD COLUMN written_by TEXT",
        """CREATE TABLE generations (
            scheduler TEXT PRIMARY KEY,
            generation INTEGER NOT NULL,
            token TEXT NOT NULL
        )""",
        """CREATE TABLE graph_snapshots (
            scheduler TEXT NOT NULL,
            graph_digest TEXT NOT NULL,
            stamp TEXT NOT NULL,
            generation INTEGER NOT NULL,
            token TEXT NOT NULL,
            payload BLOB NOT NULL,
            run_id TEXT NOT NULL,
            PRIMARY KEY (scheduler, graph_digest)
        )""",
        *(
            f"""CREATE TRIGGER successes_{event.lower()}_elsewhere AFTER {event} ON successes
            {when} BEGIN {_COUNTED.format(scheduler=row + ".scheduler")} END"""
            for event, when, row in (
                ("INSERT", "WHEN NEW.written_by IS NULL", "NEW"),
                ("UPDATE", "WHEN NEW.written_by IS OLD.written_by", "NEW"),
                ("DELETE", "", "OLD"),
            )
        ),
    ),
]


def _transient(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


class SQLiteStore(Store):
    """Runs, job ends, fingerprints and output in one SQLite file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, isolation_level=None, timeout=_BUSY_MS / 1000, check_same_thread=False
            )
            self._db.execute(f"PRAGMA busy_timeout = {_BUSY_MS}")
            self._set_up()
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the store {str(self.path)!r}: {exc}") from exc

    def _set_up(self) -> None:
        """WAL mode and the schema; retried while another process creates the file.

        Switching a new file to WAL takes a lock that SQLite does not wait for (no busy
        handler there): two processes opening a new store at once would see "locked".
        """
        delay = 0.01
        for attempt in range(_RETRIES):
            try:
                self._db.execute("PRAGMA journal_mode = WAL")
                # NORMAL in WAL mode: a commit survives a crash of the process (the kill
                # -9 we promise about); only an OS crash or power loss may lose the last.
                self._db.execute("PRAGMA synchronous = NORMAL")
                self._migrate()
                return
            except sqlite3.OperationalError as exc:
                if not _transient(exc) or attempt == _RETRIES - 1:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    # -- plumbing -------------------------------------------------------------------

    def _migrate(self) -> None:
        if self._version() == SCHEMA_VERSION:
            return  # the common case: no write lock taken just to open the store

        def step(db: sqlite3.Connection) -> None:
            db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            version = _stored_version(db) or 0
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"the store {str(self.path)!r} has schema version {version}, newer than "
                    f"this jobgraph understands ({SCHEMA_VERSION}); upgrade jobgraph"
                )
            for script in _MIGRATIONS[version:]:
                for statement in script.split(";") if isinstance(script, str) else script:
                    if statement.strip():
                        db.execute(statement)
            db.execute(
                "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )

        self._write(step)

    def _version(self) -> int | None:
        try:
            return _stored_version(self._db)
        except sqlite3.OperationalError:
            return None  # a new file: no meta table yet

    def _write(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``body`` in one immediate transaction; retry while the file is locked."""

        def transaction() -> T:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                value = body(self._db)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return value

        return self._retried(transaction)

    def _retried(self, action: Callable[[], T]) -> T:
        """``action()``, tried again while the file is locked; a StoreError past that."""
        delay = 0.01
        for attempt in range(_RETRIES):
            try:
                return action()
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if not _transient(exc) or attempt == _RETRIES - 1:
                    raise StoreError(f"store {str(self.path)!r}: {exc}") from exc
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
        raise AssertionError("unreachable")

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"store {str(self.path)!r}: {exc}") from exc

    # -- runs -----------------------------------------------------------------------

    def create_run(self, info: RunInfo) -> None:
        def insert(db: sqlite3.Connection) -> None:
            seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM runs").fetchone()[0]
            db.execute(
                "INSERT INTO runs (run_id, seq, scheduler, started_at, options, graph_digest)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    info.run_id,
                    seq,
                    info.scheduler,
                    info.started_at,
                    info.options,
                    info.graph_digest,
                ),
            )

        self._write(insert)

    def find_run(self, scheduler: str, run_id: str) -> RunInfo | None:
        columns = (
            "run_id, scheduler, started_at, ended_at, exit_code, why, options, graph_digest, "
            "owner, lease_until"
        )
        if run_id == "last":
            rows = self._read(
                f"SELECT {columns} FROM runs WHERE scheduler = ? ORDER BY seq DESC LIMIT 1",
                (scheduler,),
            )
        else:
            rows = self._read(f"SELECT {columns} FROM runs WHERE run_id = ?", (run_id,))
        return RunInfo(*rows[0]) if rows else None

    def finish_run(self, run_id: str, ended_at: float, exit_code: int, why: str) -> None:
        self._write(
            lambda db: db.execute(
                "UPDATE runs SET ended_at = ?, exit_code = ?, why = ? WHERE run_id = ?",
                (ended_at, exit_code, why, run_id),
            )
        )

    def success_generation(self, scheduler: str) -> Generation | None:
        rows = self._read(_GENERATION, (scheduler,))
        return Generation(*rows[0]) if rows else NO_GENERATION

    def keep_graph_snapshot(
        self, scheduler: str, graph_digest: str, snapshot: GraphSnapshot, run_id: str, owner: str
    ) -> None:
        def keep(db: sqlite3.Connection) -> None:
            held = db.execute(
                "SELECT 1 FROM runs WHERE run_id = ? AND owner = ?", (run_id, owner)
            ).fetchone()
            if held is None or _generation(db, scheduler) != snapshot.generation:
                return  # taken over, or a success written since: the snapshot holds no more
            db.execute(
                "INSERT OR REPLACE INTO graph_snapshots (scheduler, graph_digest, stamp, "
                "generation, token, payload, run_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
                snapshot_row(scheduler, graph_digest, snapshot, run_id),
            )

        self._write(keep)

    def graph_snapshot(self, scheduler: str, graph_digest: str) -> GraphSnapshot | None:
        rows = self._read(
            "SELECT s.stamp, s.generation, s.token, s.payload FROM graph_snapshots AS s "
            "JOIN generations AS g ON g.scheduler = s.scheduler "
            "AND g.generation = s.generation AND g.token = s.token "
            "WHERE s.scheduler = ? AND s.graph_digest = ?",
            (scheduler, graph_digest),
        )
        if not rows:
            return None
        stamp, count, token, payload = rows[0]
        return GraphSnapshot(stamp, Generation(count, token), payload)

    def runs(self, limit: int = 50) -> list[RunInfo]:
        rows = self._read(
            "SELECT run_id, scheduler, started_at, ended_at, exit_code, why, options, "
            "graph_digest, owner, lease_until FROM runs ORDER BY seq DESC LIMIT ?",
            (limit,),
        )
        return [RunInfo(*row) for row in rows]

    def delete_runs(self, run_ids: Sequence[str], now: float) -> list[str]:
        if not run_ids:
            return []  # no write lock taken for nothing

        def delete(db: sqlite3.Connection) -> list[str]:
            gone = []
            for run_id in run_ids:
                row = db.execute(
                    "SELECT owner, lease_until FROM runs WHERE run_id = ?", (run_id,)
                ).fetchone()
                if row is not None and not lease_live(row[0], row[1], now):
                    gone.append(run_id)
            for table in ("journal", "output", "runs"):  # each by an index on run_id
                db.executemany(f"DELETE FROM {table} WHERE run_id = ?", [(r,) for r in gone])
            return gone

        return self._write(delete)

    def compact(self) -> None:
        """VACUUM: rewrite the file without its free pages (a later run would reuse them).

        It needs as much free disk as the file takes, and waits out a writer as writes do.
        """
        self._retried(lambda: self._db.execute("VACUUM"))
        self._retried(lambda: self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)"))

    # -- ownership ------------------------------------------------------------------

    def acquire(
        self, run_id: str, owner: str, ttl: float, now: float, takeover: str | None = None
    ) -> None:
        def take(db: sqlite3.Connection) -> None:
            row = db.execute(
                "SELECT owner, lease_until FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            if row is None:
                raise StoreError(f"no run {run_id!r} in the store")
            check_lease(run_id, row[0], row[1], owner, takeover, now)
            # Held again (a resume): the run is running, its old end no longer holds.
            db.execute(
                "UPDATE runs SET owner = ?, lease_until = ?, ended_at = NULL, exit_code = NULL, "
                "why = NULL WHERE run_id = ?",
                (owner, now + ttl, run_id),
            )

        self._write(take)

    def renew(self, run_id: str, owner: str, ttl: float, now: float) -> None:
        changed = self._write(
            lambda db: (
                db.execute(
                    "UPDATE runs SET lease_until = ? WHERE run_id = ? AND owner = ?",
                    (now + ttl, run_id, owner),
                ).rowcount
            )
        )
        if not changed:  # taken over, or deleted
            raise lost_lease(run_id) if self.find_run("", run_id) else run_gone(run_id)

    def release(self, run_id: str, owner: str) -> None:
        self._write(
            lambda db: db.execute(
                "UPDATE runs SET owner = NULL, lease_until = NULL WHERE run_id = ? AND owner = ?",
                (run_id, owner),
            )
        )

    # -- jobs -----------------------------------------------------------------------

    def record(
        self, run_id: str, starts: Sequence[JobStart], ends: Sequence[JobEnd]
    ) -> Generation | None:
        packed_starts, packed_ends = pack(starts), pack(ends)  # one journal row per flush
        wins = new_successes(ends, run_id)

        def write(db: sqlite3.Connection) -> Generation | None:
            # The run's row, read once: it must still be there (not pruned under us), and
            # names the scheduler whose successes the batch renews.
            run = db.execute("SELECT scheduler FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if run is None:
                raise run_gone(run_id)
            db.execute(
                "INSERT INTO journal (run_id, starts, ends) VALUES (?, ?, ?)",
                (run_id, packed_starts, packed_ends),
            )
            if not wins:
                return None
            scheduler = run[0]
            token = os.urandom(8).hex()  # this write's: its rows name it (see _COUNTED)
            db.executemany(
                "INSERT OR REPLACE INTO successes (scheduler, name, fingerprint, result, "
                "parts, run_id, stamp, written_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(scheduler, *win, token) for win in wins],
            )
            return _next_generation(db, scheduler, token)

        return self._write(write) if starts or ends else None

    def recorded_ends(self, run_id: str) -> dict[str, JobEnd]:
        rows = self._read("SELECT ends FROM journal WHERE run_id = ? ORDER BY seq", (run_id,))
        return ends_of(row[0] for row in rows)

    def job_starts(self, run_id: str) -> list[JobStart]:
        rows = self._read("SELECT starts FROM journal WHERE run_id = ? ORDER BY seq", (run_id,))
        return starts_of(row[0] for row in rows)

    def successes(self, scheduler: str) -> dict[str, Success]:
        return self._successes(scheduler, "parts")

    def successes_unparted(self, scheduler: str) -> dict[str, Success]:
        return self._successes(scheduler, UNREAD_PARTS)

    def _successes(self, scheduler: str, parts: str) -> dict[str, Success]:
        columns = SUCCESS_COLUMNS.format(parts=parts)
        rows = self._read(f"SELECT {columns} FROM successes WHERE scheduler = ?", (scheduler,))
        # Built in C (a rerun reads every job's): no Python call per row.
        return dict(zip(map(_FIRST, rows), map(_SUCCESS, map(_REST, rows)), strict=True))

    def success_parts(self, scheduler: str) -> dict[str, str | None]:
        rows = self._read("SELECT name, parts FROM successes WHERE scheduler = ?", (scheduler,))
        return dict(rows)

    def last_success(self, scheduler: str, name: str) -> Success | None:
        rows = self._read(
            "SELECT fingerprint, result, parts, stamp, run_id FROM successes "
            "WHERE scheduler = ? AND name = ?",
            (scheduler, name),
        )
        return Success(*rows[0]) if rows else None

    # -- output ---------------------------------------------------------------------

    def append_output(self, run_id: str, name: str, stream: str, text: str) -> None:
        added = self._write(
            lambda db: (
                db.execute(
                    "INSERT INTO output (run_id, name, stream, text) SELECT ?, ?, ?, ? "
                    "WHERE EXISTS (SELECT 1 FROM runs WHERE run_id = ?)",
                    (run_id, name, stream, text, run_id),
                ).rowcount
            )
        )
        if added != 1:
            raise run_gone(run_id)

    def output(self, run_id: str, name: str, stream: str) -> str:
        rows = self._read(
            "SELECT text FROM output WHERE run_id = ? AND name = ? AND stream = ? ORDER BY seq",
            (run_id, name, stream),
        )
        return "".join(row[0] for row in rows)

    def integrity_check(self) -> str:
        """SQLite's own verdict on the file (``ok`` when healthy)."""
        return str(self._read("PRAGMA integrity_check")[0][0])

    def close(self) -> None:
        self._db.close()


def checkup(path: str | os.PathLike[str]) -> Checkup:
    """Check a store file without changing it: SQLite's integrity check, tables, version.

    Nothing is written (an older schema is reported, not migrated) and no file is created.
    A file SQLite cannot read at all is a problem, named, not an exception.
    """
    file = Path(path)
    try:
        # mode=rw, not ro: a reader of a WAL file may have to create its -shm index, and a
        # read-only connection cannot; rw still never creates the database file itself.
        db = sqlite3.connect(
            f"{file.resolve().as_uri()}?mode=rw", uri=True, timeout=_BUSY_MS / 1000
        )
    except sqlite3.Error as exc:
        return Checkup(str(file), (f"cannot open it: {exc}",), None, SCHEMA_VERSION)
    problems: list[str] = []
    try:
        # The schema first: it may still be readable where other pages are damaged.
        tables, version = _schema_of(db, problems)
        try:
            rows = db.execute("PRAGMA integrity_check(20)").fetchall()  # at most 20 problems
            problems += [str(row[0]) for row in rows if row[0] != "ok"]
        except sqlite3.Error as exc:  # damage bad enough to stop the check itself
            problems.append(str(exc))
    finally:
        db.close()
    unique = tuple(dict.fromkeys(problems))  # the same message from both reads, once
    return Checkup(str(file), unique, version, SCHEMA_VERSION, tables)


def _generation(db: sqlite3.Connection, scheduler: str) -> Generation:
    """Where the scheduler's successes stand (see Store.success_generation)."""
    row = db.execute(_GENERATION, (scheduler,)).fetchone()
    return Generation(*row) if row else NO_GENERATION


_GENERATION = "SELECT generation, token FROM generations WHERE scheduler = ?"


def _next_generation(db: sqlite3.Connection, scheduler: str, token: str) -> Generation:
    """Count one more write of the scheduler's successes: its graph snapshots hold no more."""
    # (Two statements rather than an upsert, which SQLite has only since 3.24.)
    db.execute("INSERT OR IGNORE INTO generations VALUES (?, 0, '')", (scheduler,))
    db.execute(
        "UPDATE generations SET generation = generation + 1, token = ? WHERE scheduler = ?",
        (token, scheduler),
    )
    db.execute("DELETE FROM graph_snapshots WHERE scheduler = ?", (scheduler,))
    return _generation(db, scheduler)


def _stored_version(db: sqlite3.Connection) -> int | None:
    """The schema version the store records, None if it records none."""
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else None


def _schema_of(db: sqlite3.Connection, problems: list[str]) -> tuple[frozenset[str], int | None]:
    """The tables and the schema version of a store file (what cannot be read: a problem)."""
    tables: set[str] = set()
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        return frozenset(tables), _stored_version(db) if "meta" in tables else None
    except (sqlite3.Error, ValueError) as exc:  # e.g. "file is not a database"
        problems.append(str(exc))
        return frozenset(tables), None
