"""The recall stages of the daily pipeline, as plain functions of (settings, ds), for the DAG and the CLI.

`train_recall_day`: train the recall models on both tasks, compare them with the reference rules on ds's test
clicks, write and log the comparison, register the shipped model (PWPRec(LS), user-based task) as a new version of
`edgerec-recall`. `gate_recall_day`: bless that version only if its Recall@20 reaches the floor and, when a
champion exists, the champion's on the same clicks and negatives minus a tolerance.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgerec import registry
from edgerec.alerts import Alert
from edgerec.config import Settings
from edgerec.errors import MissingInput, NotBlessed, build_config
from edgerec.gates import Floor, GateVerdict
from edgerec.recall import user_histories
from edgerec.reports import RecallGate, RecallTraining
from training.checkpoints import IncompatibleVersion
from training.config import knobs, select_models
from training.recall.compare import CLOUD_RANKER, RecallComparison, TaskTable
from training.recall.config import TASKS, RecallConfig
from training.recall.data import (
    Catalog,
    Samples,
    read_clicks,
    read_day,
    read_items,
    read_samples,
    right_aligned,
)
from training.recall.evaluation import RecallReport, UserBootstrap, eval_candidates, metric_table, ranks
from training.recall.models import RECALL_MODELS, REGISTERED, build
from training.recall.models.base import TwoTower
from training.recall.rules import popularity, score_popular, score_recent
from training.recall.trainer import Epoch, fit, score
from training.trainer import seed_everything

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint/recall.pt"
RULES = {"rule: most popular": "popular", "rule: interacted before, latest first": "recent"}


def recall_config(settings: Settings) -> RecallConfig:
    """RecallConfig from EDGEREC_RECALL_CONFIG (JSON), then EDGEREC_RECALL_EPOCHS."""
    return build_config(RecallConfig, knobs(settings.recall.config, epochs=settings.recall.epochs),
                        prefix="recall_config.")


def models_to_train(settings: Settings) -> list[str]:
    """EDGEREC_RECALL_MODELS in the comparison's order; the registered model always."""
    return select_models(settings.recall.models, list(RECALL_MODELS), REGISTERED, "EDGEREC_RECALL_MODELS")


def test_candidates(catalog: Catalog, test: Samples, cfg: RecallConfig) -> np.ndarray:
    """Each test click's positive and sampled negatives, as item indices of `catalog` (the gate rebuilds every version
    it compares on that one catalog)."""
    return eval_candidates(test.target, len(catalog), cfg.eval_negatives, cfg.eval_seed)


def rule_reports(task: str, train: Samples, test: Samples, candidates: np.ndarray, n_items: int) -> dict:
    counts = popularity(train, n_items)
    scored = {"popular": score_popular(candidates, counts),
              "recent": score_recent(candidates, test.history, counts)}
    return {title: RecallReport(title, task, metric_table(ranks(scored[key]))) for title, key in RULES.items()}


@dataclass(frozen=True)
class Trained:
    key: str
    task: str
    model: TwoTower
    epochs: list[Epoch]
    report: RecallReport
    train_clicks: int


def train_and_compare(catalog: Catalog, train: Samples, test: Samples, cfg: RecallConfig, keys: list[str], width: int,
                      progress: Callable[[str], None] | None = None) -> tuple[RecallComparison, list[Trained]]:
    """Each model of `keys` trained on each task from the same seed and scored on that task's test clicks against the
    same sampled negatives, beside the reference rules."""
    tables: dict[str, TaskTable] = {}
    trained = []
    for task in TASKS:
        task_train, task_test = train.for_task(task), test.for_task(task)
        candidates = test_candidates(catalog, task_test, cfg)
        table = tables[task] = TaskTable(task, len(task_test), UserBootstrap(task_test.user))
        for key in keys:
            seed_everything(cfg.seed)
            model = build(key, catalog, cfg, width)
            if progress:
                progress(f"{model.name}, {task}-based task")
            epochs = fit(model, task_train, cfg, task, len(catalog))
            per_click = metric_table(ranks(score(model, task_test.history, candidates)))
            report = table.reports[model.name] = RecallReport(model.name, task, per_click)
            trained.append(Trained(key, task, model, epochs, report, len(task_train)))
        table.reports |= rule_reports(task, task_train, task_test, candidates, len(catalog))
    return RecallComparison(tables), trained


CATALOG_K = 100


