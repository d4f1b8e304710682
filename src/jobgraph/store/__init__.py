"""Stores: where runs, job ends, fingerprints and output are kept.

``SQLiteStore`` is imported on first use (``sqlite3`` is not needed by runs without a store).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .base import JobEnd, JobStart, RunInfo, RunLockedError, Store, Success, new_run_id
from .memory import MemoryStore

if TYPE_CHECKING:
    from .sqlite import SQLiteStore

__all__ = [
    "JobEnd",
    "JobStart",
    "MemoryStore",
    "RunInfo",
    "RunLockedError",
    "SQLiteStore",
    "Store",
    "Success",
    "new_run_id",
    "open_store",
]


def __getattr__(name: str) -> Any:
    if name == "SQLiteStore":
        from .sqlite import SQLiteStore

        return SQLiteStore
    raise AttributeError(f"module 'jobgraph.store' has no attribute {name!r}")


def open_store(spec: Any) -> Store | None:
    """Turn a ``store=`` value into a store: None, a path, ``sqlite:///path`` or an object."""
    if spec is None or isinstance(spec, Store):
        return spec
    if isinstance(spec, (str, os.PathLike)):
        from .sqlite import SQLiteStore

        text = os.fspath(spec)
        if text.startswith("sqlite:///"):
            # sqlite:///relative/path and sqlite:////absolute/path, as in SQLAlchemy
            return SQLiteStore(text[len("sqlite:///") :])
        if text.startswith(("postgresql://", "postgres://")):
            from .postgres import PostgresStore  # psycopg only when asked for

            return PostgresStore(text)
        if "://" in text:
            raise ValueError(
                f"unknown store URL {text!r}; use a path, sqlite:///path or postgresql://..."
            )
        return SQLiteStore(text)
    raise TypeError(f"store must be None, a path, a URL or a Store, not {spec!r}")
