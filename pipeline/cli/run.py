"""The main job and what surrounds it: run, ui, alerts, airflow, config."""

from __future__ import annotations

from typing import Annotated

import typer

from pipeline.cli.base import app, fail, group, settings_from_env
from pipeline.cli.release import _channel_notes, _targets

alerts_app = group("alerts", "Alert notifiers (log, webhook, email).")
airflow_app = group("airflow", "The embedded Airflow home.")
config_app = group("config", "The settings (EDGEREC_* environment variables).")


@config_app.command("show")
def config_show() -> None:
    """Every setting's value as this environment gives it (secrets masked)."""
    from edgerec.config import variables

    settings = settings_from_env()
    for v in variables():
        typer.echo(f"{v.name:<36} {v.shown(v.value(settings))}")


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


@app.command()
def ui(
    airflow_port: Annotated[int, typer.Option(help="port of the Airflow UI")] = 8080,
    mlflow_port: Annotated[int, typer.Option(help="port of the MLflow UI")] = 5000,
) -> None:
    """The Airflow UI and the MLflow UI over the state directory, on 127.0.0.1 and each behind a login; prints
    their addresses, where the passwords are and the Data Docs and dbt docs sites, then serves until Ctrl-C.

    The servers' output goes to $EDGEREC_HOME/logs/ui-{airflow,mlflow}.log."""
    from pipeline import services
    from pipeline import ui as ui_

    settings = settings_from_env()
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
        with services.running(servers, lambda s: typer.echo(f"starting the {s.name} on {s.url} (log: {s.log}) ...")) \
                as procs:
            typer.secho(f"\n== the UIs over {settings.home} (last day run: ds={ds}) ==", fg="green", bold=True)
            typer.echo(ui_.summary(settings, servers, creds, dbt_docs))
            services.serve_until_interrupted(servers, procs)
    except KeyboardInterrupt:
        typer.echo("stopped the UIs")


@alerts_app.command("test")
def alerts_test() -> None:
    """Send one test alert through every configured notifier (check the webhook or mail settings)."""
    from edgerec.alerts import Alert, notifier_from_settings

    settings = settings_from_env()
    notifier = notifier_from_settings(settings)
    failures = notifier.send([Alert(level="warn", check="alerts.test", observed="a test alert", threshold="nothing",
                                    ds=str(settings.run.date))])
    typer.echo("sent to: " + (", ".join(n for n in notifier.names if n not in failures) or "none"))
    if failures:
        fail("not delivered: " + "; ".join(f"{name}: {why}" for name, why in failures.items()), code=1)


@airflow_app.command("init")
def airflow_init() -> None:
    """Create the Airflow home and metadata DB in the state directory (quick when already done)."""
    from pipeline.orchestration import init_airflow

    typer.echo(f"AIRFLOW_HOME={init_airflow(settings_from_env())}")