def catalog_recall(settings: Settings, model: TwoTower, catalog: Catalog, train: Samples, test: Samples
                   ) -> dict[str, np.ndarray]:
    """Per test click (user task): is the clicked item among the 100 candidates of each source, all items eligible:
    the model's nearest, the most popular, and, on the simulated world, the simulator's cloud ranker's answer to a
    fresh page request at the click's time (the reference the recall is to beat)."""
    user_ids, times, targets = read_clicks(settings.duckdb_path, "test")
    model.eval()
    with torch.no_grad():
        items = model.item_vectors(torch.arange(1, len(catalog) + 1))
        hits = []
        for lo in range(0, len(test), 256):
            users = model.encode(torch.from_numpy(test.history[lo:lo + 256]))
            nearest = torch.topk(users @ items.T, min(CATALOG_K, len(catalog)), dim=1).indices.numpy() + 1
            hits.append((nearest == test.target[lo:lo + 256, None]).any(axis=1))
    popular = np.argsort(-popularity(train, len(catalog))[1:], kind="stable")[:CATALOG_K] + 1
    out = {"PWPRec(LS)": np.concatenate(hits).astype(float) if hits else np.zeros(0),
           "rule: most popular": np.isin(test.target, popular).astype(float)}
    if settings.source == "simulator":
        out[CLOUD_RANKER] = cloud_ranker_hits(settings, user_ids, times, targets)
    return out


def cloud_ranker_hits(settings: Settings, user_ids: list[str], times: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per click: is the item among the simulated cloud ranker's candidates for a fresh page request of its user at
    its time."""
    from edgerec.sim.config import load_sim_config
    from edgerec.sim.engine import Simulator

    sim = Simulator(load_sim_config(settings.sim.config, preset=settings.sim.world, users=settings.sim.users,
                                    seed=settings.sim.seed))
    hits = np.zeros(len(targets))
    for n, (user, t, target) in enumerate(zip(user_ids, times, targets, strict=True)):
        items, _ = sim.cloud_candidates(int(user.lstrip("u")), int(t))
        hits[n] = float(target in items)
    return hits


def train_recall_day(settings: Settings, ds: str, progress: Callable[[str], None] | None = None) -> RecallTraining:
    """Train, compare, log and register. Raises NoTrainingData while either recall mart is empty."""
    import mlflow

    cfg, width, keys = recall_config(settings), settings.marts.recall_history, models_to_train(settings)
    catalog, train, test = read_day(settings.duckdb_path, width)
    registry.connect(settings)  # the tracking store and the experiment
    day = settings.layout(ds)
    comparison, trained = train_and_compare(catalog, train, test, cfg, keys, width, progress)
    shipped = next(t.model for t in trained if t.key == REGISTERED and t.task == cfg.task)
    comparison.catalog = catalog_recall(settings, shipped, catalog, train, test)
    with mlflow.start_run(run_name=f"recall-{ds}") as parent:
        mlflow.log_params({"ds": ds, "kind": "recall", "train_clicks": len(train), "test_clicks": len(test),
                           "items": len(catalog), **{f"recall.{k}": v for k, v in cfg.model_dump().items()}})
        for t in trained:
            with mlflow.start_run(run_name=f"{t.model.name} ({t.task})", nested=True) as child:
                mlflow.log_params({"model": t.key, "task": t.task, "train_clicks": t.train_clicks,
                                   "parameters": sum(p.numel() for p in t.model.parameters())})
                for e in t.epochs:
                    mlflow.log_metrics({"train_loss": e.loss, "samples_per_s": e.samples_per_s,
                                        "epoch_seconds": e.seconds}, step=e.epoch + 1)
                mlflow.log_metrics({m: t.report.mean(m) for m in t.report.per_click})
                if t.key == REGISTERED and t.task == cfg.task:
                    registered, run_id = t, child.info.run_id
        paths = comparison.write(day.reports / "recall")
        for path in paths.values():
            mlflow.log_artifact(str(path), artifact_path="recall_comparison")
        report = registered.report
        tags = {"ds": ds, "kind": "recall", "test_day": ds, "git_sha": registry.git_sha(), "model": REGISTERED,
                "task": cfg.task, "train_clicks": str(len(train)), "items": str(len(catalog)),
                **{m: f"{report.mean(m):.6f}" for m in report.per_click}}
        with mlflow.start_run(run_id=run_id, nested=True):
            number, vid = register(registered.model, catalog, cfg, tags)
    summary = RecallTraining(ds=ds, run_id=parent.info.run_id, registered_model=registry.RECALL_MODEL,
                             version=number, version_id=vid, train_clicks=len(train),
                             test_clicks=len(test.for_task(cfg.task)),
                             recall_at_20=report.mean("recall_at_20"),
                             comparison={k: str(v) for k, v in paths.items()}, checks=comparison.checks)
    summary.write(day)
    log.info("recall comparison (ds=%s):\n%s", ds, comparison.to_markdown())
    return summary


def register(model: TwoTower, catalog: Catalog, cfg: RecallConfig, tags: dict[str, str]) -> tuple[str, str]:
    """Log the model's checkpoint (weights, config, the catalog it was trained on) in the active run and register
    it as a new version of edgerec-recall. Returns (registry number, version id)."""
    import mlflow

    run = mlflow.active_run()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(CHECKPOINT).name
        saved = {"item_ids": torch.from_numpy(catalog.item_ids), "codes": torch.from_numpy(catalog.codes),
                 "vocabularies": catalog.vocabularies}
        torch.save({"model": model.key, "config": cfg.model_dump(), "width": model.width, "catalog": saved,
                    "state_dict": model.state_dict()}, path)
        mlflow.log_artifact(str(path), artifact_path=str(Path(CHECKPOINT).parent))
    client = mlflow.MlflowClient()
    if not client.search_registered_models(f"name = '{registry.RECALL_MODEL}'"):
        client.create_registered_model(registry.RECALL_MODEL, description="the cloud's two-tower recall "
                                       f"({RECALL_MODELS[REGISTERED].name}); one version per daily retrain")
    vid = registry.version_id(tags["ds"], run.info.run_id)
    version = client.create_model_version(registry.RECALL_MODEL, f"{run.info.artifact_uri}/checkpoint",
                                          run_id=run.info.run_id,
                                          tags={**tags, registry.VERSION_TAG: vid,
                                                registry.BLESSED: registry.Blessing.PENDING.value})
    return str(version.version), vid


def load_version(client, version: registry.ModelVersion,
                 items: dict[str, np.ndarray] | None = None) -> tuple[TwoTower, Catalog]:
    """A registered recall version's model on the catalog it was trained on, or on `items` (today's dim_items)
    coded with the feature values it learned: a newer catalog's items then get their own rows (their features and
    hashed id), not the padding row."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = client.download_artifacts(version.run_id, CHECKPOINT, tmp)
        except Exception as error:  # the store's own error types differ: a missing file is the case to name
            raise MissingInput(f"recall {version.label} has no {CHECKPOINT} in its run {version.run_id}") from error
        checkpoint = torch.load(local, weights_only=True)  # tensors, numbers and strings: nothing to unpickle
    saved = checkpoint["catalog"]
    if items is None:
        catalog = Catalog(saved["item_ids"].numpy(), saved["codes"].numpy(), saved["vocabularies"])
    else:
        catalog = Catalog.of(items, saved["vocabularies"])
    try:
        model = build(checkpoint["model"], catalog, RecallConfig(**checkpoint["config"]), checkpoint["width"])
        model.load_state_dict(checkpoint["state_dict"])  # the catalog's buffers are not in it: they follow `catalog`
    except (KeyError, ValueError, RuntimeError) as error:  # a model, a knob or a weight this code no longer has
        raise IncompatibleVersion(f"recall {version.label} cannot be rebuilt by this code: {error}") from None
    return model.eval(), catalog


