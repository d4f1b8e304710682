"""Fixtures: the three executors, and one local Dask cluster shared by the suite."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

import jobgraph as jg

EXECUTORS = ["local", "process", "dask"]


@pytest.fixture(scope="session")
def dask_cluster() -> Iterator[Any]:
    """Two single-thread worker processes declaring a ``slot`` resource of 2.

    Like the cluster DaskExecutor starts itself, a task whose worker dies is not run
    again by Dask: the attempt fails and jobgraph's retries apply.
    """
    dask = pytest.importorskip("dask")
    distributed = pytest.importorskip("distributed")
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.CRITICAL,
            resources={"slot": 2},
        )
    yield cluster
    cluster.close()


@pytest.fixture(params=EXECUTORS)
def executor(request: pytest.FixtureRequest) -> Any:
    """What to pass as ``executor=``: None (local), ``"process"`` or a DaskExecutor."""
    if request.param == "local":
        return None
    if request.param == "process":
        return "process"
    cluster = request.getfixturevalue("dask_cluster")
    return jg.DaskExecutor(address=cluster.scheduler_address)