@app.command()
def run(
    date: Annotated[str | None, typer.Option(help="last logical date, YYYY-MM-DD [default: EDGEREC_RUN_DATE or "
                                                  "2026-11-03]")] = None,
    days: Annotated[int | None, typer.Option(min=1, max=366, help="days to run, oldest first, ending at --date "
                                                                  "[default: EDGEREC_RUN_DAYS or 3]")] = None,
) -> None:
    """The main job, and a backfill: run the daily DAG day by day, oldest first, with Airflow in-process, then show
    what each day did and the last day's outputs.

    One line per task (seconds, outcome, the figure that matters, why it was skipped); everything Airflow, Spark, dbt
    and training print goes to $EDGEREC_HOME/logs/run_ds=D.log. A failed day stops the run: the days after it need
    its outputs."""
    from edgerec.config import check_logical_date, days_back
    from pipeline.orchestration import tail_errors, test_days

    settings = settings_from_env()
    wanted = days_back(check_logical_date(date or str(settings.run.date)), (days or settings.run.days) - 1)
    check_logical_date(wanted[0])  # the whole range, before any day runs
    absent = [ds for ds in wanted if not settings.layout(ds).raw_events.exists()]
    if settings.source == "external" and absent:  # the simulator writes its days itself
        fail(f"EDGEREC_SOURCE=external, and the raw zone {settings.raw} holds no events for "
             f"{', '.join(absent) if len(absent) <= 5 else f'{len(absent)} of the {len(wanted)} days'} "
             f"({wanted[0]} .. {wanted[-1]} asked); `edgerec logs check {settings.raw}` lists the days it holds",
             code=1)

    def on_day(ds: str) -> None:
        typer.secho(f"\n== edgerec_daily_retrain ds={ds} (full log: {settings.layout(ds).run_log}) ==", fg="cyan",
                    bold=True)

    def on_task(ds: str, task) -> None:
        colour = {"success": "green", "skipped": "yellow"}.get(task.state, "red")
        figure = _task_figure(settings, ds, task.task) if task.state == "success" else task.reason
        typer.echo(f"  {task.task:<18} {task.seconds:7.1f} s  " + typer.style(f"{task.state:<8}", fg=colour)
                   + f"  {figure}".rstrip())

    done = test_days(settings, "edgerec_daily_retrain", wanted, on_day, on_task)
    for day in done:
        log_path = settings.layout(day.ds).run_log
        if day.code != 0 or day.failed:
            typer.echo(tail_errors(log_path), err=True)
            _show_days(settings, done, wanted)
            fail(f"the daily DAG failed for ds={day.ds} (airflow exit code {day.code}"
                 + (f", task {day.failed.task} {day.failed.state}" if day.failed else "")
                 + f"); the full log is {log_path}, the reports {settings.layout(day.ds).reports}", day.code or 1)
        if not day.tasks:
            _show_days(settings, done, wanted)
            fail(f"Airflow ran no task of edgerec_daily_retrain for ds={day.ds}; its log is {log_path}", 1)
    if len(done) < len(wanted):  # the process ended between two days, or before the first
        log_path = settings.layout(done[-1].ds if done else wanted[0]).run_log
        typer.echo(tail_errors(log_path), err=True)
        _show_days(settings, done, wanted)
        fail(f"Airflow stopped before ds={wanted[len(done)]} ran; the last lines it printed are in {log_path}", 1)
    _show_day(settings, wanted[-1])
    if len(wanted) > 1:
        _show_days(settings, done, wanted)


def _day_outcome(settings, day) -> str:
    """What a day of the daily DAG left behind, in a few words."""
    from edgerec import reports

    if day.failed:
        return f"FAILED at {day.failed.task}"
    layout = settings.layout(day.ds)
    trained, gate = reports.TrainingSummary.read(layout), reports.EvaluationGate.read(layout)
    if trained is None:
        return "no version trained"
    if gate is not None and not gate.blessed:
        return f"{trained.version_id} not shipped: refused by the evaluation gate"
    servable = reports.Servability.read(layout)
    if servable is not None and not servable.passed:
        return f"{trained.version_id} not shipped: refused by the servability gate"
    replayed = reports.ReplayGate.read(layout)
    if replayed is not None and not replayed.passed:
        return f"{trained.version_id} not shipped: refused by the replay gate"
    if any(t.task == "promote_canary" and t.state == "success" for t in day.tasks):
        return f"{trained.version_id} on canary"
    return f"{trained.version_id} not shipped"


def _show_days(settings, done: list, wanted: list[str]) -> None:
    """The backfill's table: per day, how many tasks ran, were skipped and failed, and its outcome."""
    typer.secho(f"\n== {len(wanted)} days of edgerec_daily_retrain ==", bold=True)
    typer.echo(f"{'ds':<12}{'ran':>5}{'skipped':>9}{'failed':>8}  outcome")
    for day in done:
        failed = len(day.tasks) - day.count("success") - day.count("skipped")
        typer.echo(f"{day.ds:<12}{day.count('success'):>5}{day.count('skipped'):>9}{failed:>8}  "
                   f"{_day_outcome(settings, day)}")
    for ds in wanted[len(done):]:
        typer.echo(f"{ds:<12}{'-':>5}{'-':>9}{'-':>8}  not run: an earlier day failed")