def recall_at_20(model: TwoTower, test: Samples, candidates: np.ndarray) -> float:
    return float(metric_table(ranks(score(model, test.history, candidates)))["recall_at_20"].mean())


class RecallVerdict(RecallGate):
    def gate_verdict(self, ds: str) -> GateVerdict:
        alerts = () if self.blessed else (Alert(
            level="warn", check="recall.evaluation_gate", observed=f"recall version {self.version} "
            f"({self.version_id}) Recall@20 {self.recall_at_20:.4f}", threshold=self.reason, ds=ds),)
        outcome = "blessed" if self.blessed else "refused"
        return GateVerdict("recall_gate", ds, self.blessed,
                           f"recall version {self.version} ({self.version_id}) {outcome}: {self.reason}", alerts)


def judge_recall(value: float, floor: float, champion: float | None, tolerance: float) -> tuple[bool, str]:
    """Blessed iff Recall@20 >= floor and (no champion, or >= the champion's - tolerance)."""
    rule = Floor("Recall@20", floor, tolerance, "EDGEREC_RECALL_MIN_RECALL_AT_20", "EDGEREC_RECALL_TOLERANCE", 4)
    return rule.judge(value, champion)


def gate_recall_day(settings: Settings, ds: str) -> RecallVerdict:
    """Judge the recall version trained for ds against the floor and the champion on ds's test clicks (the same
    sampled negatives for both); tag the verdict and move the champion alias when blessed."""
    client = registry.connect(settings)
    candidate = registry.version_of_day(client, ds, registry.RECALL_MODEL)
    if candidate is None:
        raise MissingInput(f"no version of {registry.RECALL_MODEL} was trained for ds={ds}; run "
                           f"`edgerec recall train --ds {ds}` first")
    # Both models on today's items, so that they score the same clicks against the same negatives
    items = read_items(settings.duckdb_path)
    model, catalog = load_version(client, candidate, items)
    cfg = model.cfg
    test = read_samples(settings.duckdb_path, "test", catalog, model.width, {}).for_task(cfg.task)
    if not len(test):
        raise MissingInput(f"no test clicks with a history in fct_recall_test for ds={ds}")
    candidates = test_candidates(catalog, test, cfg)
    value = recall_at_20(model, test, candidates)
    baseline = registry.champion(client, registry.RECALL_MODEL)
    champion_value = None
    incomparable = ""
    if baseline is not None and baseline.number != candidate.number:
        try:
            champion, _ = load_version(client, baseline, items)
            champion_value = recall_at_20(champion, test, candidates)
        except IncompatibleVersion as error:  # the model code changed: no like-for-like baseline
            incomparable, baseline = f"; the champion was not compared: {error}", None
    else:
        baseline = None
    blessed, reason = judge_recall(value, settings.recall.min_recall_at_20, champion_value, settings.recall.tolerance)
    reason += incomparable
    verdict = RecallVerdict(ds=ds, version=candidate.number, version_id=candidate.id, blessed=blessed,
                            recall_at_20=value, floor=settings.recall.min_recall_at_20,
                            champion=baseline.id if baseline else None, champion_recall_at_20=champion_value,
                            tolerance=settings.recall.tolerance, reason=reason)
    registry.record_verdict(client, registry.RECALL_MODEL, candidate.number, blessed, verdict.model_dump_json())
    verdict.write(settings.layout(ds))
    log.info("recall gate ds=%s version %s (%s): %s: %s", ds, candidate.number, candidate.id,
             "BLESSED" if blessed else "REFUSED", reason)
    return verdict


