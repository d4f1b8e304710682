"""Stores: where runs, job ends, fingerprints and output are kept.

``SQLiteStore`` is imported on first use (``sqlite3`` is not needed by runs without a store).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .base import (
    EndBatch,
    Generation,
    GraphSnapshot,
    JobEnd,
    JobStart,
    RunInfo,
    RunLockedError,
    Store,
    Success,
    new_run_id,
)
from .memory import MemoryStore

if TYPE_CHECKING:
    from .sqlite import SQLiteStore

__all__ = [
    "EndBatch",
    "Generation",
    "GraphSnapshot",
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
    "sqlite_file",
]


def __getattr__(name: str) -> Any:
    if name == "SQLiteStore":
        from .sqlite import SQLiteStore

        return SQLiteStore
    raise AttributeError(f"module 'jobgraph.store' has no attribute {name!r}")


SERVER_URLS = ("postgresql://", "postgres://")  # stores on a database server


def sqlite_file(text: str) -> str | None:
    """The file of a SQLite store given as text, or None for a database server's URL.

    ``sqlite:///relative/path`` and ``sqlite:////absolute/path`` as in SQLAlchemy; any
    other URL is a ``ValueError``.
    """
    if text.startswith(SERVER_URLS):
        return None
    if text.startswith("sqlite:///"):
        return text[len("sqlite:///") :]
    if "://" in text:
        raise ValueError(
            f"unknown store URL {text!r}; use a path, sqlite:///path or postgresql://..."
        )
    return text


def open_store(spec: Any) -> Store | None:
    """Turn a ``store=`` value into a store: None, a path, a URL or an object."""
    if spec is None or isinstance(spec, Store):
        return spec
    if isinstance(spec, (str, os.PathLike)):
        text = os.fspath(spec)
        file = sqlite_file(text)
        if file is None:
            from .postgres import PostgresStore  # psycopg only when asked for

            return PostgresStore(text)
        from .sqlite import SQLiteStore

        return SQLiteStore(file)
    raise TypeError(f"store must be None, a path, a URL or a Store, not {spec!r}")
