import pytest

from edgerec.config import DAGS_FOLDER

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    with pytest.MonkeyPatch.context() as env:
        env.delenv("EDGEREC_RUN_TASK_RETRIES", raising=False)
        yield DagBag(dag_folder=str(DAGS_FOLDER))


def test_dags_import_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert {"edgerec_daily_retrain", "edgerec_release", "edgerec_gc"} <= set(dagbag.dags)


def test_daily_dag_wiring(dagbag):
    dag = dagbag.dags["edgerec_daily_retrain"]
    assert dag.task_dict["validate_raw"].upstream_task_ids == {"simulate_raw"}
    assert dag.task_dict["spark"].upstream_task_ids == {"validate_raw"}  # the four Spark jobs, one application
    assert dag.task_dict["validate_raw"].trigger_rule == "none_failed"  # runs when simulation is skipped
    assert dag.task_dict["quality_raw"].upstream_task_ids == {"spark"}
    assert dag.task_dict["quality_features"].upstream_task_ids == {"quality_raw"}
    assert dag.task_dict["dbt_build"].upstream_task_ids == {"quality_features"}
    assert dag.task_dict["quality_marts"].upstream_task_ids == {"dbt_build"}
    assert dag.task_dict["train"].upstream_task_ids == {"quality_marts"}
    assert dag.task_dict["canary_analysis"].upstream_task_ids == {"quality_marts"}
    assert dag.task_dict["canary_analysis"].downstream_task_ids == {"release_decision"}  # it blocks no training
    assert dag.task_dict["release_decision"].downstream_task_ids == set()
    assert dag.task_dict["train_recall"].upstream_task_ids == {"quality_marts"}  # beside the re-ranker's branch
    assert dag.task_dict["recall_gate"].upstream_task_ids == {"train_recall"}
    assert dag.task_dict["export_recall"].upstream_task_ids == {"recall_gate"}
    assert dag.task_dict["deploy_recall"].upstream_task_ids == {"export_recall"}
    assert dag.task_dict["evaluation_gate"].upstream_task_ids == {"train"}
    assert dag.task_dict["export"].upstream_task_ids == {"evaluation_gate"}
    assert dag.task_dict["servability_gate"].upstream_task_ids == {"export"}
    assert dag.task_dict["replay_gate"].upstream_task_ids == {"servability_gate"}
    assert dag.task_dict["deploy"].upstream_task_ids == {"replay_gate"}
    assert dag.task_dict["promote_canary"].upstream_task_ids == {"deploy"}
    assert all(t.trigger_rule == "all_success" for t in dag.tasks if t.task_id != "validate_raw")
    gates = {"evaluation_gate", "servability_gate", "replay_gate", "promote_canary", "release_decision",
             "recall_gate"}
    never_retried = {t.task_id for t in dag.tasks if t.task_id.startswith("quality_")} | gates
    assert all(t.retries == (0 if t.task_id in never_retried else 2) for t in dag.tasks)  # bad data stays bad
    assert all(t.on_failure_callback for t in dag.tasks)
    assert dag.catchup is False


def test_release_dag_asks_for_approval_before_it_moves_a_channel(dagbag):
    dag = dagbag.dags["edgerec_release"]
    assert dag.schedule is None  # triggered by a release manager
    assert dag.task_dict["approve"].upstream_task_ids == {"plan"}
    assert dag.task_dict["apply"].upstream_task_ids == {"approve"}
    assert type(dag.task_dict["approve"]).__name__ == "ApprovalOperator"
    assert set(dag.params) == {"action", "version", "channel", "percent", "reason"}
    assert all(t.retries == 0 for t in dag.tasks)


def test_gc_dag_runs_daily(dagbag):
    dag = dagbag.dags["edgerec_gc"]
    assert list(dag.task_dict) == ["collect"] and dag.catchup is False