def export_recall_day(settings: Settings, ds: str) -> Path:
    """The blessed recall version of ds as its bundle in settings.recall_bundles_dir/<version id>, signed, and
    checked on the served path: the bundle's ONNX tower must give the model's user vectors for ds's users. The
    manifest's sha256 is recorded on the version (`BUNDLE_SHA`): the deploy ships only those bytes. Bundles are
    immutable: one already exported is verified and reused, never rewritten."""
    from edgerec.contracts.bundle import MANIFEST, BundleError, sha256_of
    from edgerec.contracts.recall_bundle import verify_recall_bundle
    from edgerec.contracts.signing import exporter_key
    from training.recall.export import export_recall

    client = registry.connect(settings)
    version = registry.version_of_day(client, ds, registry.RECALL_MODEL)
    if version is None or version.blessing is not registry.Blessing.PASSED:
        raise NotBlessed(f"no blessed version of {registry.RECALL_MODEL} for ds={ds}"
                         + (f" ({version.label} is {version.blessing.value})" if version else "")
                         + f"; run `edgerec recall evaluate --ds {ds}` first")
    root = settings.recall_bundles_dir / version.id
    model, catalog = load_version(client, version)
    if root.exists():
        try:
            verify_recall_bundle(root)
        except BundleError as e:
            raise BundleError(f"{e}; the recall bundle of {version.id} is damaged: delete {root} and export "
                              "again") from e
    else:
        train = read_samples(settings.duckdb_path, "train", catalog, settings.marts.recall_history, {})
        signer = exporter_key(settings.signing_key_path, settings.trusted_keys_dir,
                              settings.release.signing_key is None)
        manifest = export_recall(model, catalog, root, version_id=version.id, clicks=popularity(train, len(catalog)),
                                 signer=signer, mlflow_version=version.number, run_id=version.run_id)
        log.info("exported recall version %s (%s) to %s: %s items of %s dimensions", version.number, version.id,
                 root, f"{manifest['items']:,}", manifest["dim"])
    _, histories = next(user_histories(settings.duckdb_path, SERVED_CHECK_USERS), ([], []))
    check_served(model, catalog, root, histories)
    client.set_model_version_tag(registry.RECALL_MODEL, version.number, registry.BUNDLE_SHA,
                                 sha256_of(root / MANIFEST))
    return root


SERVED_CHECK_USERS = 512
SERVED_TOLERANCE = 1e-4  # the largest difference of a user vector's component, ONNX against PyTorch


def check_served(model: TwoTower, catalog: Catalog, root: Path, histories: list[list[int]]) -> float:
    """The largest difference between the bundle's user vectors (edgerec.recall, as every consumer runs them) and
    the model's own, over `histories`; BundleError above SERVED_TOLERANCE."""
    from edgerec.contracts.bundle import BundleError
    from edgerec.recall import RecallRuntime

    runtime = RecallRuntime(root)
    served, embedded = runtime.embed(histories)
    index, _ = right_aligned(histories, model.width, catalog)
    with torch.no_grad():
        expected = model.encode(torch.from_numpy(index)).numpy()
    gap = float(np.abs(served[embedded] - expected[embedded]).max()) if embedded.any() else 0.0
    if gap > SERVED_TOLERANCE:
        raise BundleError(f"recall bundle {root}: its user tower differs from the model by {gap:.2e} (more than "
                          f"{SERVED_TOLERANCE:.0e}) on ds's users: the export is wrong, do not ship it")
    return gap
