"""The tiny simulated world of the integration tests: two days through the Spark jobs, built once."""

import pytest

from edgerec.config import load_settings
from edgerec.raw import simulate_day
from spark_jobs.jobs import JOBS, run_jobs

DAYS = ["2026-11-01", "2026-11-02"]


@pytest.fixture(scope="session")
def world(spark, tmp_path_factory):
    """(settings, simulation summaries, Spark job results) of 30 users over DAYS, with a few bad lines."""
    home = tmp_path_factory.mktemp("state")
    settings = load_settings({"EDGEREC_HOME": str(home), "EDGEREC_SIM_USERS": "30",
                              "EDGEREC_SIM_CORRUPT_RATE": "0.004", "EDGEREC_SPARK_SHUFFLE_PARTITIONS": "2"})
    summaries = {ds: simulate_day(settings, ds) for ds in DAYS}
    results = {ds: run_jobs(settings, ds, list(JOBS), spark=spark) for ds in DAYS}
    return settings, summaries, results


@pytest.fixture(scope="session")
def marts(world):
    """(settings, dbt build summary) of the world's marts for DAYS[1]: train on DAYS[0], test on DAYS[1]."""
    from edgerec.marts import build_marts

    settings = world[0]
    return settings, build_marts(settings, DAYS[1])
