"""`edgerec stack`: the at-scale twins on one machine (pipeline/stack.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from pipeline.cli.base import fail, group, settings_from_env

stack_app = group("stack", "The at-scale twins on one machine: Spark cluster, MLflow server, Airflow scheduler.")


@stack_app.command("run")
def stack_run(
    date: Annotated[str | None, typer.Option(help="last logical date, YYYY-MM-DD [default: EDGEREC_RUN_DATE or "
                                                  "2026-11-03]")] = None,
    days: Annotated[int, typer.Option(min=1, max=366, help="days to run, oldest first, ending at --date")] = 2,
) -> None:
    """The daily DAG as production runs it, on one machine: start a Spark standalone cluster (a master, two workers),
    S3 (moto's server) and an MLflow server on a new PostgreSQL database, and Airflow's scheduler (LocalExecutor),
    DAG processor and API server on another; trigger one run per day through Airflow's REST API and wait for it;
    print each task's state as it ends; stop everything and drop the databases.

    Servers' logs and generated secrets: $EDGEREC_HOME/stack (mode 0700). The PostgreSQL server:
    EDGEREC_STACK_POSTGRES_URL."""
    from edgerec.config import check_logical_date, days_back
    from pipeline import stack

    settings = settings_from_env()
    last = check_logical_date(date or str(settings.run.date))
    wanted = days_back(last, days - 1)  # days_back: ds and the n days before it
    try:
        with stack.whole_stack(settings, lambda what: typer.echo(f"starting {what} ...")) as api:
            typer.echo(f"Airflow API {api.airflow.url} (user {stack.AIRFLOW_USER}, password in "
                       f"{api.airflow.password_file})")
            for ds in wanted:
                typer.secho(f"\n== ds={ds}: triggered through the REST API ...", bold=True)
                state, _ = stack.run_day(api, ds, settings.stack.run_timeout_s,
                                         lambda task, task_state: typer.echo(f"  {task:<20} {task_state}"))
                if state != "success":
                    fail(f"the run of ds={ds} ended {state}; task logs under {settings.home / 'stack' / 'airflow'}",
                         code=1)
                typer.secho(f"ds={ds}: {state}", fg="green")
    except KeyboardInterrupt:
        typer.echo("stopped the stack")
