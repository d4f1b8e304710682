"""The shared store: PostgreSQL (psycopg 3), for run history used by many machines.

``store="postgresql://user@host/db"`` (``?schema=NAME`` picks the schema, ``jobgraph`` by
default). The same tables as the SQLite store, created and migrated automatically under
an advisory lock (several processes may open a new database at once). Each write is one
transaction; a lost connection (a server restart) or a serialization conflict is retried
with backoff, and past the retry budget the error becomes :class:`StoreError`, leaving the
run resumable: nothing is half-written.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import StoreError
from .base import (
    NO_GENERATION,
    Checkup,
    Generation,
    GraphSnapshot,
    JobEnd,
    JobStart,
    RunInfo,
    RunLockedError,
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

INSTALL_HINT = "the PostgreSQL store needs psycopg 3: pip install 'jobgraph[postgres]'"
SCHEMA_VERSION = 7
_RETRIES = 10  # attempts at a statement while the server is unreachable or conflicting
_MAX_DELAY = 2.0  # seconds: with doubling from 0.05, the budget is about 12 s
_LOCK_KEY = 0x6A6F6267  # the advisory lock taken while migrating ("jobg")
_RUN_COLUMNS = (
    "run_id, scheduler, started_at, ended_at, exit_code, why, options, graph_digest, "
    "owner, lease_until"
)

# A row may go to a run only while it exists; the lock waits out a delete_runs under way
# (a plain EXISTS would not, and would leave a row of a deleted run behind).
_RUN_KEPT = "EXISTS (SELECT 1 FROM runs WHERE run_id = %s FOR KEY SHARE)"

_MIGRATIONS: list[str | tuple[str, ...]] = [
    """
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        seq BIGSERIAL,
        scheduler TEXT NOT NULL,
        started_at DOUBLE PRECISION NOT NULL,
        ended_at DOUBLE PRECISION,
        exit_code INTEGER,
        why TEXT,
        options TEXT NOT NULL DEFAULT '{}',
        graph_digest TEXT NOT NULL DEFAULT '',
        owner TEXT,
        lease_until DOUBLE PRECISION
    );
    CREATE INDEX runs_by_scheduler ON runs (scheduler, seq);
    CREATE TABLE journal (
        seq BIGSERIAL PRIMARY KEY,
        run_id TEXT NOT NULL,
        starts BYTEA NOT NULL,
        ends BYTEA NOT NULL
    );
    CREATE INDEX journal_by_run ON journal (run_id, seq);
    CREATE TABLE successes (
        scheduler TEXT NOT NULL,
        name TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        result BYTEA,
        parts TEXT,
        run_id TEXT NOT NULL,
        PRIMARY KEY (scheduler, name)
    );
    CREATE TABLE output (
        seq BIGSERIAL PRIMARY KEY,
        run_id TEXT NOT NULL,
        name TEXT NOT NULL,
        stream TEXT NOT NULL,
        text TEXT NOT NULL
    );
    CREATE INDEX output_by_job ON output (run_id, name, stream, seq);
    """,
    # 2: a success keeps its stamp, so an unchanged job is known without reading its parts.
    "ALTER TABLE successes ADD COLUMN stamp TEXT",
    # 3: journal rows keep their batch by columns (see journal.py); older rows still read,
    # and the version keeps an older jobgraph, which cannot read the new rows, out of the
    # store. Their batches are stored as they are: compressing each one cost the server
    # five times the rest of the insert, on every flush of a run.
    """
    ALTER TABLE journal ALTER COLUMN starts SET STORAGE EXTERNAL;
    ALTER TABLE journal ALTER COLUMN ends SET STORAGE EXTERNAL
    """,
    # 4: an up-to-date job's end refers to its success's result instead of keeping a copy
    # (base.SAME_RESULT), which an older jobgraph would not understand: nothing to change.
    "",
    # 5: ... by the run that made it (JobEnd.result_of: journal rows of one more column).
    "",
    # 6: a run keeps its graph stamp (see graphstamp.py). Since 7, no longer written.
    "ALTER TABLE runs ADD COLUMN graph_stamp TEXT",
    # 7: each scheduler counts the writes of its successes, and a graph's stamp is kept
    # with the successes it stands for, valid while that count stays (see graphstamp.py).
    # The successes are stored as they are, as journal rows are (see 3). A success
    # written by other code (an older jobgraph that had the schema open, a hand) is
    # counted by triggers: jobgraph's own writes name themselves (written_by).
    (
        "ALTER TABLE successes ADD COLUMN written_by TEXT",
        """CREATE TABLE generations (
            scheduler TEXT PRIMARY KEY,
            generation BIGINT NOT NULL,
            token TEXT NOT NULL
        )""",
        """CREATE TABLE graph_snapshots (
            scheduler TEXT NOT NULL,
            graph_digest TEXT NOT NULL,
            stamp TEXT NOT NULL,
            generation BIGINT NOT NULL,
            token TEXT NOT NULL,
            payload BYTEA NOT NULL,
            run_id TEXT NOT NULL,
            PRIMARY KEY (scheduler, graph_digest)
        )""",
        "ALTER TABLE graph_snapshots ALTER COLUMN payload SET STORAGE EXTERNAL",
        # The schema named: another session's search path may not be this store's.
        """CREATE FUNCTION "{schema}".successes_written_elsewhere() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE
            changed TEXT := CASE WHEN TG_OP = 'DELETE' THEN OLD.scheduler ELSE NEW.scheduler END;
        BEGIN
            INSERT INTO "{schema}".generations VALUES (changed, 1, md5(random()::text))
                ON CONFLICT (scheduler) DO UPDATE
                SET generation = generations.generation + 1, token = EXCLUDED.token;
            DELETE FROM "{schema}".graph_snapshots WHERE scheduler = changed;
            RETURN NULL;
        END $$""",
        *(
            f"""CREATE TRIGGER successes_{event.lower()}_elsewhere AFTER {event} ON successes
            FOR EACH ROW {when} EXECUTE FUNCTION "{{schema}}".successes_written_elsewhere()"""
            for event, when in (
                ("INSERT", "WHEN (NEW.written_by IS NULL)"),
                ("UPDATE", "WHEN (NEW.written_by IS NOT DISTINCT FROM OLD.written_by)"),
                ("DELETE", ""),
            )
        ),
    ),
]


def split_schema(url: str) -> tuple[str, str]:
    """``postgresql://...?schema=x`` -> (the URL without it, ``x``; ``jobgraph`` if absent)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    schema = next((v for k, v in query if k == "schema"), "jobgraph")
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    if not schema.replace("_", "").isalnum() or schema[0].isdigit():
        raise ValueError(f"schema must be letters, digits and '_', not {schema!r}")
    return urlunsplit(parts._replace(query=rest)), schema


