"""Commands of the models: train, evaluate, export, servability, replay, and the recall group."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pipeline.cli.base import app, fail, group, settings_from_env

recall_app = group("recall", "The cloud's recall (PWPRec two-tower candidate generation): train, evaluate, export, "
                   "deploy, verify, and the near-real-time user embeddings (nrt, health).")


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

    settings = settings_from_env()
    settings = settings.replace(train={k: v for k, v in (("models", models), ("epochs", epochs)) if v is not None})
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

    verdict = gate_day(settings_from_env(), ds, version)
    typer.echo(verdict.model_dump_json(indent=2))
    summary = verdict.gate_verdict(ds).summary
    if not verdict.blessed:
        fail(summary, code=1)
    typer.secho(summary, fg="green")


def _day(settings, ds: str | None, version: str | None) -> str:
    """--ds, else the day the named version was trained for, else EDGEREC_RUN_DATE."""
    from edgerec import registry

    if ds:
        return ds
    if version:
        return registry.find_version(registry.connect(settings), version).tags.get("ds") or str(settings.run.date)
    return str(settings.run.date)


@app.command("export")
def export_command(
    version: Annotated[str | None, typer.Argument(help="registry number or version id [default: the version "
                                                       "trained for --ds]")] = None,
    ds: Annotated[str | None, typer.Option(help="logical date YYYY-MM-DD whose version to export "
                                                "[default: the version's day, else EDGEREC_RUN_DATE]")] = None,
) -> None:
    """Export a blessed version as its bundle (ONNX behaviour steps and re-ranker, fp16 embedding shards, feature
    spec, manifest) into $EDGEREC_HOME/bundles/<version id>. An intact bundle is reused, never rewritten."""
    from edgerec.config import read_json
    from edgerec.contracts.bundle import MANIFEST, network_bytes
    from training.pipeline import export_day

    settings = settings_from_env()
    root = export_day(settings, _day(settings, ds, version), version)
    manifest = read_json(root / MANIFEST)
    typer.echo(f"bundle {root}: {network_bytes(manifest):,} bytes of networks and spec, tables "
               + ", ".join(f"{n} {t['rows']}x{t['dim']}" for n, t in manifest["embeddings"].items()))


@app.command()
def servability(
    version: Annotated[str | None, typer.Argument(help="registry number or version id [default: the version "
                                                       "trained for --ds]")] = None,
    ds: Annotated[str | None, typer.Option(help="logical date YYYY-MM-DD whose test requests are replayed "
                                                "[default: the version's day, else EDGEREC_RUN_DATE]")] = None,
) -> None:
    """The servability gate on an exported bundle: integrity, onnx.checker, onnxruntime vs PyTorch on test
    requests, step vs full-sequence encodings, size and latency budgets (EDGEREC_SERVABILITY_CONFIG); exit 1 when
    it fails. The verdict is tagged on the MLflow version."""
    from training.pipeline import servability_day

    settings = settings_from_env()
    ds = _day(settings, ds, version)
    report = servability_day(settings, ds, version)
    typer.echo(report.to_markdown())
    if not report.passed:
        fail(report.gate_verdict(ds).summary, code=1)


@app.command("replay-gate")
def replay_gate(
    version: Annotated[str | None, typer.Argument(help="registry number or version id [default: the version "
                                                       "trained for --ds]")] = None,
    ds: Annotated[str | None, typer.Option(help="logical date YYYY-MM-DD; the users are replayed on the days after "
                                                "it [default: the version's day, else EDGEREC_RUN_DATE]")] = None,
) -> None:
    """The replay gate on an exported bundle: EDGEREC_REPLAY_USERS simulated users on the day after ds with the
    cloud's order and with the bundle on the device; exit 1 when it loses clicks with the whole 95% interval below
    zero. The verdict is tagged on the MLflow version; deploy refuses a refused one."""
    from edgerec.reports import ReplayGate
    from training.pipeline import replay_day

    settings = settings_from_env()
    ds = _day(settings, ds, version)
    verdict = replay_day(settings, ds, version)
    typer.echo(ReplayGate.markdown_path(settings.layout(ds)).read_text())
    if not verdict.passed:
        fail(verdict.gate_verdict(ds).summary, code=1)


@app.command("replay")
def replay_command(
    bundle: Annotated[str, typer.Option(help="bundle directory, or a version id under $EDGEREC_HOME/bundles")],
    users: Annotated[int, typer.Option(help="simulated users (the same users in both arms)")] = 300,
    date: Annotated[str | None, typer.Option(help="simulated day YYYY-MM-DD [default: the day after "
                                                  "EDGEREC_RUN_DATE]")] = None,
    days: Annotated[int, typer.Option(min=1, max=60, help="days from --date; the gains' intervals resample the "
                                                          "user-days")] = 1,
    seed: Annotated[int | None, typer.Option(help="world seed [default: EDGEREC_SIM_SEED, the world the bundle "
                                                  "was trained on]")] = None,
    seeds: Annotated[int, typer.Option(min=1, max=100, help="draws of --users users from the world, each with its own "
                                                            "sessions (draw 0: the users the logs came from)")] = 1,
    diversity: Annotated[float | None, typer.Option(help="MMR lambda in [0, 1] after scoring (1: relevance only) "
                                                         "[default: off]")] = None,
    out: Annotated[Path | None, typer.Option(help="report directory [default: $EDGEREC_HOME/reports/replay/"
                                                  "<version>, or <version>-vs-<other> with --against]")] = None,
    recall: Annotated[str | None, typer.Option(help="also take candidates from this recall version (a version id "
                                                    "under $EDGEREC_HOME/recall_bundles, or `channel`: the recall "
                                                    "channel's), with and without EdgeRec: four arms")] = None,
    rules: Annotated[Path | None, typer.Option(help="also run the bundle under these business rules (a JSON file as "
                                                    "EDGEREC_RULES_CONFIG) instead of its manifest's: one arm more, "
                                                    "compared with the bundle's own")] = None,
    against: Annotated[str | None, typer.Option(help="also run this other bundle (a directory or a version id) on "
                                                     "the device: one arm more, compared with --bundle's on the "
                                                     "same users (clicks, buys, GMV)")] = None,
) -> None:
    """Closed-loop replay: the same users and seed twice, the cloud's order vs EdgeRec re-ranking on the device;
    prints clicks, CTR, page views, re-rankings per session, delays and re-rank times, the gains with 95% intervals
    over user-days beside the paper's online A/B, and plots CTR by position. With --recall, the same with the
    recall's candidates instead of the simulated cloud ranker's (users embedded from fct_recall_users' histories
    and their session's clicks). Reports how often each business rule fired (docs/rules.md). With --against, a
    challenger bundle (say a multi-task model, docs/multitask.md) against --bundle on the same users."""
    from edgerec.contracts.rules import BusinessRules
    from edgerec.contracts.signing import trusted_keys
    from edgerec.edge.replay import AGAINST_ARM, RECALL_ARMS, RULES_ARM, RecallPages, replay, to_markdown, write
    from edgerec.errors import json_config
    from edgerec.recall import RecallRuntime, histories_by_user
    from edgerec.sim.config import load_sim_config

    settings = settings_from_env()

    def bundle_dir(ref: str) -> Path:
        return Path(ref) if Path(ref).is_dir() else settings.bundles_dir / ref

    root, other = bundle_dir(bundle), bundle_dir(against) if against else None
    other_rules = json_config(BusinessRules, rules, "--rules") if rules is not None else None
    day = dt.date.fromisoformat(date) if date else settings.run.date + dt.timedelta(days=1)
    cfg = load_sim_config(settings.sim.config, preset=settings.sim.world, users=users, days=1, start_date=day,
                          seed=seed if seed is not None else settings.sim.seed)
    for path in (root, other):
        if path is not None and not path.is_dir():
            fail(f"no bundle at {path}: pass a bundle directory or a version id exported with `edgerec export`")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=True, disable=not sys.stderr.isatty()) as progress:
        pages = None
        if recall is not None:
            pages = RecallPages(RecallRuntime(settings.recall_bundles_dir / _recall_version(settings, recall),
                                              trusted=trusted_keys(settings.trusted_keys_dir)),
                                histories_by_user(settings.duckdb_path))
        per_arm = cfg.users * seeds * days
        names = ["cloud order", "EdgeRec", *([RULES_ARM] if other_rules else []), *([AGAINST_ARM] if other else []),
                 *(RECALL_ARMS if pages else [])]
        task = progress.add_task("replaying", total=len(names) * per_arm)
        arms = {name: k * per_arm for k, name in enumerate(names)}
        result = replay(cfg, root, day, diversity, progress=lambda arm, done: progress.update(
            task, completed=arms[arm] + done, description=f"replaying: {arm}"),
            trusted=trusted_keys(settings.trusted_keys_dir), days=days, seeds=seeds, recall=pages, rules=other_rules,
            against=other)
    name = result["version"] + (f"-vs-{result['against']['version']}" if "against" in result else "")
    paths = write(result, out or settings.home / "reports" / "replay" / name)
    typer.echo(to_markdown(result))
    typer.echo(f"\nwritten: {paths['md']}, {paths['json']}, plot {paths['png']}")


def _recall_version(settings, ref: str) -> str:
    """A recall version id: `channel` for the recall channel's, else the id itself."""
    if ref != "channel":
        return ref
    from deploy.channels import RECALL_CHANNEL, read_channel
    from deploy.targets import open_targets

    targets = open_targets(settings)
    try:
        pointer = read_channel(targets.cdn, RECALL_CHANNEL, targets.key)
    finally:
        targets.close()
    if pointer is None:
        fail("the recall channel points at nothing yet: deploy a recall version first (`edgerec recall deploy`)")
    return pointer.version


@recall_app.command("train")
def recall_train(
    ds: Annotated[str, typer.Option(help="logical date YYYY-MM-DD: train on the clicks before it, test on its own")],
    models: Annotated[str | None, typer.Option(help="comma-separated recall models or all "
                                                    "[default: EDGEREC_RECALL_MODELS]")] = None,
    epochs: Annotated[int | None, typer.Option(help="passes over the train clicks [default: EDGEREC_RECALL_EPOCHS]")]
    = None,
) -> None:
    """Train the recall models on both tasks (user- and session-based) from the recall marts, compare them with the
    reference rules on ds's clicks (Recall@k, NDCG@10, bootstrap intervals), log to MLflow and register PWPRec(LS)
    as a new version of edgerec-recall. Prints the comparison."""
    from training.recall.pipeline import train_recall_day

    settings = settings_from_env()
    settings = settings.replace(recall={k: v for k, v in (("models", models), ("epochs", epochs)) if v is not None})
    with Progress(TextColumn("{task.description}"), TimeElapsedColumn(), transient=True,
                  disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task("training")
        summary = train_recall_day(settings, ds, progress=lambda what: progress.update(
            task, description=f"training {what}"))
    typer.echo(Path(summary.comparison["md"]).read_text())
    typer.echo(f"registered {summary.registered_model} version {summary.version} ({summary.version_id}), MLflow run "
               f"{summary.run_id}; comparison in {summary.comparison['md']}")


@recall_app.command("evaluate")
def recall_evaluate(
    ds: Annotated[str, typer.Option(help="logical date YYYY-MM-DD: judge the recall version trained for it")],
) -> None:
    """The recall gate: bless the day's recall version if its Recall@20 reaches EDGEREC_RECALL_MIN_RECALL_AT_20 and
    its champion's on the same clicks minus EDGEREC_RECALL_TOLERANCE; exit 1 when refused."""
    from training.recall.pipeline import gate_recall_day

    verdict = gate_recall_day(settings_from_env(), ds)
    summary = verdict.gate_verdict(ds).summary
    if not verdict.blessed:
        fail(summary, code=1)
    typer.secho(summary, fg="green")


@recall_app.command("export")
def recall_export(
    ds: Annotated[str, typer.Option(help="logical date YYYY-MM-DD: export the blessed recall version trained for it")],
) -> None:
    """The blessed recall version as its signed bundle (ONNX user tower, item embeddings, popular items, ANN index),
    checked on the served path against the model."""
    from training.recall.pipeline import export_recall_day

    typer.echo(export_recall_day(settings_from_env(), ds))


@recall_app.command("deploy")
def recall_deploy(
    version: Annotated[str | None, typer.Argument(help="registry number or version id of edgerec-recall")] = None,
    ds: Annotated[str | None, typer.Option(help="deploy the recall version trained for this day instead")] = None,
    promote: Annotated[bool, typer.Option(help="then point the recall channel at it")] = False,
) -> None:
    """Batch user vectors into the key-value store and the bundle onto the CDN, each verified (a re-run resumes);
    with --promote, then the `recall` channel (the paging API's candidates)."""
    from deploy.pipeline import deploy_recall_day
    from deploy.recall import deploy_recall
    from deploy.targets import open_targets

    settings = settings_from_env()
    if (version is None) == (ds is None):
        fail("name a VERSION or a --ds (one of them)", code=2)
    if promote:
        typer.secho(f"recall -> {deploy_recall_day(settings, ds or '', version)}", fg="green")
        return
    targets = open_targets(settings)
    try:
        if version is None:
            from edgerec import registry

            found = registry.version_of_day(registry.connect(settings), ds, registry.RECALL_MODEL)
            if found is None:
                fail(f"no version of {registry.RECALL_MODEL} was trained for ds={ds}", code=1)
            version = found.id
        report = deploy_recall(settings, targets, version)
    finally:
        targets.close()
    typer.echo(report.to_markdown())
    typer.secho(f"next: edgerec release promote {version} --channel recall --reason '...'", fg="green")


@recall_app.command("verify")
def recall_verify(version: Annotated[str, typer.Argument(help="registry number or version id of edgerec-recall")]
                  ) -> None:
    """Can the paging API serve this recall version: its files on the CDN (downloaded and hashed), its manifest
    signed and the one the export checked, its batch user vectors in the KV. Exit 1 when not."""
    from deploy.recall import verify_recall
    from deploy.targets import open_targets
    from edgerec import registry

    settings = settings_from_env()
    found = registry.find_version(registry.connect(settings), version, registry.RECALL_MODEL)
    targets = open_targets(settings)
    try:
        report = verify_recall(targets, found.id, found.tags)
    finally:
        targets.close()
    typer.echo(report.to_markdown())
    if not report.passed:
        fail(f"recall {found.id} cannot be served: {'; '.join(report.failures)}", code=1)


@recall_app.command("nrt")
def recall_nrt(
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="stream messages handled per batch")] = 500,
    idle_exit: Annotated[float | None, typer.Option(help="stop after this many seconds without a message")] = None,
) -> None:
    """The near-real-time consumer: reads client events from EDGEREC_RECALL_STREAM and, on every click or page
    view, re-embeds the user with the recall channel's version and writes the vector to the key-value store
    (where the paging API looks first). Runs until interrupted; `edgerec recall health` checks it."""
    import time

    from deploy.channels import RECALL_CHANNEL, read_channel
    from deploy.nrt import EventStream, consume
    from deploy.recall import fetch_recall
    from deploy.targets import open_targets

    settings = settings_from_env()
    targets = open_targets(settings)
    stream = EventStream(settings.recall.stream)
    cache = settings.home / "serving" / "recall"
    loaded: dict = {}

    def runtime():
        if time.monotonic() - loaded.get("at", -1e9) >= 5.0:
            pointer = read_channel(targets.cdn, RECALL_CHANNEL, targets.key)
            if pointer is None:
                fail("no recall version on the recall channel: deploy one first (`edgerec recall deploy --promote`)",
                     code=1)
            if loaded.get("version") != pointer.version:
                loaded.update(version=pointer.version, runtime=fetch_recall(targets, pointer.version, cache))
            loaded["at"] = time.monotonic()
        return loaded["runtime"]

    idle = {"since": time.monotonic(), "seen": 0}

    def until(counts) -> bool:
        if counts.messages != idle["seen"]:
            idle.update(since=time.monotonic(), seen=counts.messages)
        return idle_exit is not None and time.monotonic() - idle["since"] >= idle_exit

    typer.echo(f"consuming {stream.url} ({stream.key}) as {stream.consumer}; Ctrl-C to stop")
    try:
        counts = consume(stream, targets.kv, runtime, shown_limit=settings.recall.shown_limit, batch=batch,
                         until=until)
        typer.echo(json.dumps(counts.summary()))
    except KeyboardInterrupt:
        typer.echo("stopped")
    finally:
        stream.close()
        targets.close()


@recall_app.command("health")
def recall_health() -> None:
    """Whether a near-real-time consumer reported in the last seconds, what each did, and the stream's lag; exit 1
    when none is alive."""
    from deploy.nrt import EventStream, health

    stream = EventStream(settings_from_env().recall.stream, consumer="health-check")
    try:
        alive, lines = health(stream)
    finally:
        stream.close()
    typer.echo("\n".join(lines))
    if not alive:
        fail("no near-real-time consumer reported recently: start `edgerec recall nrt`", code=1)
