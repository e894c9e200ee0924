"""Commands of the raw zone and the warehouse: simulate, logs, sim, raw, spark, dbt, quality."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pipeline.cli.base import app, fail, group, settings_from_env

logs_app = group("logs", "Raw client logs: validate against the contract; check a raw zone before a backfill; the "
                         "exploration bucket's position bias.")
sim_app = group("sim", "Behaviour simulator diagnostics.")
raw_app = group("raw", "The raw-zone stages of the daily DAG, for one ds.")
spark_app = group("spark", "Spark jobs for one ds: ingest, sessionize, requests, bucketize, or all.")
dbt_app = group("dbt", "The dbt marts (dbt/): train/test requests, items, daily stats.")
quality_app = group("quality", "Data-quality gates (Great Expectations) for one ds.")


@app.command()
def simulate(
    out: Annotated[Path, typer.Option(help="raw-zone root to write events/ and items/ into")] = Path("raw"),
    users: Annotated[int | None, typer.Option(help="simulated users [default: 1000]")] = None,
    days: Annotated[int | None, typer.Option(help="simulated days [default: 1]")] = None,
    seed: Annotated[int | None, typer.Option(help="seed of everything random [default: 7]")] = None,
    start_date: Annotated[str | None, typer.Option(help="first day, YYYY-MM-DD [default: 2026-11-01]")] = None,
    corrupt_rate: Annotated[float | None, typer.Option(help="share of lines made bad on purpose")] = None,
    config: Annotated[Path | None, typer.Option(help="JSON file with simulator knobs over the world's")] = None,
    world: Annotated[str, typer.Option(help="named world: default (the paper's feed) or revisit (what public "
                                            "session logs have: returns to viewed items, short rank-only lists, "
                                            "100k items); see docs/worlds.md")] = "default",
) -> None:
    """Simulate client behaviour logs into the raw-zone layout (byte-identical for the same seed)."""
    from edgerec.sim.config import load_sim_config
    from edgerec.sim.writer import simulate as run

    cfg = load_sim_config(config, preset=world, users=users, days=days, seed=seed, start_date=start_date,
                          corrupt_rate=corrupt_rate)
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
    if quarantine:
        quarantine.parent.mkdir(parents=True, exist_ok=True)
        with quarantine.open("w") as sink:
            report = LogValidator(known, sink).validate_path(path)
    else:
        report = LogValidator(known).validate_path(path)
    typer.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.render())
    if quarantine and report.bad:
        typer.echo(f"bad rows written to {quarantine}")


@logs_app.command("check")
def logs_check(
    raw: Annotated[Path, typer.Argument(help="a raw zone: events/ds=YYYY-MM-DD/*.jsonl.gz, "
                                             "items/ds=YYYY-MM-DD/items.parquet")],
    date: Annotated[str | None, typer.Option(help="last day to check, YYYY-MM-DD [default: every day found]")] = None,
    days: Annotated[int, typer.Option(min=1, max=366, help="with --date: days ending at it")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="print the check as JSON")] = False,
) -> None:
    """Before a first backfill of external logs: per day the rows and the bad share, events by type, page requests
    and how many carry a logged re-rank, list lengths, cloud scores, the catalog and whether the day can run.
    Reads the logs with the contract's validator, before any Spark job; writes nothing. Exit 1 if a day is not
    ready."""
    from edgerec.config import days_back
    from edgerec.raw import check_raw_zone, render_raw_check

    settings = settings_from_env()
    wanted = days_back(date, days - 1) if date else None
    checks = check_raw_zone(raw, wanted, settings.quality.max_bad_share)
    typer.echo(json.dumps([c.to_dict() for c in checks], indent=2) if as_json else render_raw_check(raw, checks))
    ready = [c.ds for c in checks if not c.problems]
    if len(ready) < len(checks):
        fail(f"{len(checks) - len(ready)} of {len(checks)} day(s) not ready (the problems above)", code=1)
    if not as_json and days_back(ready[-1], len(ready) - 1) == ready:  # consecutive days: one backfill
        typer.echo(f"\nready: EDGEREC_SOURCE=external EDGEREC_RAW_DIR={raw} edgerec run --date {ready[-1]} "
                   f"--days {len(ready)}")


@logs_app.command("positions")
def logs_positions(
    path: Annotated[Path, typer.Argument(help="a raw-zone events/ root, a ds=... partition or a file")],
    band: Annotated[int, typer.Option(min=1, max=100, help="display positions per band")] = 5,
    positions: Annotated[int, typer.Option(min=1, max=1_000, help="display positions to estimate")] = 50,
    rounds: Annotated[int, typer.Option(min=0, max=1_000, help="bootstrap draws over users for the intervals")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="print the curve as JSON")] = False,
) -> None:
    """Position bias from the exploration bucket: how much each band of display positions is looked at, relative to
    the first, from the exposures and clicks of the re-ranks logged with `exploration` (docs/exploration.md), with
    bootstrap intervals, beside the raw click-through rate by position. Rows that break the contract are left out."""
    from edgerec.edge.exploration import examination_curve
    from edgerec.sim.stats import read_events

    events, skipped = read_events(path)
    curve = examination_curve(events, positions, band, rounds)
    if curve is None:
        fail(f"no exposure under an explored re-rank in {path}: no device of an exploration bucket logged there "
             "(re-ranks with `exploration`, docs/exploration.md)", code=1)
    if as_json:
        typer.echo(json.dumps({"path": str(path), "bad_rows_left_out": skipped} | curve, indent=2))
        return
    typer.echo(f"{path}: {curve['explored_exposures']:,} explored exposures, {curve['clicks']:,} clicks"
               + (f" ({skipped:,} bad rows left out)" if skipped else "") + "\n")
    typer.echo("| positions | examination (95% interval) | raw CTR by position | exposures | clicks |")
    typer.echo("|---|---|---|---|---|")
    for b in curve["bands"]:
        typer.echo(f"| {b['positions']} | {b['estimate']:.3f} [{b['low']:.3f}, {b['high']:.3f}] | "
                   f"{b['raw_ctr_ratio']:.3f} | {b['exposures']:,} | {b['clicks']:,} |")


@sim_app.command("stats")
def sim_stats(
    path: Annotated[Path, typer.Argument(help="a raw-zone events/ root, a ds=... partition or a file")],
    catalog: Annotated[Path | None, typer.Option(help="items.parquet [default: the raw zone's]")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the statistics as JSON")] = False,
) -> None:
    """CTR by position, fatigue, sudden preference and dwell time: the dynamics of a log."""
    from edgerec.sim.stats import render_stats, stats_of_path

    stats = stats_of_path(path, catalog)
    typer.echo(json.dumps(stats.to_dict(), indent=2) if as_json else render_stats(stats))


@raw_app.command("simulate")
def raw_simulate(ds: Annotated[str, typer.Option(help="logical date YYYY-MM-DD")]) -> None:
    """Simulate one day of the configured world into the state directory's raw zone, each device running what the
    release channels assign it now (the DAG's simulate task)."""
    from pipeline.stages import simulate

    typer.echo(json.dumps(simulate(settings_from_env(), ds), indent=2))


@raw_app.command("validate")
def raw_validate(ds: Annotated[str, typer.Option(help="logical date YYYY-MM-DD")]) -> None:
    """Validate one day's raw partition, quarantine bad rows; exit 1 above EDGEREC_QUALITY_MAX_BAD_SHARE."""
    from edgerec.raw import validate_raw

    result = validate_raw(settings_from_env(), ds)
    typer.echo(json.dumps(result, indent=2))


@spark_app.command("run")
def spark_run(
    job: Annotated[str, typer.Argument(help="ingest | sessionize | requests | bucketize | all")],
    ds: Annotated[str, typer.Option(help="logical date YYYY-MM-DD")],
    master: Annotated[str | None, typer.Option(help="Spark master [default: EDGEREC_SPARK_MASTER or local[*]]")]
    = None,
) -> None:
    """Run Spark jobs for one ds in one session; prints their figures and seconds (also in the day's Spark summary)."""
    from spark_jobs.jobs import JOBS, run_jobs

    if job != "all" and job not in JOBS:
        fail(f"unknown job {job!r}; choose one of {', '.join(JOBS)} or all")
    settings = settings_from_env()
    if master:
        settings = settings.replace(spark={"master": master})
    result = run_jobs(settings, ds, list(JOBS) if job == "all" else [job])
    typer.echo(json.dumps(result, indent=2))


@dbt_app.command("build")
def dbt_build(ds: Annotated[str, typer.Option(help="logical date YYYY-MM-DD (the test day)")]) -> None:
    """dbt build for ds: models, data tests and unit tests; prints the mart row counts."""
    from edgerec.marts import build_marts

    summary = build_marts(settings_from_env(), ds)
    typer.echo(json.dumps(summary, indent=2))


@dbt_app.command("docs")
def dbt_docs(ds: Annotated[str, typer.Option(help="logical date YYYY-MM-DD")]) -> None:
    """dbt docs generate: the static docs site of the models, columns and tests."""
    from edgerec.marts import docs_generate

    index = docs_generate(settings_from_env(), ds)
    typer.echo(f"dbt docs: {index} (serve with: dbt docs serve --project-dir dbt --profiles-dir dbt "
               f"--target-path {index.parent})")


@quality_app.command("run")
def quality_run(
    layer: Annotated[str, typer.Option(help="raw | features | marts | all")],
    ds: Annotated[str, typer.Option(help="logical date YYYY-MM-DD")],
    alerts: Annotated[bool, typer.Option(help="send alerts for failed checks")] = True,
) -> None:
    """Run a layer's expectation suites; exit 1 when a blocking check fails. Writes Data Docs and a report."""
    from edgerec.quality.gate import LAYERS, QualityGateFailed, run_quality

    layers = list(LAYERS) if layer == "all" else [layer]
    if any(name not in LAYERS for name in layers):
        fail(f"unknown layer {layer!r}; choose one of {', '.join(LAYERS)} or all")
    settings = settings_from_env()
    blocked = []
    for name in layers:
        try:
            typer.echo(run_quality(settings, ds, name, notify=alerts).render())
        except QualityGateFailed as error:
            blocked.append(str(error))
    if blocked:
        fail("\n".join(blocked), code=1)
