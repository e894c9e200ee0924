"""The training stages of the daily pipeline, as plain functions of (settings, ds), for the DAG and the CLI.

`train_day`: train the models of the comparison on the train mart, score them on the test mart (ds itself),
write and log the comparison table, register the full model as a new version of `edgerec-reranker`.
`gate_day`: the evaluation gate (in the manner of TFX's Evaluator) on that version: blessed only if its GAUC
reaches the floor and, when a champion exists, the champion's GAUC on the same test set minus a tolerance.
`export_day`: the blessed version as a bundle (ONNX step encoders and re-ranker, embedding shards, manifest).
`servability_day`: the servability gate (in the manner of TFX's InfraValidator) on that bundle.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

from edgerec import registry
from edgerec.alerts import Alert
from edgerec.config import Settings, write_text
from edgerec.errors import ConfigError, MissingInput, NotBlessed, NoTrainingData, build_config, json_config
from edgerec.features import load_spec
from edgerec.gates import Floor, GateVerdict
from edgerec.reports import EvaluationGate, ReplayGate, Servability, TrainingSummary
from training import checkpoints
from training.compare import Curves, compare, input_notes
from training.config import TrainConfig, knobs, select_models
from training.data import Batch, DayData, count_requests, date_range, load_split, read_batches
from training.evaluation import RankingReport, evaluate
from training.models import FULL_MODEL, MODELS
from training.rules import HandRules, click_counts, score_rules
from training.runner import Parent, evaluate_on_test, train_models
from training.trainer import initial_order_gauc, pick_device

log = logging.getLogger(__name__)


def train_config(settings: Settings) -> TrainConfig:
    """TrainConfig from EDGEREC_TRAIN_CONFIG (JSON), then EDGEREC_TRAIN_EPOCHS and EDGEREC_TRAIN_DEVICE."""
    values = knobs(settings.train.config, device=settings.train.device, epochs=settings.train.epochs)
    return build_config(TrainConfig, values, prefix="train_config.")


def models_to_train(settings: Settings) -> list[str]:
    """EDGEREC_TRAIN_MODELS in the paper's order; the full model always, since it is the one registered."""
    return select_models(settings.train.models, list(MODELS), FULL_MODEL, "EDGEREC_TRAIN_MODELS")


def _data(settings: Settings, ds: str) -> tuple[dict, dict[str, int]]:
    spec = load_spec(settings.layout(ds).feature_spec)
    counts = {split: count_requests(settings.duckdb_path, split) for split in ("train", "test")}
    if counts["test"] and date_range(settings.duckdb_path, "test") != (ds, ds):
        raise NoTrainingData(f"the marts in {settings.duckdb_path} were built for ds="
                             f"{date_range(settings.duckdb_path, 'test')[0]}, not {ds}: run "
                             f"`edgerec dbt build --ds {ds}` first")
    empty = [split for split, n in counts.items() if n == 0]
    if empty:
        raise NoTrainingData(f"ds={ds}: no {' and no '.join(empty)} requests in the marts "
                             f"({settings.duckdb_path}); the first day of a deployment has no train days")
    return spec, counts


def parents(settings: Settings, client, names: list[str]) -> tuple[registry.ModelVersion | None, dict[str, Parent]]:
    """What the day's models start from (EDGEREC_TRAIN_WARM_START): their checkpoints in the champion's daily run
    (`daily_checkpoints`). Nothing when warm start is off or there is no champion yet."""
    champion = registry.champion(client) if settings.train.warm_start else None
    return champion, daily_checkpoints(client, champion, names) if champion else {}


def daily_checkpoints(client, version: registry.ModelVersion, names: list[str]) -> dict[str, Parent]:
    """The checkpoints of `names` in the daily run that trained `version`: the version's own for the full model,
    each other model's from its sibling run. A model without one there is left out (it trains from random
    weights)."""
    runs = {FULL_MODEL: version.run_id}
    run = client.get_run(version.run_id)
    daily = run.data.tags.get("mlflow.parentRunId")
    if daily:
        for sibling in client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{daily}'"):
            name = sibling.data.params.get("model")
            if name in names and name != FULL_MODEL:
                runs[name] = sibling.info.run_id
    found = {name: checkpoints.run_checkpoint(client, run_id) for name, run_id in runs.items() if name in names}
    return {name: Parent(version.id, c) for name, c in found.items() if c is not None}


