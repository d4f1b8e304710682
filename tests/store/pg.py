"""Where the PostgreSQL tests find a server, and a fresh schema for each test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

ENV = "JOBGRAPH_TEST_POSTGRES"
DEFAULT = "postgresql://postgres@localhost:5432/test"  # CI's server


def server_url() -> str:
    """The DSN of a reachable server, or skip the test saying how to enable it."""
    url = os.environ.get(ENV, DEFAULT)
    try:
        import psycopg

        psycopg.connect(url, connect_timeout=3).close()
    except Exception as exc:
        pytest.skip(
            f"PostgreSQL tests need a server: none at {url} ({type(exc).__name__}); set "
            f"{ENV}=postgresql://user@host/db to run them"
        )
    return url


@contextmanager
def fresh_schema() -> Iterator[str]:
    """A store URL on a schema of its own, dropped afterwards."""
    import psycopg

    url = server_url()
    schema = f"jg_test_{uuid.uuid4().hex[:12]}"
    separator = "&" if "?" in url else "?"
    try:
        yield f"{url}{separator}schema={schema}"
    finally:
        with psycopg.connect(url, autocommit=True) as db:
            db.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
