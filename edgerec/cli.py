"""`edgerec`: one sub-command per pipeline stage; every stage runs without Airflow."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from edgerec.errors import ConfigError

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
logs_app = typer.Typer(help="Raw client logs: validate against the contract.", no_args_is_help=True)
sim_app = typer.Typer(help="Behaviour simulator diagnostics.", no_args_is_help=True)
raw_app = typer.Typer(help="The raw-zone stages of the daily DAG, for one ds.", no_args_is_help=True)
airflow_app = typer.Typer(help="The embedded Airflow home.", no_args_is_help=True)
spark_app = typer.Typer(help="Spark jobs for one ds: ingest, sessionize, requests, bucketize, or all.",
                        no_args_is_help=True)
app.add_typer(spark_app, name="spark")
app.add_typer(logs_app, name="logs")
app.add_typer(sim_app, name="sim")
app.add_typer(raw_app, name="raw")
app.add_typer(airflow_app, name="airflow")


def _fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(code)


def _settings():
    from edgerec.config import load_settings

    try:
        return load_settings()
    except ConfigError as error:
        _fail(str(error))


@app.command()
def simulate(
    out: Annotated[Path, typer.Option(help="raw-zone root to write events/ and items/ into")] = Path("raw"),
    users: Annotated[int | None, typer.Option(help="simulated users [default: 1000]")] = None,
    days: Annotated[int | None, typer.Option(help="simulated days [default: 1]")] = None,
    seed: Annotated[int | None, typer.Option(help="seed of everything random [default: 7]")] = None,
    start_date: Annotated[str | None, typer.Option(help="first day, YYYY-MM-DD [default: 2026-11-01]")] = None,
    corrupt_rate: Annotated[float | None, typer.Option(help="share of lines made bad on purpose")] = None,
    config: Annotated[Path | None, typer.Option(help="JSON file with simulator knobs")] = None,
) -> None:
    """Simulate client behaviour logs into the raw-zone layout (byte-identical for the same seed)."""
    from edgerec.sim.config import load_sim_config
    from edgerec.sim.writer import simulate as run

    try:
        cfg = load_sim_config(config, users=users, days=days, seed=seed, start_date=start_date,
                              corrupt_rate=corrupt_rate)
    except ConfigError as error:
        _fail(str(error))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=True, disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task("simulating users x days", total=cfg.users * cfg.days)

        def advance(day: dt.date, done: int) -> None:
            progress.update(task, completed=(day - cfg.start_date).days * cfg.users + done,
                            description=f"simulating {day}")

        summary = run(cfg, out, progress=advance)
    for ds, day in summary["days"].items():
        corrupted = sum(day["corrupted_by_kind"].values())
        typer.echo(f"ds={ds}: {day['events']:,} events, {day['lines']:,} lines"
                   + (f", {corrupted:,} corrupted" if corrupted else "") + f" -> {day['events_path']}")


@logs_app.command("validate")
def logs_validate(
    path: Annotated[Path, typer.Argument(help="a .jsonl(.gz) file, a ds=... partition, or an events/ root")],
    catalog: Annotated[Path | None, typer.Option(help="items.parquet for the unknown-item check "
                                                      "[default: the raw zone's snapshot]")] = None,
    quarantine: Annotated[Path | None, typer.Option(help="write bad rows here as JSON lines")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Count good rows and bad rows by reason; never stops on a bad row."""
    import pyarrow.parquet as pq

    from edgerec.contracts import LogValidator
    from edgerec.contracts.validate import find_catalog

    catalog = catalog or find_catalog(path)
    known = pq.read_table(catalog, columns=["item_id"])["item_id"].to_pylist() if catalog else None
    if known is None:
        typer.secho("no catalog found: the unknown-item check is skipped", fg="yellow", err=True)
    try:
        if quarantine:
            quarantine.parent.mkdir(parents=True, exist_ok=True)
            with quarantine.open("w") as sink:
                report = LogValidator(known, sink).validate_path(path)
        else:
            report = LogValidator(known).validate_path(path)
    except FileNotFoundError as error:
        _fail(str(error))
    typer.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.render())
    if quarantine and report.bad:
        typer.echo(f"bad rows written to {quarantine}")