def evaluate_rules(settings: Settings, spec: dict, test: Batch, cfg: TrainConfig) -> dict[str, RankingReport]:
    """The hand rules' reports on the test mart, their popularity counted over the whole train window."""
    rules = HandRules(click_counts(read_batches(settings.duckdb_path, "train", spec, cfg.batch_requests)))
    scored = score_rules(rules, test.batches(cfg.batch_requests))
    sold = [v for batch in test.batches(cfg.batch_requests) for v in batch.per_request(batch.sold())]
    return {name: evaluate(*triple, values=sold) for name, triple in scored.items()}


def train_day(settings: Settings, ds: str, progress: Callable[[str], None] | None = None) -> dict:
    """Train, compare, log and register; returns where everything went. Raises NoTrainingData on empty marts."""
    import mlflow

    spec, counts = _data(settings, ds)
    cfg, names = train_config(settings), models_to_train(settings)
    device = pick_device(cfg)
    day = settings.layout(ds)
    client = registry.connect(settings)
    window = date_range(settings.duckdb_path, "train")
    champion, starts = parents(settings, client, names)
    reports: dict[str, RankingReport] = {}
    explored: dict[str, RankingReport] = {}
    data = DayData.load(settings.duckdb_path, spec, cfg.validation_share)  # read and padded once for every model
    held_out = len(data.validation) if data.validation is not None else 0
    curves = Curves({}, initial_order_gauc(data.validation.batches(cfg.batch_requests))) if held_out else None
    log.info("training %s on %s train requests (%s more held out for early stopping), testing on %s (ds=%s), "
             "device %s", ", ".join(names), f"{counts['train'] - held_out:,}", f"{held_out:,}", f"{counts['test']:,}",
             ds, device)
    if champion is not None:
        log.info("starting %s from the champion's day (%s, ds=%s); the others from random weights",
                 ", ".join(n for n in names if n in starts) or "no model", champion.id, champion.ds)
    with mlflow.start_run(run_name=f"daily-{ds}") as parent:
        mlflow.log_params({"ds": ds, "models": ",".join(names), "train_requests": counts["train"],
                           "validation_requests": held_out,
                           "test_requests": counts["test"], "feature_spec_sha": spec["sha256"], "device": str(device),
                           **{f"train.{k}": v for k, v in cfg.model_dump().items()}})
        mlflow.log_dict(spec, "feature_spec.json")
        for trained in train_models(settings.duckdb_path, spec, cfg, names, device, settings.train.workers, starts):
            name, history, report = trained.name, trained.history, trained.report
            if progress:
                progress(name)
            model = trained.model(spec, cfg)
            with mlflow.start_run(run_name=name, nested=True) as child:
                for result in history:
                    metrics = {"train_loss": result.loss, "learning_rate": result.lr,
                               "candidate_samples_per_s": result.samples_per_s, "epoch_seconds": result.seconds}
                    if result.validation_gauc is not None:
                        metrics["validation_gauc"] = result.validation_gauc
                    mlflow.log_metrics(metrics, step=result.epoch + 1)
                mlflow.log_metrics({f"seconds_{phase}": s for phase, s in trained.seconds.items()})
                kept = "parent" if trained.parent else "last"  # no epoch beat the start
                mlflow.log_params({"model": name, "parameters": sum(p.numel() for p in model.parameters()),
                                   **{f"learned_rows.{table}": int(model.items.learned(table).sum())
                                      for table in model.items.tables}, "epochs_run": len(history),
                                   "best_epoch": next((r.epoch + 1 for r in reversed(history) if r.kept), kept),
                                   "warm_start_from": trained.parent or "none"})
                mlflow.log_metrics(_metrics(report))
                if trained.explored is not None:
                    mlflow.log_metrics({"gauc_explored": trained.explored.gauc.value})
                    explored[name] = trained.explored
                checkpoints.log_checkpoint(model, cfg, spec)  # the model's next day may start from it
            reports[name] = report
            if curves is not None:
                curves.by_model[name] = [r.validation_gauc for r in history]
            if name == FULL_MODEL:
                full, full_run, full_parent = model, child.info.run_id, trained.parent
        comparison = compare(reports, evaluate_rules(settings, spec, data.test, cfg), curves,
                             notes=input_notes(spec), explored=explored)
        paths = comparison.write(day.comparison)
        for path in paths.values():
            mlflow.log_artifact(str(path), artifact_path="comparison")
        records = comparison.to_records()
        mlflow.log_table(data={k: [r[k] for r in records] for k in records[0]}, artifact_file="comparison/table.json")
        report = reports[FULL_MODEL]
        tags = {"ds": ds, "data_window": f"{window[0]}..{window[1]}",
                "test_day": ds, "feature_spec_sha": spec["sha256"], "git_sha": registry.git_sha(),
                "model": FULL_MODEL, "warm_start_from": full_parent or "none",
                **{k: f"{v:.6f}" for k, v in _metrics(report).items()}}
        with mlflow.start_run(run_id=full_run, nested=True):
            number, vid = checkpoints.register(full, cfg, spec, tags)
    summary = {"ds": ds, "run_id": parent.info.run_id, "registered_model": registry.REGISTERED_MODEL,
               "version": number, "version_id": vid, "train_requests": counts["train"],
               "test_requests": counts["test"], "gauc": report.gauc.value,
               "comparison": {k: str(v) for k, v in paths.items()}, "checks": comparison.checks,
               "warm_start_from": full_parent}
    TrainingSummary(**summary).write(day)
    log.info("comparison (ds=%s):\n%s", ds, comparison.to_markdown())
    return summary | {"table": comparison.to_markdown()}