class PostgresStore(Store):
    """Runs, job ends, fingerprints and output in a PostgreSQL schema."""

    def __init__(self, url: str) -> None:
        self._psycopg = _import_psycopg()
        self.location = url  # as given: what other processes open
        self.url, self.schema = split_schema(url)
        self._db: Any = None
        self._run(self._migrate)

    def __repr__(self) -> str:
        return f"PostgresStore({_safe(self.url)!r}, schema={self.schema!r})"

    # -- plumbing -------------------------------------------------------------------

    def _connect(self) -> Any:
        if self._db is None or self._db.closed:
            self._db = self._psycopg.connect(
                self.url, autocommit=True, connect_timeout=5, application_name="jobgraph"
            )
            # Another process may create it at the same moment: that is fine too.
            with contextlib.suppress(self._psycopg.errors.UniqueViolation):
                self._db.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            self._db.execute(f'SET search_path TO "{self.schema}"')
            # A commit returns once the server has it, without waiting for its disk: a
            # runner killed at any moment loses nothing (the server has every commit);
            # only a crash of the database server itself may lose the last fraction of a
            # second, as an OS crash may with the SQLite store (synchronous=NORMAL).
            self._db.execute("SET synchronous_commit TO off")
        return self._db

    def _run(self, body: Callable[[Any], T], *, one_statement: bool = False) -> T:
        """Run ``body(connection)`` in one transaction; retry what a retry can cure.

        ``one_statement``: the body runs a single statement, which autocommit makes a
        transaction of its own (a round trip to the server instead of three).
        """
        errors = self._psycopg.errors
        retry = (self._psycopg.OperationalError, errors.SerializationFailure)
        delay = 0.05
        for attempt in range(_RETRIES):
            try:
                db = self._connect()
                if one_statement:
                    return body(db)
                with db.transaction():
                    return body(db)
            except (StoreError, RunLockedError):
                raise
            except retry as exc:
                if self._db is not None and self._db.closed:
                    self._db = None  # the server went away: reconnect next time
                if attempt == _RETRIES - 1:
                    raise StoreError(f"store {_safe(self.url)}: {exc}") from exc
                time.sleep(delay)
                delay = min(delay * 2, _MAX_DELAY)
            except self._psycopg.Error as exc:
                raise StoreError(f"store {_safe(self.url)}: {exc}") from exc
        raise AssertionError("unreachable")

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        return self._run(lambda db: list(db.execute(sql, args).fetchall()))

    def _migrate(self, db: Any) -> None:
        db.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the store {_safe(self.url)} (schema {self.schema}) has version {version}, "
                f"newer than this jobgraph understands ({SCHEMA_VERSION}); upgrade jobgraph"
            )
        for script in _MIGRATIONS[version:]:
            if isinstance(script, str):
                statements = script.split(";")
            else:  # statements that hold ";" (a function), some naming the schema
                statements = [statement.replace("{schema}", self.schema) for statement in script]
            for statement in statements:
                if statement.strip():
                    db.execute(statement)
        db.execute(
            "INSERT INTO meta VALUES ('schema_version', %s) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (str(SCHEMA_VERSION),),
        )

    # -- runs -----------------------------------------------------------------------

    def create_run(self, info: RunInfo) -> None:
        self._run(
            lambda db: db.execute(
                "INSERT INTO runs (run_id, scheduler, started_at, options, graph_digest) "
                "VALUES (%s, %s, %s, %s, %s)",
                (info.run_id, info.scheduler, info.started_at, info.options, info.graph_digest),
            )
        )

    def find_run(self, scheduler: str, run_id: str) -> RunInfo | None:
        if run_id == "last":
            rows = self._read(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE scheduler = %s ORDER BY seq DESC LIMIT 1",
                (scheduler,),
            )
        else:
            rows = self._read(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = %s", (run_id,))
        return RunInfo(*rows[0]) if rows else None

    def finish_run(self, run_id: str, ended_at: float, exit_code: int, why: str) -> None:
        self._run(
            lambda db: db.execute(
                "UPDATE runs SET ended_at = %s, exit_code = %s, why = %s WHERE run_id = %s",
                (ended_at, exit_code, why, run_id),
            )
        )

    def success_generation(self, scheduler: str) -> Generation | None:
        rows = self._read(
            "SELECT generation, token FROM generations WHERE scheduler = %s", (scheduler,)
        )
        return Generation(int(rows[0][0]), rows[0][1]) if rows else NO_GENERATION

    def keep_graph_snapshot(
        self, scheduler: str, graph_digest: str, snapshot: GraphSnapshot, run_id: str, owner: str
    ) -> None:
        def keep(db: Any) -> None:
            held = db.execute(
                "SELECT 1 FROM runs WHERE run_id = %s AND owner = %s FOR KEY SHARE",
                (run_id, owner),
            ).fetchone()
            # FOR SHARE, when the row exists: a write of a success waits for this
            # transaction, then drops what it kept. (When none does, the read of the
            # snapshot, which compares generations, is what refuses a stale one.)
            counted = db.execute(
                "SELECT generation, token FROM generations WHERE scheduler = %s FOR SHARE",
                (scheduler,),
            ).fetchone()
            now = Generation(int(counted[0]), counted[1]) if counted else NO_GENERATION
            if held is None or now != snapshot.generation:
                return  # taken over, or a success written since: the snapshot holds no more
            db.execute(
                "INSERT INTO graph_snapshots (scheduler, graph_digest, stamp, generation, "
                "token, payload, run_id) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (scheduler, graph_digest) DO UPDATE SET stamp = EXCLUDED.stamp, "
                "generation = EXCLUDED.generation, token = EXCLUDED.token, "
                "payload = EXCLUDED.payload, run_id = EXCLUDED.run_id",
                snapshot_row(scheduler, graph_digest, snapshot, run_id),
            )

        self._run(keep)

    def graph_snapshot(self, scheduler: str, graph_digest: str) -> GraphSnapshot | None:
        rows = self._read(
            "SELECT s.stamp, s.generation, s.token, s.payload FROM graph_snapshots AS s "
            "JOIN generations AS g ON g.scheduler = s.scheduler "
            "AND g.generation = s.generation AND g.token = s.token "
            "WHERE s.scheduler = %s AND s.graph_digest = %s",
            (scheduler, graph_digest),
        )
        if not rows:
            return None
        stamp, count, token, payload = rows[0]
        return GraphSnapshot(stamp, Generation(int(count), token), bytes(payload))

    def runs(self, limit: int = 50) -> list[RunInfo]:
        rows = self._read(f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY seq DESC LIMIT %s", (limit,))
        return [RunInfo(*row) for row in rows]

    def delete_runs(self, run_ids: Sequence[str], now: float) -> list[str]:
        if not run_ids:
            return []

        def delete(db: Any) -> list[str]:
            rows = db.execute(
                "SELECT run_id, owner, lease_until FROM runs WHERE run_id = ANY(%s) FOR UPDATE",
                (list(run_ids),),
            ).fetchall()
            found = {row[0] for row in rows if not lease_live(row[1], row[2], now)}
            gone = [r for r in run_ids if r in found]  # in the order asked
            for table in ("journal", "output", "runs"):
                db.execute(f"DELETE FROM {table} WHERE run_id = ANY(%s)", (gone,))
            return gone

        return self._run(delete)

    # -- ownership ------------------------------------------------------------------

    def acquire(
        self, run_id: str, owner: str, ttl: float, now: float, takeover: str | None = None
    ) -> None:
        def take(db: Any) -> None:
            row = db.execute(
                "SELECT owner, lease_until FROM runs WHERE run_id = %s FOR UPDATE", (run_id,)
            ).fetchone()
            if row is None:
                raise StoreError(f"no run {run_id!r} in the store")
            check_lease(run_id, row[0], row[1], owner, takeover, now)
            db.execute(
                "UPDATE runs SET owner = %s, lease_until = %s, ended_at = NULL, "
                "exit_code = NULL, why = NULL WHERE run_id = %s",
                (owner, now + ttl, run_id),
            )

        self._run(take)

    def renew(self, run_id: str, owner: str, ttl: float, now: float) -> None:
        changed = self._run(
            lambda db: (
                db.execute(
                    "UPDATE runs SET lease_until = %s WHERE run_id = %s AND owner = %s",
                    (now + ttl, run_id, owner),
                ).rowcount
            )
        )
        if not changed:  # taken over, or deleted
            raise lost_lease(run_id) if self.find_run("", run_id) else run_gone(run_id)

    def release(self, run_id: str, owner: str) -> None:
        self._run(
            lambda db: db.execute(
                "UPDATE runs SET owner = NULL, lease_until = NULL WHERE run_id = %s AND owner = %s",
                (run_id, owner),
            )
        )

    # -- jobs -----------------------------------------------------------------------

    def record(
        self, run_id: str, starts: Sequence[JobStart], ends: Sequence[JobEnd]
    ) -> Generation | None:
        if not (starts or ends):
            return None
        packed_starts, packed_ends = pack(starts), pack(ends)  # one journal row per flush
        wins = new_successes(ends, run_id)

        def write(db: Any) -> Generation | None:
            added = db.execute(
                f"INSERT INTO journal (run_id, starts, ends) SELECT %s, %s, %s WHERE {_RUN_KEPT}",
                (run_id, packed_starts, packed_ends, run_id),
            )
            if added.rowcount != 1:
                raise run_gone(run_id)
            if not wins:
                return None
            found = db.execute("SELECT scheduler FROM runs WHERE run_id = %s", (run_id,))
            scheduler = found.fetchone()[0]
            token = os.urandom(8).hex()  # this write's: its rows name it (see migration 7)
            with db.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO successes (scheduler, name, fingerprint, result, parts, "
                    "run_id, stamp, written_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (scheduler, name) DO UPDATE SET fingerprint = "
                    "EXCLUDED.fingerprint, result = EXCLUDED.result, parts = EXCLUDED.parts, "
                    "run_id = EXCLUDED.run_id, stamp = EXCLUDED.stamp, "
                    "written_by = EXCLUDED.written_by",
                    [(scheduler, *win, token) for win in wins],
                )
            # One more write of the scheduler's successes: its graph snapshots hold no more.
            counted = db.execute(
                "INSERT INTO generations (scheduler, generation, token) VALUES (%s, 1, %s) "
                "ON CONFLICT (scheduler) DO UPDATE SET generation = generations.generation + 1, "
                "token = EXCLUDED.token RETURNING generation",
                (scheduler, token),
            ).fetchone()
            db.execute("DELETE FROM graph_snapshots WHERE scheduler = %s", (scheduler,))
            return Generation(int(counted[0]), token)

        # Most flushes are their journal row alone (no cached job among their ends).
        return self._run(write, one_statement=not wins)

    def recorded_ends(self, run_id: str) -> dict[str, JobEnd]:
        rows = self._read("SELECT ends FROM journal WHERE run_id = %s ORDER BY seq", (run_id,))
        return ends_of(row[0] for row in rows)

    def job_starts(self, run_id: str) -> list[JobStart]:
        rows = self._read("SELECT starts FROM journal WHERE run_id = %s ORDER BY seq", (run_id,))
        return starts_of(row[0] for row in rows)

    def successes(self, scheduler: str) -> dict[str, Success]:
        return self._successes(scheduler, "parts")

    def successes_unparted(self, scheduler: str) -> dict[str, Success]:
        return self._successes(scheduler, UNREAD_PARTS)

    def _successes(self, scheduler: str, parts: str) -> dict[str, Success]:
        columns = SUCCESS_COLUMNS.format(parts=parts)
        rows = self._read(f"SELECT {columns} FROM successes WHERE scheduler = %s", (scheduler,))
        return {row[0]: Success(row[1], _bytes(row[2]), *row[3:]) for row in rows}

    def success_parts(self, scheduler: str) -> dict[str, str | None]:
        rows = self._read("SELECT name, parts FROM successes WHERE scheduler = %s", (scheduler,))
        return dict(rows)

    def last_success(self, scheduler: str, name: str) -> Success | None:
        rows = self._read(
            "SELECT fingerprint, result, parts, stamp, run_id FROM successes "
            "WHERE scheduler = %s AND name = %s",
            (scheduler, name),
        )
        return Success(rows[0][0], _bytes(rows[0][1]), *rows[0][2:]) if rows else None

    # -- output ---------------------------------------------------------------------

    def append_output(self, run_id: str, name: str, stream: str, text: str) -> None:
        added = self._run(
            lambda db: (
                db.execute(
                    "INSERT INTO output (run_id, name, stream, text) SELECT %s, %s, %s, %s "
                    f"WHERE {_RUN_KEPT}",
                    (run_id, name, stream, text, run_id),
                ).rowcount
            ),
            one_statement=True,
        )
        if added != 1:
            raise run_gone(run_id)

    def output(self, run_id: str, name: str, stream: str) -> str:
        rows = self._read(
            "SELECT text FROM output WHERE run_id = %s AND name = %s AND stream = %s ORDER BY seq",
            (run_id, name, stream),
        )
        return "".join(row[0] for row in rows)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def checkup(url: str) -> Checkup:
    """Reach the server and read the schema, creating and migrating nothing.

    A missing schema is a :class:`StoreError` (nothing was ever recorded there). PostgreSQL
    keeps its own data sound; the one damage it reports to clients is data checksum failures
    (counted only where checksums are enabled).
    """
    psycopg = _import_psycopg()
    base, schema = split_schema(url)
    location = f"{_safe(base)} (schema {schema})"
    try:
        with psycopg.connect(
            base, autocommit=True, connect_timeout=5, application_name="jobgraph doctor"
        ) as db:
            found = db.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
            if found.fetchone() is None:
                raise StoreError(f"no store at {location}: the schema does not exist")
            rows = db.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (schema,),
            ).fetchall()
            tables = frozenset(str(row[0]) for row in rows)
            version = None
            if "meta" in tables:
                row = db.execute(
                    f'SELECT value FROM "{schema}".meta WHERE key = %s', ("schema_version",)
                ).fetchone()
                version = int(row[0]) if row else None
            failures = db.execute(
                "SELECT checksum_failures FROM pg_stat_database WHERE datname = current_database()"
            ).fetchone()
    except psycopg.Error as exc:
        raise StoreError(f"store {location}: {exc}") from exc
    problems: tuple[str, ...] = ()
    if failures and failures[0]:
        problems = (f"{failures[0]} data checksum failures in the database (see the server's log)",)
    return Checkup(location, problems, version, SCHEMA_VERSION, tables)


def _import_psycopg() -> Any:
    """The psycopg module, imported only when a PostgreSQL store is asked for."""
    try:
        import psycopg
    except ImportError:
        # Named, so that the command line tells it from other import errors.
        raise ImportError(INSTALL_HINT, name="psycopg") from None
    return psycopg


def _bytes(value: Any) -> bytes | None:
    return bytes(value) if value is not None else None


def _safe(url: str) -> str:
    """The URL without its password (for messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))
