"""`edgerec`: one sub-command per pipeline stage; every stage runs without Airflow."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from edgerec.config import read_json
from edgerec.errors import EdgeRecError


class _Commands(typer.core.TyperGroup):
    """The one error handler: an EdgeRecError is a problem the user can act on, printed without a traceback; any
    other exception is a bug and shows its traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except EdgeRecError as error:
            _fail(str(error), error.exit_code)


app = typer.Typer(cls=_Commands, help=__doc__, no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)
logs_app = typer.Typer(help="Raw client logs: validate against the contract.", no_args_is_help=True)
sim_app = typer.Typer(help="Behaviour simulator diagnostics.", no_args_is_help=True)
raw_app = typer.Typer(help="The raw-zone stages of the daily DAG, for one ds.", no_args_is_help=True)
airflow_app = typer.Typer(help="The embedded Airflow home.", no_args_is_help=True)
spark_app = typer.Typer(help="Spark jobs for one ds: ingest, sessionize, requests, bucketize, or all.",
                        no_args_is_help=True)
dbt_app = typer.Typer(help="The dbt marts (dbt/): train/test requests, items, daily stats.", no_args_is_help=True)
quality_app = typer.Typer(help="Data-quality gates (Great Expectations) for one ds.", no_args_is_help=True)
alerts_app = typer.Typer(help="Alert notifiers (log, webhook, email).", no_args_is_help=True)
release_app = typer.Typer(help="Release channels (canary, stable): verify, promote, rollback, gc, status, list. "
                          "Every change is signed, verified first, locked and written to the audit log.",
                          no_args_is_help=True)
app.add_typer(spark_app, name="spark")
app.add_typer(dbt_app, name="dbt")
app.add_typer(quality_app, name="quality")
app.add_typer(alerts_app, name="alerts")
app.add_typer(release_app, name="release")
app.add_typer(logs_app, name="logs")
app.add_typer(sim_app, name="sim")
app.add_typer(raw_app, name="raw")
app.add_typer(airflow_app, name="airflow")
config_app = typer.Typer(help="The settings (EDGEREC_* environment variables).", no_args_is_help=True)
app.add_typer(config_app, name="config")


def _fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(code)


@config_app.command("show")
def config_show() -> None:
    """Every setting's value as this environment gives it (secrets masked)."""
    settings = _settings()
    for name, value in settings.model_dump().items():
        secret = name == "release_key" or (name.endswith("_url") and value and "@" in str(value))
        typer.echo(f"EDGEREC_{name.upper():<28} {'***' if secret and value else value}")


@config_app.command("docs")
def config_docs(
    write: Annotated[bool, typer.Option("--write", help="write docs/configuration.md instead of printing it")] = False,
) -> None:
    """The configuration reference, generated from the settings' own descriptions."""
    from edgerec.config import CONFIGURATION_DOC, configuration_reference

    if write:
        CONFIGURATION_DOC.write_text(configuration_reference())
        typer.echo(f"wrote {CONFIGURATION_DOC}")
    else:
        typer.echo(configuration_reference(), nl=False)


def _settings():
    from edgerec.config import load_settings

    return load_settings()


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
    """Simulate one day of the configured world into the state directory's raw zone."""
    from edgerec.raw import simulate_day

    typer.echo(json.dumps(simulate_day(_settings(), ds), indent=2))


@raw_app.command("validate")
def raw_validate(ds: Annotated[str, typer.Option(help="logical date YYYY-MM-DD")]) -> None:
    """Validate one day's raw partition, quarantine bad rows; exit 1 above EDGEREC_MAX_BAD_SHARE."""
    from edgerec.raw import validate_raw

    result = validate_raw(_settings(), ds)
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
        _fail(f"unknown job {job!r}; choose one of {', '.join(JOBS)} or all")
    settings = _settings()
    if master:
        settings = settings.model_copy(update={"spark_master": master})
    result = run_jobs(settings, ds, list(JOBS) if job == "all" else [job])
    typer.echo(json.dumps(result, indent=2))