def _metrics(report: RankingReport) -> dict[str, float]:
    metrics = {"gauc": report.gauc.value, "gauc_low": report.gauc.low, "gauc_high": report.gauc.high}
    for k, v in report.ndcg.items():
        metrics[f"ndcg_at_{k}"] = v
        metrics[f"ndcg_at_{k}_initial"] = report.ndcg_initial[k]
    for k, v in report.clicks.items():
        metrics[f"clicks_at_{k}"] = v
        metrics[f"clicks_at_{k}_initial"] = report.clicks_initial[k]
    return metrics


class Verdict(EvaluationGate):
    """The evaluation gate's decision on one version, with the figures it rests on (its report, and a gate's
    verdict)."""

    def gate_verdict(self, ds: str) -> GateVerdict:
        """Refused: one warning alert with the figures and the reason."""
        alerts = () if self.blessed else (Alert(
            level="warn", check="training.evaluation_gate", observed=f"version {self.version} ({self.version_id}) "
            f"GAUC {self.gauc:.5f}", threshold=self.reason, ds=ds),)
        outcome = "blessed" if self.blessed else "refused"
        summary = f"version {self.version} ({self.version_id}) {outcome}: {self.reason}"
        return GateVerdict("evaluation_gate", ds, self.blessed, summary, alerts)


def judge(gauc: float, floor: float, champion_gauc: float | None, tolerance: float) -> tuple[bool, str]:
    """Blessed iff GAUC >= floor and (no champion, or GAUC >= champion GAUC - tolerance); the reason says why."""
    rule = Floor("GAUC", floor, tolerance, "EDGEREC_GATE_MIN_GAUC", "EDGEREC_GATE_TOLERANCE")
    return rule.judge(gauc, champion_gauc)


def gate_day(settings: Settings, ds: str, version: str | None = None) -> Verdict:
    """Score the day's version (or `version`) and the champion on ds's test set; tag the verdict on the version
    and move the `champion` alias to it when blessed. Writes the day's `EvaluationGate` report."""
    spec, _ = _data(settings, ds)
    client = registry.connect(settings)
    candidate = _version(client, ds, version)
    cfg = train_config(settings)
    device = pick_device(cfg)
    test = load_split(settings.duckdb_path, "test", spec)
    gauc = evaluate_on_test(test, checkpoints.load_version(client, candidate), cfg, device).gauc.value
    baseline = registry.champion(client)
    if baseline is not None and baseline.number == candidate.number:
        baseline = None  # re-judging the champion itself: the floor alone
    champion_gauc, incomparable = None, ""
    if baseline is not None:
        try:
            champion_gauc = evaluate_on_test(test, checkpoints.load_version(client, baseline), cfg, device).gauc.value
        except checkpoints.IncompatibleVersion as e:  # the model code changed: no like-for-like baseline
            incomparable, baseline = f"; the champion was not compared: {e}", None
    blessed, reason = judge(gauc, settings.gate.min_gauc, champion_gauc, settings.gate.tolerance)
    reason += incomparable
    verdict = Verdict(ds=ds, version=candidate.number, version_id=candidate.id, blessed=blessed, gauc=gauc,
                      floor=settings.gate.min_gauc, champion=baseline.id if baseline else None,
                      champion_gauc=champion_gauc, tolerance=settings.gate.tolerance, reason=reason)
    registry.record_verdict(client, registry.REGISTERED_MODEL, candidate.number, blessed, verdict.model_dump_json())
    verdict.write(settings.layout(ds))
    log.info("evaluation gate ds=%s version %s (%s): %s: %s", ds, candidate.number, candidate.id,
             "BLESSED" if blessed else "REFUSED", reason)
    return verdict


