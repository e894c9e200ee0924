"""Daily retrain of the EdgeRec re-ranker for one logical date (ds).

simulate (embedded source) -> validate raw -> spark (ingest -> sessionize -> requests -> bucketize, one task)
-> data quality (raw, features) -> dbt build (marts) -> data quality (marts), then three branches:
- recall (the cloud's two-tower candidate generation): train and compare, register -> recall gate -> export (ONNX
  user tower, item embeddings, ANN index) -> deploy (batch user vectors into the key-value store, bundle onto the
  CDN, verified) and point the `recall` channel at it;
- canary analysis (the day's logs per model version the devices ran) -> release decision (guardrails: the canary to
  stable, rolled back, or waiting);
- train (the paper's models, MLflow, a new registered version) -> evaluation gate (blessed or refused, with the
  reason) -> export (the bundle) -> servability gate (ONNX parity, size, counted budgets) -> replay gate (the bundle
  on the next day's simulated users against the cloud's order) -> deploy (embeddings into the key-value store, bundle
  onto the CDN, each verified) -> promote to the canary channel.
A blocking data-quality failure fails its task, so nothing after it runs that day; every failed task
alerts through the configured notifiers (edgerec.alerts).
Thin wiring only: each task calls one function of the stages index (`pipeline.stages`; each is also a CLI
command), is idempotent on its ds partition, and passes small values (paths, figures, version ids), never data,
through XCom.
"""

from __future__ import annotations

import contextlib
import datetime as dt

from airflow.sdk import dag, task
from airflow.sdk.exceptions import AirflowSkipException

from edgerec.alerts import on_task_failure
from edgerec.config import DAG_START, load_settings
from edgerec.errors import NoTrainingData
from edgerec.gates import GateRefused
from edgerec.registry import ModelVersion
from pipeline import stages

DEFAULT_ARGS = {
    "owner": "edgerec",
    "retries": load_settings().run.task_retries,  # a bad EDGEREC_* value fails the import naming the variable
    "retry_delay": dt.timedelta(minutes=2),
    "on_failure_callback": on_task_failure,
}


@contextlib.contextmanager
def refusal_skips():
    """A gate's refusal (already alerted) skips what follows, unless it stops the day (data quality)."""
    try:
        yield
    except GateRefused as refused:
        if refused.verdict.blocks_day:
            raise
        raise AirflowSkipException(str(refused)) from None


