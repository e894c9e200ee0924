"""Airflow's own backfill of a team's past: `airflow backfill create` over three days of 2019 client logs in an
external raw zone (tests/past_logs.py), on a scheduler of its own (LocalExecutor, a throwaway PostgreSQL database)
whose tasks run Spark in local mode and keep the registry in the state directory: the set-up of a team with one
machine and a scheduler. The stack's scheduler (test_airflow.py) serves the simulated world: one environment serves
a scheduler's whole session. The backfill starts with the group's first test (`past_backfill` in conftest.py) and runs
beside the others."""

import itertools

import pytest

from edgerec import registry
from pipeline import stack
from tests import past_logs
from tests.integration.stack.conftest import backfill

pytestmark = [pytest.mark.integration, pytest.mark.stack]


def test_airflows_own_backfill_runs_a_team_s_days_from_2019_in_order(past_backfill, stack_settings):
    """The scheduler runs the three days one at a time, oldest first, every task of each but the simulation
    (training from the second day, the first with a train day); each day leaves its reports, marts and (from the
    second day) its blessed version. A second backfill over the same days creates no run: a done day is not run
    again (`--reprocess-behavior none`, the default)."""
    settings, api, done = past_backfill
    days = past_logs.DAYS
    assert done.returncode == 0, done.stdout + done.stderr

    def backfilled():
        return [r for r in api.runs(stack.DAILY_DAG) if r["run_type"] == "backfill"]

    runs = api.until("the backfill's three runs created", lambda: len(backfilled()) == len(days) and backfilled())
    assert [r["logical_date"][:10] for r in runs] == days
    for run in runs:
        assert api.wait_run(stack.DAILY_DAG, run["dag_run_id"], stack_settings.stack.run_timeout_s) == "success", run
    runs = backfilled()
    for earlier, later in itertools.pairwise(runs):
        assert earlier["end_date"] <= later["start_date"], (earlier, later)  # one at a time, in order
    connection = registry.connect(settings)
    for ds, run in zip(days, runs, strict=True):
        tasks = api.task_states(stack.DAILY_DAG, run["dag_run_id"])
        assert tasks.pop("simulate_raw") == "skipped", tasks  # the raw zone is external
        if ds == days[0]:  # no train day yet: training, and what needs a version, skip
            assert tasks["train"] == "skipped" and registry.version_of_day(connection, ds) is None, tasks
        else:
            assert set(tasks.values()) == {"success"}, (ds, tasks)
            version = registry.version_of_day(connection, ds)
            assert version.id.startswith(f"v{ds.replace('-', '')}-") and version.blessing == registry.Blessing.PASSED
        past_logs.assert_day_done(settings.layout(ds))

    api.until("the backfill marked complete", lambda: all(
        b["completed_at"] for b in api.call("GET", "/backfills", params={"dag_id": stack.DAILY_DAG})["backfills"]))
    again = backfill(api, days)  # records each day as having a run already; creates the runs it creates at once
    assert again.returncode == 0, again.stdout + again.stderr
    assert [r["dag_run_id"] for r in api.runs(stack.DAILY_DAG)] == [r["dag_run_id"] for r in runs]