def _version(client, ds: str, version: str | None) -> registry.ModelVersion:
    """`version` (registry number or version id), or the version trained for ds. A version is judged on its own
    day's test requests: one trained for another day is refused, so no day's report is overwritten with it."""
    found = registry.find_version(client, version) if version else registry.version_of_day(client, ds)
    if found is None:
        raise MissingInput(f"no version of {registry.REGISTERED_MODEL} was trained for ds={ds}; run "
                           f"`edgerec train --ds {ds}` first")
    trained_for = found.tags.get("ds")
    if trained_for not in (None, ds):
        raise ConfigError(f"version {found.number} ({found.id}) was trained for ds={trained_for}, not ds={ds}: its "
                          f"gates judge it on that day's test requests (pass --ds {trained_for}, or no --ds)")
    return found


def _blessed_version(client, ds: str, version: str | None) -> registry.ModelVersion:
    found = _version(client, ds, version)
    if found.blessing is not registry.Blessing.PASSED:
        raise NotBlessed(f"version {found.number} ({found.id}) is not blessed ({registry.BLESSED}="
                         f"{found.tags.get(registry.BLESSED)!r}); run `edgerec evaluate` on it first")
    return found


def export_day(settings: Settings, ds: str, version: str | None = None) -> Path:
    """Export the day's blessed version (or `version`) into settings.bundles_dir/<version id>; returns the bundle.

    Bundles are immutable: a bundle already exported is verified and reused, never rewritten; one whose business
    rules differ from EDGEREC_RULES_CONFIG's is refused (the rules are part of the version)."""
    from edgerec.contracts.bundle import BundleError, verify_bundle
    from edgerec.contracts.rules import BusinessRules, manifest_rules
    from edgerec.contracts.signing import exporter_key
    from training.export import export_bundle

    rules = json_config(BusinessRules, settings.rules.config, "EDGEREC_RULES_CONFIG")
    client = registry.connect(settings)
    found = _blessed_version(client, ds, version)
    root = settings.bundles_dir / found.id
    if root.exists():
        try:
            exported = verify_bundle(root)
        except BundleError as e:
            raise BundleError(f"{e}; the bundle of {found.id} is damaged: delete {root} and export again") from e
        shipped = manifest_rules(exported)
        if shipped != rules:
            raise ConfigError(f"the bundle of {found.id} was exported with the rules {shipped.describe()!r}, "
                              f"EDGEREC_RULES_CONFIG says {rules.describe()!r}: a version's rules do not change; set "
                              f"the rules back, or delete {root} to export it again with the new ones")
        log.info("bundle %s already exported and intact", root)
        return root
    checkpoint = checkpoints.load_checkpoint(client, found)  # read once: the model and the spec it was trained on
    signer = exporter_key(settings.signing_key_path, settings.trusted_keys_dir, settings.release.signing_key is None)
    manifest = export_bundle(checkpoints.model_from_checkpoint(checkpoint, found.label), checkpoint["spec"], root,
                             version_id=found.id, signer=signer, mlflow_version=found.number, run_id=found.run_id,
                             recall_version=registry.recall_serving(client, ds) if settings.source == "external"
                             else None,  # the simulated world's logs come from its own cloud ranker
                             rules=rules)
    log.info("exported version %s (%s) to %s: %s bytes without embeddings", found.number, found.id, root,
             f"{sum(f['bytes'] for f in manifest['files'].values()):,}")
    return root


def servability_budgets(settings: Settings):
    from training.servability import Budgets

    return json_config(Budgets, settings.servability.config, "EDGEREC_SERVABILITY_CONFIG")


def servability_day(settings: Settings, ds: str, version: str | None = None):
    """The servability gate on the exported bundle of the day's blessed version (or `version`), replaying ds's test
    requests; the verdict goes on the version (tags SERVABLE and SERVABILITY) and into reports/ds=D/export/."""
    from edgerec.contracts.bundle import MANIFEST, sha256_of
    from training.servability import check_servability

    spec, _ = _data(settings, ds)
    client = registry.connect(settings)
    found = _blessed_version(client, ds, version)
    root = settings.bundles_dir / found.id
    if not root.exists():
        raise MissingInput(f"no bundle for {found.id} in {settings.bundles_dir}: run `edgerec export "
                           f"{found.id}` first")
    budgets = servability_budgets(settings)
    batches = read_batches(settings.duckdb_path, "test", spec, 256, limit=budgets.requests)
    report = check_servability(root, checkpoints.load_version(client, found), batches, budgets)
    summary = {"passed": report.passed, "failures": report.failures,
               "macs": {name: c["macs"] for name, c in report.costs.items()},
               f"estimated_ms_{report.device}": report.estimated_ms.get(report.device, {}),
               "host_p99_ms": {k: round(v["p99"], 4) for k, v in report.latency_ms.items()}}
    servable = registry.Blessing.given(report.passed).value
    for key, value in ((registry.SERVABLE, servable), (registry.SERVABILITY, json.dumps(summary))):
        client.set_model_version_tag(registry.REGISTERED_MODEL, found.number, key, value)
    if (root / MANIFEST).exists():
        client.set_model_version_tag(registry.REGISTERED_MODEL, found.number, registry.BUNDLE_SHA,
                                     sha256_of(root / MANIFEST))
    client.log_dict(found.run_id, report.to_dict(), f"servability/{ds}.json")
    day = settings.layout(ds)
    Servability(ds=ds, **report.to_dict()).write_with(day, report.to_markdown())
    log.info("servability gate ds=%s %s: %s", ds, found.id, "PASSED" if report.passed else
             "FAILED: " + "; ".join(report.failures))
    return report


