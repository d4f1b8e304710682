"""A server per test that asks for one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import jobgraph as jg
from server.serverproc import TOKEN, ServerProcess


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    started = ServerProcess(tmp_path, "--flows", "greetflows")
    yield started
    started.stop()


@pytest.fixture
def client(server: ServerProcess) -> jg.Client:
    return jg.Client(server.url, TOKEN)
