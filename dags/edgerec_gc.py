"""Daily clean-up of deployed versions: embeddings and bundle files of versions that no channel holds (current or
previous) and that are older than EDGEREC_RELEASE_RETENTION_DAYS. Same as `edgerec release gc`."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import dag, task

from edgerec.alerts import on_task_failure
from edgerec.config import DAG_START, load_settings
from pipeline import stages


@dag(
    dag_id="edgerec_gc",
    schedule="@daily",
    start_date=DAG_START,
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "edgerec", "retries": 1, "retry_delay": dt.timedelta(minutes=10),
                  "on_failure_callback": on_task_failure},
    tags=["edgerec", "release"],
    doc_md=__doc__,
)
def edgerec_gc():
    @task
    def collect() -> list[str]:
        return stages.gc(load_settings())

    collect()


edgerec_gc()