@sim_app.command("stats")
def sim_stats(
    path: Annotated[Path, typer.Argument(help="a raw-zone events/ root, a ds=... partition or a file")],
    catalog: Annotated[Path | None, typer.Option(help="items.parquet [default: the raw zone's]")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the statistics as JSON")] = False,
) -> None:
    """CTR by position, fatigue, sudden preference and dwell time: the dynamics of a log."""
    from edgerec.sim.stats import render_stats, stats_of_path

    try:
        stats = stats_of_path(path, catalog)
    except FileNotFoundError as error:
        _fail(str(error))
    typer.echo(json.dumps(stats.to_dict(), indent=2) if as_json else render_stats(stats))


@raw_app.command("simulate")
def raw_simulate(ds: Annotated[str, typer.Option(help="logical date YYYY-MM-DD")]) -> None:
    """Simulate one day of the configured world into the state directory's raw zone."""
    from edgerec.stages import simulate_day

    typer.echo(json.dumps(simulate_day(_settings(), ds), indent=2))


@raw_app.command("validate")
def raw_validate(ds: Annotated[str, typer.Option(help="logical date YYYY-MM-DD")]) -> None:
    """Validate one day's raw partition, quarantine bad rows; exit 1 above EDGEREC_MAX_BAD_SHARE."""
    from edgerec.stages import BadShareExceeded, validate_raw

    try:
        result = validate_raw(_settings(), ds)
    except (BadShareExceeded, FileNotFoundError) as error:
        _fail(str(error), code=1)
    typer.echo(json.dumps(result, indent=2))


@spark_app.command("run")
def spark_run(
    job: Annotated[str, typer.Argument(help="ingest | sessionize | requests | bucketize | all")],
    ds: Annotated[str, typer.Option(help="logical date YYYY-MM-DD")],
    master: Annotated[str | None, typer.Option(help="Spark master [default: EDGEREC_SPARK_MASTER or local[*]]")]
    = None,
) -> None:
    """Run Spark jobs for one ds in one session; prints their figures and seconds (also in spark_summary.json)."""
    from edgerec.stages import BadShareExceeded
    from spark_jobs.jobs import JOBS, run_jobs

    if job != "all" and job not in JOBS:
        _fail(f"unknown job {job!r}; choose one of {', '.join(JOBS)} or all")
    settings = _settings()
    if master:
        settings = settings.model_copy(update={"spark_master": master})
    try:
        result = run_jobs(settings, ds, list(JOBS) if job == "all" else [job])
    except (BadShareExceeded, FileNotFoundError, ValueError) as error:
        _fail(str(error), code=1)
    typer.echo(json.dumps(result, indent=2))


@airflow_app.command("init")
def airflow_init() -> None:
    """Create the Airflow home and metadata DB in the state directory (quick when already done)."""
    from edgerec.orchestration import init_airflow

    typer.echo(f"AIRFLOW_HOME={init_airflow(_settings())}")


@app.command()
def run(
    date: Annotated[str | None, typer.Option(help="logical date [default: EDGEREC_RUN_DATE or 2026-11-01]")] = None,
) -> None:
    """The main job: run the daily DAG for one date with Airflow in-process, then show its outputs."""
    from edgerec.orchestration import test_dag
    from edgerec.sim.stats import render_stats, stats_of_path

    settings = _settings()
    ds = date or str(settings.run_date)
    code = test_dag(settings, "edgerec_daily_retrain", ds)
    if code != 0:
        _fail(f"the daily DAG failed for ds={ds} (airflow exit code {code}); see the task logs above", code)
    day = settings.layout(ds)
    validation = json.loads((day.reports / "raw_validation.json").read_text())
    typer.secho(f"\n== edgerec_daily_retrain ds={ds} succeeded ==", fg="green", bold=True)
    typer.echo(f"state directory  {settings.home}")
    typer.echo(f"raw events       {day.raw_events}")
    typer.echo(f"item catalog     {day.raw_items}")
    typer.echo(f"validation       {day.reports / 'raw_validation.json'}: {validation['good']:,} good rows, "
               f"{validation['bad']:,} bad")
    typer.echo(f"quarantine       {day.quarantine_raw} (raw validation), "
               f"{settings.dataset('quarantine')}/ds={ds} (Spark ingest)")
    typer.echo(f"warehouse        {settings.warehouse}: events, sessions, requests, features (ds={ds})")
    typer.echo(f"feature spec     {day.feature_spec}")
    spark = json.loads((day.reports / "spark_summary.json").read_text())
    req = spark["requests"]
    typer.echo(f"requests         {req['requests']:,} re-ranking requests, mean IE length {req['mean_ie_length']}, "
               f"mean IPV length {req['mean_ipv_length']}, label rate {req['label_rate']}")
    typer.echo(f"\n== behaviour statistics of ds={ds} ==")
    typer.echo(render_stats(stats_of_path(day.raw_events, day.raw_items)))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