@dbt_app.command("build")
def dbt_build(ds: Annotated[str, typer.Option(help="logical date YYYY-MM-DD (the test day)")]) -> None:
    """dbt build for ds: models, data tests and unit tests; prints the mart row counts."""
    from edgerec.marts import build_marts

    summary = build_marts(_settings(), ds)
    typer.echo(json.dumps(summary, indent=2))


@dbt_app.command("docs")
def dbt_docs(ds: Annotated[str, typer.Option(help="logical date YYYY-MM-DD")]) -> None:
    """dbt docs generate: the static docs site of the models, columns and tests."""
    from edgerec.marts import docs_generate

    index = docs_generate(_settings(), ds)
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
        _fail(f"unknown layer {layer!r}; choose one of {', '.join(LAYERS)} or all")
    settings = _settings()
    blocked = []
    for name in layers:
        try:
            typer.echo(run_quality(settings, ds, name, notify=alerts).render())
        except QualityGateFailed as error:
            blocked.append(str(error))
    if blocked:
        _fail("\n".join(blocked), code=1)


@app.command()
def train(
    ds: Annotated[str, typer.Option(help="logical date YYYY-MM-DD: train on the days before it, test on it")],
    models: Annotated[str | None, typer.Option(help="comma-separated models or all [default: EDGEREC_TRAIN_MODELS]")]
    = None,
    epochs: Annotated[int | None, typer.Option(help="most passes over the train split; early stopping on held-out "
                                                    "requests may end sooner [default: EDGEREC_TRAIN_EPOCHS or 10]")]
    = None,
) -> None:
    """Train the paper's models on the train mart, compare them on ds's test mart, log everything to MLflow and
    register the full model as a new version of edgerec-reranker. Prints the comparison table."""
    from training.pipeline import train_day

    settings = _settings()
    settings = settings.model_copy(update={k: v for k, v in (("train_models", models), ("train_epochs", epochs))
                                           if v is not None})
    with Progress(TextColumn("{task.description}"), TimeElapsedColumn(), transient=True,
                  disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task("training")
        summary = train_day(settings, ds, progress=lambda name: progress.update(task,
                                                                                description=f"training {name}"))
    typer.echo(summary["table"])
    typer.echo(f"registered {summary['registered_model']} version {summary['version']} ({summary['version_id']}), "
               f"MLflow run {summary['run_id']}; comparison in {summary['comparison']['md']}")


@app.command()
def evaluate(
    ds: Annotated[str, typer.Option(help="logical date YYYY-MM-DD whose test mart judges the version")],
    version: Annotated[str | None, typer.Option(help="registry version number [default: the one trained for ds]")]
    = None,
) -> None:
    """The evaluation gate: bless the version if its GAUC reaches EDGEREC_GATE_MIN_GAUC and the champion's GAUC on
    the same test set minus EDGEREC_GATE_TOLERANCE; exit 1 when refused. Blessing moves the champion alias."""
    from training.pipeline import gate_day

    verdict = gate_day(_settings(), ds, version)
    typer.echo(json.dumps(verdict.to_dict(), indent=2))
    if not verdict.blessed:
        _fail(f"version {verdict.version} ({verdict.version_id}) refused: {verdict.reason}", code=1)
    typer.secho(f"version {verdict.version} ({verdict.version_id}) blessed: {verdict.reason}", fg="green")


@app.command("export")
def export_command(
    version: Annotated[str | None, typer.Argument(help="registry number or version id [default: the version "
                                                       "trained for --ds]")] = None,
    ds: Annotated[str | None, typer.Option(help="logical date YYYY-MM-DD whose version to export "
                                                "[default: EDGEREC_RUN_DATE]")] = None,
) -> None:
    """Export a blessed version as its bundle (ONNX behaviour steps and re-ranker, fp16 embedding shards, feature
    spec, manifest) into $EDGEREC_HOME/bundles/<version id>. An intact bundle is reused, never rewritten."""
    from training.pipeline import export_day

    settings = _settings()
    root = export_day(settings, ds or str(settings.run_date), version)
    manifest = json.loads((root / "manifest.json").read_text())
    size = sum(f["bytes"] for f in manifest["files"].values())
    typer.echo(f"bundle {root}: {size:,} bytes of networks and spec, tables "
               + ", ".join(f"{n} {t['rows']}x{t['dim']}" for n, t in manifest["embeddings"].items()))


@app.command()
def servability(
    version: Annotated[str | None, typer.Argument(help="registry number or version id [default: the version "
                                                       "trained for --ds]")] = None,
    ds: Annotated[str | None, typer.Option(help="logical date YYYY-MM-DD whose test requests are replayed "
                                                "[default: EDGEREC_RUN_DATE]")] = None,
) -> None:
    """The servability gate on an exported bundle: integrity, onnx.checker, onnxruntime vs PyTorch on test
    requests, step vs full-sequence encodings, size and latency budgets (EDGEREC_SERVABILITY_CONFIG); exit 1 when
    it fails. The verdict is tagged on the MLflow version."""
    from training.pipeline import servability_day

    settings = _settings()
    report = servability_day(settings, ds or str(settings.run_date), version)
    typer.echo(report.to_markdown())
    if not report.passed:
        _fail(f"bundle {report.version} is not servable: {'; '.join(report.failures)}", code=1)


@app.command("replay")
def replay_command(
    bundle: Annotated[str, typer.Option(help="bundle directory, or a version id under $EDGEREC_HOME/bundles")],
    users: Annotated[int, typer.Option(help="simulated users (the same users in both arms)")] = 300,
    date: Annotated[str | None, typer.Option(help="simulated day YYYY-MM-DD [default: the day after "
                                                  "EDGEREC_RUN_DATE]")] = None,
    seed: Annotated[int | None, typer.Option(help="world seed [default: EDGEREC_SIM_SEED, the world the bundle "
                                                  "was trained on]")] = None,
    diversity: Annotated[float | None, typer.Option(help="MMR lambda in [0, 1] after scoring (1: relevance only) "
                                                         "[default: off]")] = None,
    out: Annotated[Path | None, typer.Option(help="report directory [default: $EDGEREC_HOME/reports/replay/"
                                                  "<version>]")] = None,
) -> None:
    """Closed-loop replay: the same users and seed twice, the cloud's order vs EdgeRec re-ranking on the device;
    prints clicks, CTR, page views, re-rankings per session, delays and re-rank times, and plots CTR by position."""
    from edgerec.edge.replay import replay, to_markdown, write
    from edgerec.sim.config import load_sim_config

    settings = _settings()
    root = Path(bundle) if Path(bundle).is_dir() else settings.bundles_dir / bundle
    day = dt.date.fromisoformat(date) if date else settings.run_date + dt.timedelta(days=1)
    cfg = load_sim_config(settings.sim_config, preset=settings.sim_world, users=users, days=1, start_date=day,
                          seed=seed if seed is not None else settings.sim_seed)
    if not root.is_dir():
        _fail(f"no bundle at {root}: pass a bundle directory or a version id exported with `edgerec export`")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=True, disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task("replaying", total=2 * cfg.users)
        arms = {"cloud order": 0, "EdgeRec": cfg.users}
        result = replay(cfg, root, day, diversity, progress=lambda arm, done: progress.update(
            task, completed=arms[arm] + done, description=f"replaying: {arm}"))
    paths = write(result, out or settings.home / "reports" / "replay" / result["version"])
    typer.echo(to_markdown(result))
    typer.echo(f"\nwritten: {paths['md']}, {paths['json']}, plot {paths['png']}")


def _targets(settings):
    from deploy.targets import open_targets

    return open_targets(settings)


@app.command()
def deploy(
    version: Annotated[str | None, typer.Argument(help="registry number or version id [default: the version "
                                                       "trained for --ds]")] = None,
    ds: Annotated[str | None, typer.Option(help="logical date YYYY-MM-DD whose version to deploy "
                                                "[default: EDGEREC_RUN_DATE]")] = None,
) -> None:
    """Deploy a blessed, servable version: its embedding rows into the key-value store (EDGEREC_KV_URL), verified,
    then its bundle onto the CDN (EDGEREC_CDN_URL), verified. Resumable: a re-run continues where one stopped.
    Channels do not move; `edgerec release promote` does that."""
    from deploy.pipeline import deploy_day

    settings = _settings()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=True, disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task("deploying")
        result = deploy_day(settings, ds or str(settings.run_date), version, progress=lambda step, done, total:
                            progress.update(task, completed=done, total=total, description=f"deploying {step}"))
    typer.echo(f"deployed {result.version}: {result.rows_written:,} embedding rows written "
               f"({result.rows_skipped:,} already there) to {settings.kv}; {result.files_uploaded} files "
               f"uploaded ({result.files_skipped} already there) to {settings.cdn}")
    typer.echo(result.kv.to_markdown())
    typer.echo(result.cdn.to_markdown())
    typer.secho(f"next: edgerec release promote {result.version} --channel canary --percent 10 --reason '...'",
                fg="green")


@release_app.command("verify")
def release_verify(version: Annotated[str, typer.Argument(help="registry number or version id")]) -> None:
    """Version synchronization: CDN files and their sha256, every embedding row in the KV with its checksum, dims
    against the re-ranker's input, one feature spec sha everywhere, and every channel's versions still in the KV.
    Exit 1 when anything fails."""
    from deploy.verify import verify_version
    from edgerec import registry

    settings = _settings()
    targets = _targets(settings)
    try:
        found = registry.find_version(registry.connect(settings), version)
        report = verify_version(targets.kv, targets.cdn, found.id, found.tags, targets.key)
    finally:
        targets.close()
    typer.echo(report.to_markdown())
    if not report.passed:
        _fail(f"{found.id} is not in sync: {'; '.join(report.failures)}", code=1)


@release_app.command("promote")
def release_promote(
    version: Annotated[str, typer.Argument(help="registry number or version id")],
    channel: Annotated[str, typer.Option(help="canary or stable")],
    reason: Annotated[str, typer.Option(help="why, for the audit log")],
    percent: Annotated[float, typer.Option(help="share of devices that get it, 0..100")] = 100.0,
) -> None:
    """Point a channel at a version, after checking both blessings and verifying it; moves the MLflow alias of the
    channel's name and writes the audit log."""
    from deploy.release import promote

    settings = _settings()
    targets = _targets(settings)
    try:
        pointer = promote(settings, targets, version, channel, percent, reason)
    finally:
        targets.close()
    typer.secho(f"{channel} -> {pointer.version} for {pointer.rollout_percent:g}% of devices "
                f"(previous {pointer.previous or '-'})", fg="green")


@release_app.command("rollback")
def release_rollback(
    channel: Annotated[str, typer.Option(help="canary or stable")],
    reason: Annotated[str, typer.Option(help="why, for the audit log")],
) -> None:
    """Point a channel back at its previous version (verified first); rolling back again rolls forward."""
    from deploy.release import rollback

    settings = _settings()
    targets = _targets(settings)
    try:
        pointer = rollback(settings, targets, channel, reason)
    finally:
        targets.close()
    typer.secho(f"{channel} -> {pointer.version} (rolled back from {pointer.previous})", fg="green")


@release_app.command("status")
def release_status() -> None:
    """Each channel's pointer: version, previous, rollout, who moved it and when, and whether its signature holds."""
    settings = _settings()
    targets = _targets(settings)
    try:
        typer.echo(f"CDN {targets.cdn.url}, KV {targets.kv.url}")
        for name, note in _channel_notes(targets).items():
            typer.echo(f"{name:<7} {note}")
    finally:
        targets.close()


@release_app.command("list")
def release_list() -> None:
    """Deployed versions: when, where (KV, CDN) and which channels hold them."""
    import datetime as _dt

    from deploy.release import deployed_versions

    settings = _settings()
    targets = _targets(settings)
    try:
        versions = deployed_versions(targets)
    finally:
        targets.close()
    now = _dt.datetime.now(_dt.UTC)
    typer.echo(f"{'version':<20} {'deployed':<26} {'age (d)':>7}  kv   cdn  held by")
    for v in versions:
        age = v.age_days(now)
        typer.echo(f"{v.version:<20} {v.deployed_at or '-':<26} {'-' if age is None else f'{age:.1f}':>7}  "
                   f"{'yes' if v.in_kv else 'no':<4} {'yes' if v.on_cdn else 'no':<4} {', '.join(v.held_by) or '-'}")


@release_app.command("gc")
def release_gc(
    retention_days: Annotated[float | None, typer.Option(help="keep versions younger than this "
                                                            "[default: EDGEREC_RELEASE_RETENTION_DAYS or 7]")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list what would be removed, remove nothing")] = False,
) -> None:
    """Remove embeddings and bundle files of versions no channel holds (current or previous) and older than the
    retention."""
    from deploy.pipeline import gc_day

    settings = _settings()
    days = settings.release_retention_days if retention_days is None else retention_days
    doomed = gc_day(settings.model_copy(update={"release_retention_days": days}), dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    typer.echo(f"{verb} {len(doomed)} version(s) older than {days:g} days held by no channel"
               + "".join(f"\n  {v}" for v in doomed))


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8080,
    load_test: Annotated[int, typer.Option(help="instead of serving: N page requests on loopback, then report "
                                                "p50/p99 and requests/s")] = 0,
    version: Annotated[str | None, typer.Option(help="model version the load test's clients run [default: "
                                                     "stable's, else canary's]")] = None,
    concurrency: Annotated[int, typer.Option(help="load test clients in parallel")] = 4,
) -> None:
    """The cloud paging API: candidates of the simulated world's cloud ranker with their embedding rows for the
    client's model version (409 naming the version to fetch when it is not served); /healthz, /v1/model, /docs."""
    import uvicorn

    from deploy.release import channel_pointers
    from deploy.serving.app import embedded_app
    from deploy.serving.loadtest import LoopbackServer
    from deploy.serving.loadtest import load_test as run_load_test

    settings = _settings()
    app_ = embedded_app(settings)
    if not load_test:
        uvicorn.run(app_, host=host, port=port, log_level="info")
        return
    if version is None:
        targets = _targets(settings)
        pointers = channel_pointers(targets)
        current = pointers["stable"] or pointers["canary"]
        version = current.version if current else None
        targets.close()
    with LoopbackServer(app_) as server:
        figures = run_load_test(server.url, version, requests=load_test, concurrency=concurrency,
                                users=settings.sim_users)
    typer.echo(f"{figures['requests']:,} page requests (model version {version or 'none'}), {concurrency} clients: "
               f"p50 {figures['p50_ms']:.2f} ms, p99 {figures['p99_ms']:.2f} ms, "
               f"{figures['requests_per_s']:,.0f} requests/s")


@app.command()
def ui(
    airflow_port: Annotated[int, typer.Option(help="port of the Airflow UI")] = 8080,
    mlflow_port: Annotated[int, typer.Option(help="port of the MLflow UI")] = 5000,
) -> None:
    """The Airflow UI and the MLflow UI over the state directory, on 127.0.0.1 and each behind a login; prints
    their addresses, where the passwords are and the Data Docs and dbt docs sites, then serves until Ctrl-C.

    The servers' output goes to $EDGEREC_HOME/logs/ui-{airflow,mlflow}.log."""
    from pipeline import ui as ui_

    settings = _settings()
    try:
        ds = ui_.last_run_day(settings)
        ui_.check_port_free(airflow_port, "Airflow", "--airflow-port")
        ui_.check_port_free(mlflow_port, "MLflow", "--mlflow-port")
        creds = ui_.ensure_credentials(settings)
        servers = [ui_.airflow_server(settings, airflow_port, creds), ui_.mlflow_server(settings, mlflow_port, creds)]
        try:
            dbt_docs = str(ui_.dbt_docs_index(settings, ds))
        except ui_.UiError as error:  # the UIs are still worth starting
            dbt_docs = f"not generated: {error}"
        with ui_.running(servers, lambda s: typer.echo(f"starting the {s.name} UI on {s.url} (log: {s.log}) ...")) \
                as procs:
            typer.secho(f"\n== the UIs over {settings.home} (last day run: ds={ds}) ==", fg="green", bold=True)
            typer.echo(ui_.summary(settings, servers, creds, dbt_docs))
            ui_.serve_until_interrupted(servers, procs)
    except KeyboardInterrupt:
        typer.echo("stopped the UIs")


@alerts_app.command("test")
def alerts_test() -> None:
    """Send one test alert through every configured notifier (check the webhook or mail settings)."""
    from edgerec.alerts import Alert, notifier_from_settings

    settings = _settings()
    notifier_from_settings(settings).send([Alert(level="warn", check="alerts.test", observed="a test alert",
                                                 threshold="nothing", ds=str(settings.run_date))])
    typer.echo("sent to: log" + (", webhook" if settings.alert_webhook_url else "")
               + (", email" if settings.alert_email_to else ""))


@airflow_app.command("init")
def airflow_init() -> None:
    """Create the Airflow home and metadata DB in the state directory (quick when already done)."""
    from pipeline.orchestration import init_airflow

    typer.echo(f"AIRFLOW_HOME={init_airflow(_settings())}")


@app.command()
def run(
    date: Annotated[str | None, typer.Option(help="last logical date [default: EDGEREC_RUN_DATE or 2026-11-03]")]
    = None,
    days: Annotated[int | None, typer.Option(help="days to run, oldest first, ending at --date "
                                                  "[default: EDGEREC_RUN_DAYS or 3]")] = None,
) -> None:
    """The main job: run the daily DAG day by day with Airflow in-process, then show the last day's outputs.

    One line per task (seconds, outcome, the figure that matters); everything Airflow, Spark, dbt and training print
    goes to $EDGEREC_HOME/logs/run_ds=D.log."""
    from edgerec.config import days_back
    from pipeline.orchestration import tail_errors, test_dag

    settings = _settings()
    last = date or str(settings.run_date)
    for ds in days_back(last, (days or settings.run_days) - 1):
        log_path = settings.layout(ds).run_log
        typer.secho(f"\n== edgerec_daily_retrain ds={ds} (full log: {log_path}) ==", fg="cyan", bold=True)

        def on_task(run, ds=ds) -> None:
            colour = {"success": "green", "skipped": "yellow"}.get(run.state, "red")
            typer.echo(f"  {run.task:<18} {run.seconds:7.1f} s  " + typer.style(f"{run.state:<8}", fg=colour)
                       + f"  {_task_figure(settings, ds, run.task)}".rstrip())

        code = test_dag(settings, "edgerec_daily_retrain", ds, log_path, on_task)
        if code != 0:
            typer.echo(tail_errors(log_path), err=True)
            _fail(f"the daily DAG failed for ds={ds} (airflow exit code {code}); the full log is {log_path}, the "
                  f"reports {settings.layout(ds).reports}", code)
    _show_day(settings, last)


def _task_figure(settings, ds: str, task: str) -> str:
    """The one figure that matters of a task that just ended, from the day's reports ("" when it wrote none)."""
    day = settings.layout(ds)

    def quality(layer: str) -> str:
        q = read_json(day.quality_report(layer))
        return q and (f"{'passed' if q['passed'] else 'BLOCKED'}: {q['checks']} checks, {q['failed_warn']} warnings")

    def spark(job: str, text) -> str:
        s = read_json(day.spark_summary)
        return s and job in s and text(s[job])

    def servability() -> str:
        r = read_json(day.servability_report())
        costs, device = (r or {}).get("costs", {}), (r or {}).get("device")
        return r and (f"{'PASSED' if r['passed'] else 'FAILED'}; re-rank {costs['reranker.onnx']['macs']:,} MACs, "
                      f"{r['estimated_ms'][device]['reranker.onnx']:.1f} ms on {device}" if costs else
                      "; ".join(r.get("failures", [])))

    def training() -> str:
        t = read_json(day.training_summary)
        return t and (f"version {t['version_id']}: full model GAUC {t['gauc']:.5f}; "
                      f"{sum(t['checks'].values())}/{len(t['checks'])} checks")

    def gate() -> str:
        g = read_json(day.evaluation_gate_report)
        return g and ("blessed" if g["blessed"] else "refused") + f": {g['reason']}"

    figures = {
        "validate_raw": lambda: (v := read_json(day.raw_validation_report)) and
        f"{v['good']:,} good rows, {v['bad']:,} bad",
        "spark_ingest": lambda: spark("ingest", lambda s: f"{s['rows_out']:,} rows, {s['bad_share']:.2%} quarantined"),
        "spark_sessionize": lambda: spark("sessionize", lambda s: f"{s['sessions']:,} sessions"),
        "spark_requests": lambda: spark("requests", lambda s: f"{s['requests']:,} requests, label rate "
                                                              f"{s['label_rate']}"),
        "spark_bucketize": lambda: spark("bucketize", lambda s: f"feature spec {s['feature_spec_sha256'][:12]}"),
        "quality_raw": lambda: quality("raw"), "quality_features": lambda: quality("features"),
        "quality_marts": lambda: quality("marts"),
        "dbt_build": lambda: (d := read_json(day.dbt_build_report)) and
        ", ".join(f"{name} {n:,}" for name, n in d["rows"].items()),
        "train": training, "evaluation_gate": gate, "servability_gate": servability,
        "deploy": lambda: (t := read_json(day.training_summary)) and f"{t['version_id']} on the KV and CDN",
        "promote_canary": lambda: (t := read_json(day.training_summary)) and f"canary -> {t['version_id']}",
    }
    try:
        return figures[task]() or "" if task in figures else ""
    except (KeyError, TypeError, ValueError) as error:  # a report of another shape: say so, never fail the run
        return f"(report unreadable: {error!r})"


def _show_day(settings, ds: str) -> None:
    from edgerec.sim.stats import render_stats, stats_of_path

    day = settings.layout(ds)
    validation, spark, marts = (read_json(p) for p in (day.raw_validation_report, day.spark_summary,
                                                       day.dbt_build_report))
    typer.secho(f"\n== edgerec_daily_retrain ds={ds} succeeded ==", fg="green", bold=True)
    typer.echo(f"state directory  {settings.home}")
    typer.echo(f"raw events       {day.raw_events}")
    typer.echo(f"item catalog     {day.raw_items}")
    typer.echo(f"validation       {day.raw_validation_report}: {validation['good']:,} good rows, "
               f"{validation['bad']:,} bad")
    typer.echo(f"quarantine       {day.quarantine_raw} (raw validation), "
               f"{settings.dataset('quarantine')}/ds={ds} (Spark ingest)")
    typer.echo(f"warehouse        {settings.warehouse}: events, sessions, requests, features (ds={ds})")
    typer.echo(f"feature spec     {day.feature_spec}")
    req = spark["requests"]
    typer.echo(f"requests         {req['requests']:,} re-ranking requests, mean IE length {req['mean_ie_length']}, "
               f"mean IPV length {req['mean_ipv_length']}, label rate {req['label_rate']}")
    rows = ", ".join(f"{name} {n:,}" for name, n in marts["rows"].items())
    typer.echo(f"marts            {marts['database']}: {rows} (dbt build {marts['elapsed_s']} s)")
    for layer in ("raw", "features", "marts"):
        quality = read_json(day.quality_report(layer))
        typer.echo(f"quality {layer:<9}{'passed' if quality['passed'] else 'BLOCKED'}: {quality['checks']} checks, "
                   f"{quality['failed_warn']} warnings" + "".join(
                       f"\n                 [warn] {r['layer']}.{r['table']}.{r['check']}: observed {r['observed']}, "
                       f"expected {r['expected']}" for r in quality["results"] if not r["success"]))
    typer.echo(f"data docs        {quality['docs_index']}")
    typer.echo(f"dbt docs         edgerec dbt docs --ds {ds}")
    _show_training(settings, ds)
    _show_export(settings, ds)
    _show_release(settings)
    typer.echo(f"\n== behaviour statistics of ds={ds} ==")
    typer.echo(render_stats(stats_of_path(day.raw_events, day.raw_items)))


def _show_training(settings, ds: str) -> None:
    day = settings.layout(ds)
    summary = read_json(day.training_summary)
    if summary is None:
        typer.echo("training         skipped: no train days in the marts yet")
        return
    typer.echo(f"mlflow           {settings.mlflow_tracking_uri or settings.mlflow_dir} (run {summary['run_id']}; "
               "browse: make ui)")
    typer.echo(f"model version    edgerec-reranker version {summary['version']} ({summary['version_id']}), "
               f"GAUC {summary['gauc']:.5f} on {summary['test_requests']:,} test requests")
    verdict = read_json(day.evaluation_gate_report)
    if verdict is not None:
        typer.echo(f"evaluation gate  {'BLESSED' if verdict['blessed'] else 'REFUSED'}: {verdict['reason']}")
    typer.echo(f"comparison       {day.comparison('md')} (and .csv, .png)\n")
    typer.echo(day.comparison("md").read_text())


def _show_export(settings, ds: str) -> None:
    day = settings.layout(ds)
    verdict = read_json(day.servability_report())
    if verdict is None:
        typer.echo("\nbundle           none exported for this day")
        return
    typer.echo(f"\nbundle           {verdict['bundle']}")
    typer.echo(day.servability_report("md").read_text())
    typer.echo(f"closed loop      .venv/bin/edgerec replay --bundle {verdict['version']} (cloud order vs EdgeRec)")


def _channel_notes(targets) -> dict[str, str]:
    """Each channel's pointer in words: version, rollout, previous, who and when; or not set, or forged."""
    from deploy.channels import CHANNEL_NAMES, ForgedPointer, read_channel

    notes = {}
    for name in CHANNEL_NAMES:
        try:
            p = read_channel(targets.cdn, name, targets.key)
        except ForgedPointer as error:
            notes[name] = f"FORGED: {error}"
            continue
        notes[name] = (f"{p.version} for {p.rollout_percent:g}% of devices (previous {p.previous or '-'}), by {p.by} "
                       f"at {p.updated_at}" if p else "not set")
    return notes


def _show_release(settings) -> None:
    targets = _targets(settings)
    try:
        for name, note in _channel_notes(targets).items():
            unset_stable = name == "stable" and note == "not set"
            hint = " (edgerec release promote VERSION --channel stable ...)" if unset_stable else ""
            typer.echo(f"channel {name:<8} {note}{hint}")
        typer.echo(f"deployed to      KV {targets.kv.url}, CDN {targets.cdn.url}; audit log {targets.audit_log}")
    finally:
        targets.close()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
