"""Airflow as it runs in production: the scheduler (LocalExecutor), the DAG processor and the API server on a
throwaway PostgreSQL database. One daily run, triggered through the REST API, runs every task on the stack (Spark
on the cluster, the registry on the MLflow server) and ships a version to `canary`; the release DAG's approval is
answered through the REST API."""

import pytest

from deploy.channels import read_channel
from deploy.targets import open_targets
from edgerec import registry
from pipeline import stack
from tests.integration.conftest import DAYS
from tests.integration.stack.outputs import assert_same_day

pytestmark = [pytest.mark.integration, pytest.mark.stack]
RELEASE = "edgerec_release"


def channel(settings, name: str):
    targets = open_targets(settings)
    try:
        return read_channel(targets.cdn, name, targets.key)
    finally:
        targets.close()


def test_the_daily_run_ships_a_version_to_canary(on_stack, daily_run, mlflow_client_env):
    settings, api = on_stack
    run, state, tasks = daily_run
    assert state == "success", tasks
    assert set(tasks.values()) == {"success"} and len(tasks) == 20, tasks
    assert {"canary_analysis", "release_decision", "replay_gate"} <= set(tasks)  # the loop runs on the scheduler too
    assert {"train_recall", "recall_gate", "export_recall", "deploy_recall"} <= set(tasks)
    version = registry.version_of_day(registry.connect(settings), DAYS[1])
    assert version.blessing == registry.Blessing.PASSED and version.servable == registry.Blessing.PASSED
    assert channel(settings, "canary").version == version.id


def test_the_runs_spark_tasks_on_the_cluster_write_what_local_mode_writes(on_stack, daily_run, world, spark_cluster):
    settings, _ = on_stack
    assert daily_run[1] == "success"
    ran = [app["name"] for app in stack.master_state(spark_cluster)["completedapps"]]
    assert f"edgerec-ingest-sessionize-requests-bucketize-{DAYS[1]}" in ran, ran  # the four jobs, one application
    assert_same_day(settings, world[0], DAYS[1])


def test_a_release_runs_only_once_approved_through_the_api(on_stack, daily_run, mlflow_client_env):
    settings, api = on_stack
    version = registry.version_of_day(registry.connect(settings), DAYS[1])
    api.unpause(RELEASE)
    conf = {"action": "promote", "version": version.id, "channel": "stable", "percent": 100.0,
            "reason": "canary looked fine"}
    rejected = api.trigger(RELEASE, None, conf)
    assert api.answer_approval(RELEASE, rejected, "approve", "Reject")["chosen_options"] == ["Reject"]
    assert api.wait_run(RELEASE, rejected) == "success"
    assert api.task_states(RELEASE, rejected) == {"plan": "success", "approve": "success", "apply": "skipped"}
    assert channel(settings, "stable") is None

    approved = api.trigger(RELEASE, None, conf)
    api.answer_approval(RELEASE, approved, "approve", "Approve")
    assert api.wait_run(RELEASE, approved) == "success"
    assert api.task_states(RELEASE, approved) == {"plan": "success", "approve": "success", "apply": "success"}
    assert channel(settings, "stable").version == version.id

