"""The at-scale twins, started once per test session on 127.0.0.1 (pipeline/stack.py): opt-in, `pytest -m stack`."""

import shutil
import subprocess

import pytest

from edgerec.config import load_settings
from pipeline import stack
from pipeline.services import tool
from tests import past_logs
from tests.integration.conftest import DAYS


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory):
    return load_settings({"EDGEREC_HOME": str(tmp_path_factory.mktemp("stack-home"))})


@pytest.fixture(scope="session")
def stack_dir(stack_settings):
    return stack.stack_directory(stack_settings)


@pytest.fixture(scope="session")
def spark_cluster(stack_settings, stack_dir):
    """A standalone master and two workers of one core each."""
    with stack.running_spark_cluster(stack_dir, stack_settings.stack.timeout_s) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def mlflow_server(stack_settings, stack_dir):
    """MLflow's tracking server behind its login, on a throwaway PostgreSQL database and moto's S3."""
    with stack.running_mlflow(stack_settings, stack_dir) as server:
        yield server


@pytest.fixture(scope="session")
def on_stack(world, stack_settings, stack_dir, spark_cluster, mlflow_server, tmp_path_factory):
    """(settings of the DAG's tasks, the logged-in API) of a state directory that holds the world's first day."""
    local = world[0]
    home = tmp_path_factory.mktemp("airflow-state")
    shutil.copytree(local.raw, home / "raw")
    # the world's first day only: the run writes the second again, on the cluster
    shutil.copytree(local.warehouse, home / "warehouse", ignore=shutil.ignore_patterns(f"ds={DAYS[1]}"))
    env = {"EDGEREC_HOME": str(home), "EDGEREC_SIM_USERS": str(local.sim.users),
           "EDGEREC_SIM_CORRUPT_RATE": str(local.sim.corrupt_rate),
           "EDGEREC_SPARK_SHUFFLE_PARTITIONS": str(local.spark.shuffle_partitions),
           "EDGEREC_TRAIN_EPOCHS": "1", "EDGEREC_TRAIN_MODELS": "crban_hubsm_ie_ipv", "EDGEREC_GATE_MIN_GAUC": "0",
           "EDGEREC_RECALL_EPOCHS": "1", "EDGEREC_RECALL_MIN_RECALL_AT_20": "0",
           # a one-epoch model of a tiny world is noise: the twins are under test here, the gates' judgement is
           # tested on its own (tests/integration/deploy/test_replay_gate.py)
           "EDGEREC_REPLAY_USERS": "0",
           "EDGEREC_MLFLOW_TRACKING_URI": mlflow_server.tracking_uri, "EDGEREC_RELEASE_ACTOR": "release-manager",
           **mlflow_server.env, **spark_cluster.client_env}
    settings = local.replace(home=home, mlflow={"tracking_uri": mlflow_server.tracking_uri},
                             train={"epochs": 1, "models": "crban_hubsm_ie_ipv"})
    with stack.running_airflow(stack_settings, stack_dir, env) as api:
        yield settings, api


@pytest.fixture
def mlflow_client_env(mlflow_server, monkeypatch):
    """This process as a client of the MLflow server (its credentials in MLflow's variables)."""
    for name, value in mlflow_server.env.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="session")
def daily_run(on_stack):
    """(run id, final state, each task's state) of the daily DAG's run for the world's second day."""
    settings, api = on_stack
    api.unpause(stack.DAILY_DAG)
    run = api.trigger(stack.DAILY_DAG, f"{DAYS[1]}T00:00:00Z")
    state = api.wait_run(stack.DAILY_DAG, run, settings.stack.run_timeout_s)
    return run, state, api.task_states(stack.DAILY_DAG, run)


def backfill(api, days: list[str]) -> subprocess.CompletedProcess:
    """`airflow backfill create` over days, one run at a time, as docs/operations.md tells a team to run it."""
    return subprocess.run([tool("airflow"), "backfill", "create", "--dag-id", stack.DAILY_DAG, "--from-date", days[0],
                           "--to-date", days[-1], "--max-active-runs", "1"], env=api.airflow.env,
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="session")
def past_backfill(stack_settings, tmp_path_factory):
    """(settings of the DAG's tasks, the logged-in API, the `airflow backfill create` it ran) of a scheduler of its own
    whose raw zone holds the 2019 days of tests/past_logs.py (test_airflow_backfill.py)."""
    home = tmp_path_factory.mktemp("past-state")
    past_logs.write_logs(home / "raw")
    env = {"EDGEREC_HOME": str(home), "EDGEREC_SOURCE": "external", **past_logs.lenient_env(home),
           "EDGEREC_SPARK_SHUFFLE_PARTITIONS": "2", "EDGEREC_TRAIN_EPOCHS": "1",
           "EDGEREC_TRAIN_MODELS": "crban_hubsm_ie_ipv", "EDGEREC_RECALL_EPOCHS": "1",
           "EDGEREC_REPLAY_USERS": "0"}  # 25 users' replay is noise; the replay gate is tested on its own
    with stack.running_airflow(stack_settings, tmp_path_factory.mktemp("past-airflow"), env) as api:
        api.unpause(stack.DAILY_DAG)
        yield load_settings(env), api, backfill(api, past_logs.DAYS)


@pytest.fixture(scope="session", autouse=True)
def backfill_beside_the_other_tests(request):
    """When the backfill test is selected, its scheduler starts with the group's first test and backfills while the
    others run: the group's two long parts side by side, sharing the cores (as a team's one machine would)."""
    if any(item.path.name == "test_airflow_backfill.py" for item in request.session.items):
        request.getfixturevalue("past_backfill")