def _task_figure(settings, ds: str, task: str) -> str:
    """The one figure that matters of a task that just ended, from the day's reports ("" when it wrote none)."""
    from edgerec import reports
    from edgerec.sim.writer import read_summary

    day = settings.layout(ds)

    def quality(layer: str) -> str:
        q = reports.QualityChecks.read(day, layer=layer)
        return q and f"{'passed' if q.passed else 'BLOCKED'}: {q.checks} checks, {q.failed_warn} warnings"

    def spark() -> str:
        s = reports.SparkSummary.read(day)
        return s and ", ".join(filter(None, [
            s.ingest and f"{s.ingest['rows_out']:,} rows ({s.ingest['bad_share']:.2%} quarantined)",
            s.sessionize and f"{s.sessionize['sessions']:,} sessions",
            s.requests and f"{s.requests['requests']:,} requests" + (
                f" (label rate {s.bucketize['label_rate']})" if s.bucketize and "label_rate" in s.bucketize else ""),
            s.bucketize and f"feature spec {s.bucketize['feature_spec_sha256'][:12]}"]))

    def servability() -> str:
        r = reports.Servability.read(day)
        return r and (f"{'PASSED' if r.passed else 'FAILED'}; re-rank {r.costs['reranker.onnx']['macs']:,} MACs, "
                      f"{r.estimated_ms[r.device]['reranker.onnx']:.1f} ms on {r.device}" if r.costs else
                      "; ".join(c["name"] for c in r.checks if not c["passed"]))

    def training() -> str:
        t = reports.TrainingSummary.read(day)
        start = f"from {t.warm_start_from}" if t and t.warm_start_from else "from random weights"
        return t and (f"version {t.version_id} ({start}): full model GAUC {t.gauc:.5f}; "
                      f"{sum(t.checks.values())}/{len(t.checks)} checks")

    def gate() -> str:
        g = reports.EvaluationGate.read(day)
        return g and ("blessed" if g.blessed else "refused") + f": {g.reason}"

    def recall() -> str:
        r = reports.RecallTraining.read(day)
        return r and (f"recall version {r.version_id}: Recall@20 {r.recall_at_20:.4f} on {r.test_clicks:,} test "
                      f"clicks; {sum(r.checks.values())}/{len(r.checks)} checks")

    def simulation() -> str:
        devices = read_summary(settings.raw, ds).get("devices_by_model_version", {})
        return devices and "devices: " + ", ".join(f"{version} {n:,}" for version, n in devices.items())

    def canary() -> str:
        c = reports.CanaryAnalysis.read(day)
        versus = c and next(iter(c.comparisons.items()), None)
        if not c or not versus:
            cohorts = ", ".join(f"{v} {int(r['devices'])}" for v, r in c.versions.items()) if c else ""
            return cohorts and f"no canary beside another cohort; devices: {cohorts}"
        clicks = versus[1]["clicks per device"]
        return (f"{versus[0]}: clicks per device {clicks['value']:+.1%} [{clicks['low']:+.1%}, {clicks['high']:+.1%}]"
                f", CTR {versus[1]['CTR']['value']:+.1%}")

    figures = {
        "simulate_raw": simulation,
        "canary_analysis": canary,
        "release_decision": lambda: (d := reports.ReleaseDecision.read(day)) and
        f"{d.action}: {'; '.join(d.reasons)}{f'; {d.done}' if d.done else ''}",
        "validate_raw": lambda: (v := reports.RawValidation.read(day)) and f"{v.good:,} good rows, {v.bad:,} bad",
        "spark": spark,
        "quality_raw": lambda: quality("raw"), "quality_features": lambda: quality("features"),
        "quality_marts": lambda: quality("marts"),
        "dbt_build": lambda: (d := reports.DbtBuild.read(day)) and
        ", ".join(f"{name} {n:,}" for name, n in d.rows.items()),
        "train": training, "evaluation_gate": gate, "servability_gate": servability, "train_recall": recall,
        "export_recall": lambda: (r := reports.RecallTraining.read(day)) and
        f"{settings.recall_bundles_dir / r.version_id}",
        "recall_gate": lambda: (g := reports.RecallGate.read(day)) and
        ("blessed" if g.blessed else "refused") + f": {g.reason}",
        "replay_gate": lambda: (r := reports.ReplayGate.read(day)) and
        f"{'passed' if r.passed else 'REFUSED'}: {r.reason}",
        "deploy": lambda: (t := reports.TrainingSummary.read(day)) and f"{t.version_id} on the KV and CDN",
        "promote_canary": lambda: (t := reports.TrainingSummary.read(day)) and f"canary -> {t.version_id}",
        "deploy_recall": lambda: (r := reports.RecallTraining.read(day)) and f"recall -> {r.version_id}",
    }
    try:
        return figures[task]() or "" if task in figures else ""
    except (KeyError, TypeError, ValueError) as error:  # a report of another shape: say so, never fail the run
        return f"(report unreadable: {error!r})"