@dag(
    dag_id="edgerec_daily_retrain",
    schedule="@daily",
    start_date=DAG_START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["edgerec"],
    doc_md=__doc__,
)
def edgerec_daily_retrain():
    @task
    def simulate_raw(ds: str | None = None) -> str:
        """Embedded default source: simulate the day's client logs (skipped when EDGEREC_SOURCE=external)."""
        settings = load_settings()
        if settings.source != "simulator":
            raise AirflowSkipException("EDGEREC_SOURCE=external: client logs arrive in the raw zone")
        return stages.simulate(settings, ds)["events_path"]

    @task(trigger_rule="none_failed")
    def validate_raw(ds: str | None = None) -> str:
        """Check the day's raw logs against the contract; quarantine bad rows; fail above the threshold."""
        return stages.validate_raw(load_settings(), ds)["quarantine"]

    @task
    def spark(ds: str | None = None) -> dict:
        """Ingest -> sessionize -> requests -> bucketize, one Spark application for the four: a small day's cost is
        each application's start and cold planning, not its events. A retry reruns the four (each overwrites its ds
        partitions); a failure names the job."""
        return stages.spark(load_settings(), ds)

    def quality(layer: str):
        @task(task_id=f"quality_{layer}", retries=0)  # data does not get better by retrying
        def run(ds: str | None = None) -> str:
            """Great Expectations suites of the layer; fails on a blocking check, alerts on every failure."""
            return stages.quality(load_settings(), ds, layer).docs_index

        return run()

    @task
    def dbt_build(ds: str | None = None) -> str:
        """dbt build: staging -> intermediate -> marts (train/test requests, items, daily stats) with tests."""
        return stages.marts(load_settings(), ds)["database"]

    @task
    def canary_analysis(ds: str | None = None) -> dict:
        """The day's logs per model version the devices ran; the canary against stable and the cloud's order."""
        report = stages.canary_analysis(load_settings(), ds)
        print(report.to_markdown())
        return {"canary": report.canary, "stable": report.stable, "cohorts": sorted(report.versions)}

    @task(retries=0)  # a decision does not change by retrying
    def release_decision(analysis: dict, ds: str | None = None) -> str:
        """The guardrails' decision on the day's canary: promote it to stable, roll it back and alert, or wait."""
        decision = stages.release_decision(load_settings(), ds)
        return f"{decision.action}: {'; '.join(decision.reasons)}"

    # From training on, each task hands the next the day's ModelVersion (as a dict: XComs are JSON)
    @task
    def train(ds: str | None = None) -> dict:
        """Train and compare the paper's models; register the full model (skipped while the train mart is empty)."""
        try:
            return stages.train(load_settings(), ds).to_dict()
        except NoTrainingData as error:
            raise AirflowSkipException(str(error)) from None

    @task
    def train_recall(ds: str | None = None) -> str:
        """Train and compare the cloud's recall models; register PWPRec(LS) (skipped while a recall mart is empty)."""
        try:
            return stages.train_recall(load_settings(), ds).version_id
        except NoTrainingData as error:
            raise AirflowSkipException(str(error)) from None

    @task(retries=0)  # a verdict does not change by retrying
    def recall_gate(version_id: str, ds: str | None = None) -> str:
        """Bless the recall version or refuse it (alerted; nothing after it uses an unblessed version)."""
        with refusal_skips():
            return stages.recall_gate(load_settings(), ds).reason

    @task
    def export_recall(reason: str, ds: str | None = None) -> str:
        """The blessed recall version as its signed bundle: ONNX user tower, item embeddings, ANN index."""
        return str(stages.export_recall(load_settings(), ds))

    @task
    def deploy_recall(bundle: str, ds: str | None = None) -> str:
        """Batch user vectors into the KV and the recall bundle onto the CDN, verified; then the `recall` channel."""
        return stages.deploy_recall(load_settings(), ds)

    @task(retries=0)  # a verdict does not change by retrying
    def evaluation_gate(version: dict, ds: str | None = None) -> dict:
        """Bless the version or refuse it; a refusal alerts and skips what follows (nothing unblessed ships)."""
        with refusal_skips():
            stages.evaluation_gate(load_settings(), ds, ModelVersion.from_dict(version))
        return version

    @task
    def export(version: dict, ds: str | None = None) -> dict:
        """The blessed version as a bundle: ONNX step encoders and re-ranker, embedding shards, manifest."""
        print(stages.export(load_settings(), ds, ModelVersion.from_dict(version)))
        return version

    @task(retries=0)  # a verdict does not change by retrying
    def servability_gate(version: dict, ds: str | None = None) -> dict:
        """Integrity, ONNX parity, step encodings, size and counted budgets; a failure alerts and skips deploy."""
        with refusal_skips():
            print(stages.servability_gate(load_settings(), ds, ModelVersion.from_dict(version)).to_markdown())
        return version

    @task(retries=0)  # a verdict does not change by retrying
    def replay_gate(version: dict, ds: str | None = None) -> dict:
        """The bundle against the cloud's order on the next day's simulated users; losing clicks with confidence
        alerts and skips deploy."""
        with refusal_skips():
            print(stages.replay_gate(load_settings(), ds, ModelVersion.from_dict(version)).reason)
        return version

    @task
    def deploy(version: dict, ds: str | None = None) -> dict:
        """Embeddings into the KV, verified; the bundle onto the CDN, verified. A retry resumes the push."""
        stages.deploy(load_settings(), ds, ModelVersion.from_dict(version))
        return version

    @task(retries=0)  # a refused promotion is a decision, not a glitch
    def promote_canary(version: dict, ds: str | None = None) -> str:
        """Point `canary` at the version for EDGEREC_RELEASE_CANARY_PERCENT of devices (verified again first)."""
        return stages.promote_canary(load_settings(), ds, ModelVersion.from_dict(version))

    jobs = spark()
    simulate_raw() >> validate_raw() >> jobs
    # One gate at a time: they share the Great Expectations project (its config and Data Docs site).
    marts = jobs >> quality("raw") >> quality("features") >> dbt_build() >> quality("marts")
    version = train()
    marts >> version
    judged = canary_analysis()
    marts >> judged
    release_decision(judged)
    recall = train_recall()
    marts >> recall
    deploy_recall(export_recall(recall_gate(recall)))
    promote_canary(deploy(replay_gate(servability_gate(export(evaluation_gate(version))))))


edgerec_daily_retrain()
