"""Shared fixtures: tiny simulated worlds, built once per test session."""

from __future__ import annotations

import logging

import pytest

from edgerec.sim.config import load_sim_config
from edgerec.sim.engine import simulate_in_memory


@pytest.fixture(scope="session")
def world_events():
    """About three thousand sessions of the default world."""
    return simulate_in_memory(load_sim_config(users=2000, seed=11))


@pytest.fixture(scope="session")
def spark():
    """The one Spark session of the test run."""
    from edgerec.config import load_settings
    from spark_jobs.session import spark_session

    session = spark_session(load_settings({"EDGEREC_SPARK_SHUFFLE_PARTITIONS": "2",
                                           "EDGEREC_SPARK_DRIVER_MEMORY": "2g"}), "edgerec-tests")
    yield session
    session.stop()
    logging.getLogger("py4j").setLevel(logging.ERROR)  # it logs at exit, after pytest closed its streams