def _show_day(settings, ds: str) -> None:
    from edgerec import reports
    from edgerec.sim.stats import render_stats, stats_of_path

    day = settings.layout(ds)
    typer.secho(f"\n== edgerec_daily_retrain ds={ds} succeeded ==", fg="green", bold=True)
    typer.echo(f"state directory  {settings.home}")
    typer.echo(f"raw events       {day.raw_events}")
    typer.echo(f"item catalog     {day.raw_items}")
    validation = reports.RawValidation.read(day)
    typer.echo(f"validation       {reports.RawValidation.path(day)}: " + (
        f"{validation.good:,} good rows, {validation.bad:,} bad" if validation else "not run for this day"))
    typer.echo(f"quarantine       {day.quarantine_raw} (raw validation), "
               f"{settings.dataset('quarantine')}/ds={ds} (Spark ingest)")
    typer.echo(f"warehouse        {settings.warehouse}: events, sessions, requests, features (ds={ds})")
    typer.echo(f"feature spec     {day.feature_spec}")
    spark = reports.SparkSummary.read(day)
    req, encoded = spark and spark.requests, spark and spark.bucketize
    # the sequences and labels are drawn where the requests are encoded: bucketize's figures (days summarized
    # before that have neither)
    drawn = [f"{label} {encoded[name]}" for name, label in (("mean_ie_length", "mean IE length"),
                                                            ("mean_ipv_length", "mean IPV length"),
                                                            ("label_rate", "label rate"))
             if req and encoded and name in encoded]
    typer.echo("requests         " + (", ".join([f"{req['requests']:,} re-ranking requests", *drawn]) if req
                                      else "the requests job did not run for this day"))
    marts = reports.DbtBuild.read(day)
    typer.echo("marts            " + (
        f"{marts.database}: {', '.join(f'{name} {n:,}' for name, n in marts.rows.items())} "
        f"(dbt build {marts.elapsed_s} s)" if marts else "dbt build did not run for this day"))
    quality = None
    for layer in ("raw", "features", "marts"):
        quality = reports.QualityChecks.read(day, layer=layer)
        if quality is None:
            typer.echo(f"quality {layer:<9}not run for this day")
            continue
        typer.echo(f"quality {layer:<9}{'passed' if quality.passed else 'BLOCKED'}: {quality.checks} checks, "
                   f"{quality.failed_warn} warnings" + "".join(
                       f"\n                 [warn] {r['layer']}.{r['table']}.{r['check']}: observed {r['observed']}, "
                       f"expected {r['expected']}" for r in quality.results if not r["success"]))
    if quality is not None:
        typer.echo(f"data docs        {quality.docs_index}")
    typer.echo(f"dbt docs         edgerec dbt docs --ds {ds}")
    _show_training(settings, ds)
    _show_export(settings, ds)
    _show_release(settings, ds)
    if day.raw_events.exists():
        typer.echo(f"\n== behaviour statistics of ds={ds} ==")
        typer.echo(render_stats(stats_of_path(day.raw_events, day.raw_items)))


