"""Release a model version on a channel, by hand: promote (version, channel, percent) or roll back (channel).

Trigger with params; the plan task verifies the version and shows what would change, a release manager approves
or rejects it in the Airflow UI (human-in-the-loop), and only then the channel moves. The same actions run
without Airflow as `edgerec release promote|rollback`.
"""

from __future__ import annotations

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Param, dag, task

from edgerec.alerts import on_task_failure
from edgerec.config import DAG_START, load_settings
from pipeline import stages


@dag(
    dag_id="edgerec_release",
    schedule=None,
    start_date=DAG_START,
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "edgerec", "retries": 0, "on_failure_callback": on_task_failure},
    params={
        "action": Param("promote", enum=["promote", "rollback"], description="promote a version or roll back"),
        "version": Param("", type="string", description="version id or registry number (promote)"),
        "channel": Param("canary", enum=["canary", "stable"], description="the channel to move"),
        "percent": Param(100.0, type="number", minimum=0, maximum=100, description="share of devices (promote)"),
        "reason": Param("", type="string", minLength=1, description="why, for the audit log"),
    },
    tags=["edgerec", "release"],
    doc_md=__doc__,
)
def edgerec_release():
    @task
    def plan(params: dict | None = None) -> str:
        """Verify what the channel would point to; fail before anyone is asked to approve something broken."""
        return stages.plan_release(load_settings(), params["action"], params["channel"], params["version"])

    approve = ApprovalOperator(
        task_id="approve",
        subject="EdgeRec release: {{ params.action }} {{ params.channel }} {{ params.version }}",
        body="{{ ti.xcom_pull(task_ids='plan') }}\n\nReason: {{ params.reason }}",
    )

    @task
    def apply(params: dict | None = None) -> str:
        return stages.apply_release(load_settings(), params["action"], params["channel"], params["version"],
                                    params["percent"], params["reason"])

    plan() >> approve >> apply()


edgerec_release()
