"""Daily retrain of the EdgeRec re-ranker for one logical date (ds).

simulate (embedded source) -> validate raw -> spark ingest -> sessionize -> requests -> bucketize
-> data quality (raw, features) -> dbt build (marts) -> data quality (marts) -> train (the paper's models,
MLflow, a new registered version) -> evaluation gate (blessed or refused, with the reason) -> export (the
bundle) -> servability gate (ONNX parity, size, latency) -> deploy (embeddings into the key-value store, bundle onto
the CDN, each verified) -> promote to the canary channel.
A blocking data-quality failure fails its task, so nothing after it runs that day; every failed task
alerts through the configured notifiers (edgerec.alerts).
Thin wiring only: each task calls one stage function of the `edgerec` package (also a CLI command), is
idempotent on its ds partition, and passes paths, never data, through XCom.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import dag, task

from edgerec.alerts import on_task_failure
from edgerec.config import load_settings

DEFAULT_ARGS = {
    "owner": "edgerec",
    "retries": load_settings().task_retries,  # a bad EDGEREC_* value fails the import naming the variable
    "retry_delay": dt.timedelta(minutes=2),
    "on_failure_callback": on_task_failure,
}


@dag(
    dag_id="edgerec_daily_retrain",
    schedule="@daily",
    start_date=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
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
        from airflow.sdk.exceptions import AirflowSkipException

        from edgerec.stages import simulate_day

        settings = load_settings()
        if settings.source != "simulator":
            raise AirflowSkipException("EDGEREC_SOURCE=external: client logs arrive in the raw zone")
        return simulate_day(settings, ds)["events_path"]

    @task(trigger_rule="none_failed")
    def validate_raw(ds: str | None = None) -> str:
        """Check the day's raw logs against the contract; quarantine bad rows; fail above the threshold."""
        from edgerec.stages import validate_raw as validate

        return validate(load_settings(), ds)["quarantine"]

    def spark_job(name: str):
        @task(task_id=f"spark_{name}")
        def run(ds: str | None = None) -> str:
            from spark_jobs.jobs import run_jobs

            settings = load_settings()
            run_jobs(settings, ds, [name])
            return str(settings.layout(ds).spark_summary)

        return run()

    def quality(layer: str):
        @task(task_id=f"quality_{layer}", retries=0)  # data does not get better by retrying
        def run(ds: str | None = None) -> str:
            """Great Expectations suites of the layer; fails on a blocking check, alerts on every failure."""
            from edgerec.quality.gate import run_quality

            return run_quality(load_settings(), ds, layer).docs_index

        return run()

    @task
    def dbt_build(ds: str | None = None) -> str:
        """dbt build: staging -> intermediate -> marts (train/test requests, items, daily stats) with tests."""
        from edgerec.marts import build_marts

        return build_marts(load_settings(), ds)["database"]

    @task
    def train(ds: str | None = None) -> str:
        """Train and compare the paper's models; register the full model (skipped while the train mart is empty)."""
        from airflow.sdk.exceptions import AirflowSkipException

        from training.pipeline import NoTrainingData, train_day

        try:
            summary = train_day(load_settings(), ds)
        except NoTrainingData as error:
            raise AirflowSkipException(str(error)) from None
        print(summary["table"])
        return summary["version"]

    @task(retries=0)  # a verdict does not change by retrying
    def evaluation_gate(ds: str | None = None) -> str:
        """Bless the day's version or refuse it; a refusal alerts and skips what follows (nothing unblessed ships)."""
        from airflow.sdk.exceptions import AirflowSkipException

        from edgerec.alerts import Alert, notifier_from_settings
        from training.pipeline import gate_day

        settings = load_settings()
        verdict = gate_day(settings, ds)
        if not verdict.blessed:
            notifier_from_settings(settings).send([Alert(
                level="warn", check="training.evaluation_gate", observed=f"version {verdict.version} "
                f"({verdict.version_id}) GAUC {verdict.gauc:.5f}", threshold=verdict.reason, ds=ds)])
            raise AirflowSkipException(f"version {verdict.version} refused: {verdict.reason}")
        return verdict.version

    @task
    def export(ds: str | None = None) -> str:
        """The blessed version as a bundle: ONNX step encoders and re-ranker, embedding shards, manifest."""
        from training.pipeline import export_day

        return str(export_day(load_settings(), ds))

    @task(retries=0)  # a verdict does not change by retrying
    def servability_gate(ds: str | None = None) -> str:
        """ONNX parity, step encodings, size and latency budgets; a failure alerts and skips deploy."""
        from airflow.sdk.exceptions import AirflowSkipException

        from edgerec.alerts import Alert, notifier_from_settings
        from training.pipeline import servability_day

        settings = load_settings()
        report = servability_day(settings, ds)
        print(report.to_markdown())
        if not report.passed:
            notifier_from_settings(settings).send([Alert(
                level="warn", check="export.servability_gate", observed=f"bundle {report.version}: "
                + "; ".join(report.failures), threshold="every check of training.servability", ds=ds)])
            raise AirflowSkipException(f"bundle {report.version} is not servable: {'; '.join(report.failures)}")
        return report.version

    @task
    def deploy(ds: str | None = None) -> str:
        """Embeddings into the KV, verified; the bundle onto the CDN, verified. A retry resumes the push."""
        from deploy.pipeline import deploy_day

        return deploy_day(load_settings(), ds).version

    @task(retries=0)  # a refused promotion is a decision, not a glitch
    def promote_canary(ds: str | None = None) -> str:
        """Point `canary` at the day's version for EDGEREC_CANARY_PERCENT of devices (verified again first)."""
        from deploy.pipeline import canary_day

        return canary_day(load_settings(), ds)

    spark = [spark_job(name) for name in ("ingest", "sessionize", "requests", "bucketize")]
    simulate_raw() >> validate_raw() >> spark[0] >> spark[1] >> spark[2] >> spark[3]
    # One gate at a time: they share the Great Expectations project (its config and Data Docs site).
    marts = spark[3] >> quality("raw") >> quality("features") >> dbt_build() >> quality("marts")
    marts >> train() >> evaluation_gate() >> export() >> servability_gate() >> deploy() >> promote_canary()


edgerec_daily_retrain()