class ReplayVerdict(ReplayGate):
    """The replay gate's decision on one bundle (its report, and a gate's verdict)."""

    def gate_verdict(self, ds: str) -> GateVerdict:
        """Refused: one warning alert with the figures."""
        alerts = () if self.passed else (Alert(
            level="warn", check="export.replay_gate", observed=f"bundle {self.version}: {self.reason}",
            threshold="clicks not lost against the cloud order with confidence", ds=ds),)
        summary = f"bundle {self.version} {'passed' if self.passed else 'refused by'} the replay gate: {self.reason}"
        return GateVerdict("replay_gate", ds, self.passed, summary, alerts)


def replay_day(settings: Settings, ds: str, version: str | None = None) -> ReplayVerdict:
    """The replay gate on the exported bundle of the day's blessed version (or `version`): EDGEREC_REPLAY_USERS
    simulated users on the days after ds, once with the cloud's order and once with the bundle on the device
    (`edgerec.edge.replay`); refused when it loses clicks with the whole 95% interval below zero. The verdict goes on
    the version (tags REPLAYED and REPLAY) and into reports/ds=D/export/ (JSON, Markdown, CTR-by-position plot)."""
    import datetime as dt

    from edgerec.contracts.signing import trusted_keys
    from edgerec.edge.replay import lost_clicks, plot, replay, to_markdown
    from edgerec.raw import day_sim_config

    client = registry.connect(settings)
    found = _blessed_version(client, ds, version)
    day = settings.layout(ds)
    if settings.source != "simulator" or settings.replay.users == 0:
        why = ("EDGEREC_SOURCE=external: no simulated world to replay" if settings.source != "simulator"
               else "EDGEREC_REPLAY_USERS=0")
        verdict = ReplayVerdict(ds=ds, version=found.id, passed=True, reason=f"not judged: {why}")
        text = f"# Replay gate, ds={ds}: {found.id} not judged\n\n{why}"
    else:
        root = settings.bundles_dir / found.id
        if not root.exists():
            raise MissingInput(f"no bundle for {found.id} in {settings.bundles_dir}: run `edgerec export "
                               f"{found.id}` first")
        first = dt.date.fromisoformat(ds) + dt.timedelta(days=1)
        cfg = day_sim_config(settings, str(first)).model_copy(update={"users": settings.replay.users})
        result = replay(cfg, root, first, trusted=trusted_keys(settings.trusted_keys_dir), days=settings.replay.days)
        lost = lost_clicks(result)
        clicks = result["intervals"]["clicks"]
        reason = lost or (f"clicks {clicks['value']:+.2%} [{clicks['low']:+.2%}, {clicks['high']:+.2%}] against the "
                          f"cloud order over {result['units']:,} user-days: no loss with confidence")
        verdict = ReplayVerdict(ds=ds, version=found.id, passed=lost is None, reason=reason, replay=result)
        outcome = "PASSED" if lost is None else "REFUSED"
        text = f"# Replay gate, ds={ds}: {found.id} {outcome}\n\n{reason}\n\n{to_markdown(result)}"
        ReplayGate.plot_path(day).parent.mkdir(parents=True, exist_ok=True)
        plot(result, ReplayGate.plot_path(day))
        client.set_model_version_tag(registry.REGISTERED_MODEL, found.number, registry.REPLAYED,
                                     registry.Blessing.given(verdict.passed).value)
        client.set_model_version_tag(registry.REGISTERED_MODEL, found.number, registry.REPLAY,
                                     json.dumps({"passed": verdict.passed, "reason": reason,
                                                 "intervals": result["intervals"], "units": result["units"]}))
    write_text(ReplayGate.markdown_path(day), text + "\n")
    verdict.write(day)
    log.info("replay gate ds=%s %s: %s", ds, found.id, verdict.reason)
    return verdict