def _show_training(settings, ds: str) -> None:
    from edgerec import reports
    from edgerec.redact import redact_url

    day = settings.layout(ds)
    summary = reports.TrainingSummary.read(day)
    if summary is None:
        typer.echo("training         skipped: no train days in the marts yet")
        return
    store = redact_url(settings.mlflow.tracking_uri or str(settings.mlflow_dir))
    typer.echo(f"mlflow           {store} (run {summary.run_id}; browse: make ui)")
    typer.echo(f"model version    edgerec-reranker version {summary.version} ({summary.version_id}), "
               f"GAUC {summary.gauc:.5f} on {summary.test_requests:,} test requests")
    verdict = reports.EvaluationGate.read(day)
    if verdict is not None:
        typer.echo(f"evaluation gate  {'BLESSED' if verdict.blessed else 'REFUSED'}: {verdict.reason}")
    typer.echo(f"comparison       {day.comparison('md')} (and .csv, .png)\n")
    typer.echo(day.comparison("md").read_text())
    recall = reports.RecallTraining.read(day)
    if recall is not None:
        gate = reports.RecallGate.read(day)
        typer.echo(f"recall version   edgerec-recall version {recall.version} ({recall.version_id}), Recall@20 "
                   f"{recall.recall_at_20:.4f} on {recall.test_clicks:,} test clicks" +
                   (f"; {'BLESSED' if gate.blessed else 'REFUSED'}: {gate.reason}" if gate else ""))
        typer.echo(f"recall table     {recall.comparison['md']} (and .csv, .png)")


def _show_export(settings, ds: str) -> None:
    from edgerec import reports

    day = settings.layout(ds)
    verdict = reports.Servability.read(day)
    if verdict is None:
        typer.echo("\nbundle           none exported for this day")
        return
    typer.echo(f"\nbundle           {verdict.bundle}")
    typer.echo(reports.Servability.markdown_path(day).read_text())
    replayed = reports.ReplayGate.read(day)
    if replayed is not None:
        typer.echo(f"replay gate      {'PASSED' if replayed.passed else 'REFUSED'}: {replayed.reason} "
                   f"({reports.ReplayGate.markdown_path(day)})")
    typer.echo(f"closed loop      .venv/bin/edgerec replay --bundle {verdict.version} --seeds 5 (cloud order vs "
               "EdgeRec, more users)")


def _show_release(settings, ds: str) -> None:
    from edgerec import reports

    day = settings.layout(ds)
    if reports.CanaryAnalysis.read(day) is not None:
        typer.echo(f"canary analysis  {reports.CanaryAnalysis.markdown_path(day)}: "
                   f"{_task_figure(settings, ds, 'canary_analysis')}")
    if reports.ReleaseDecision.read(day) is not None:
        typer.echo(f"release decision {_task_figure(settings, ds, 'release_decision')}")
    targets = _targets(settings)
    try:
        for name, note in _channel_notes(targets).items():
            unset_stable = name == "stable" and note == "not set"
            hint = " (edgerec release promote VERSION --channel stable ...)" if unset_stable else ""
            typer.echo(f"channel {name:<8} {note}{hint}")
        typer.echo(f"deployed to      KV {targets.kv.url}, CDN {targets.cdn.url}; audit log {targets.audit_log}")
    finally:
        targets.close()
