"""Training the day's models: one model trained and tested (`train_and_test`), and all of them side by side in
worker processes (`train_models`).

On the CPU each model trains in its own process with one torch thread. The re-rankers are small (GRUs of 32 units
over batches of 512 requests): a second thread in one process gains about 15%, a second process about 90%. One
thread per model also makes the weights the same on any machine, whatever its number of cores or workers (the
order of a multi-threaded reduction follows the thread count). With CUDA the models train one after another in
this process.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from training.checkpoints import IncompatibleVersion, warm_start
from training.config import TrainConfig
from training.data import Batch, DayData, row_counts
from training.evaluation import RankingReport, evaluate
from training.models import Reranker, build_model
from training.position_bias import PositionCorrection
from training.trainer import EpochResult, fit, score, seed_everything, validation_gauc

log = logging.getLogger(__name__)

# The longest first, so that the last to finish is a short one (the paper's order is restored for reporting).
COST_ORDER = ("crban_hubsm_ie_ipv", "crban_huism_ie_ipv", "crban_hubsm_ie", "crban_hubsm_ipv", "dlcm", "dnn_rank")


def evaluate_on_test(test: Batch, model: Reranker, cfg: TrainConfig, device: torch.device) -> RankingReport:
    scored = score(model, test.batches(cfg.batch_requests), device)
    return replace(evaluate(scored.scores, scored.labels, scored.masks, values=scored.values),
                   head_auc=scored.head_aucs())


def train_and_test(model: Reranker, data: DayData, cfg: TrainConfig, device: torch.device,
                   on_epoch: Callable[[EpochResult], None] | None = None, warm: bool = False
                   ) -> tuple[list[EpochResult], RankingReport, float]:
    """Fit `model` (item rows restricted to those the fit requests read often enough), early stopping on the
    held-out requests when there are any, and score it on the test requests: (epochs, test report, seconds the
    test took). `warm`: the model holds a parent's weights (`fit`), and trains at cfg.warm_start_lr; the loss
    corrects the position bias as cfg.position_bias says (training.position_bias)."""
    model.items.restrict(row_counts(data.fit.batches(cfg.batch_requests), model.items))
    validate = None if data.validation is None else (
        lambda m: validation_gauc(m, data.validation.batches(cfg.batch_requests), device))
    correction = PositionCorrection.of(cfg, data.fit.shown_position.shape[1])
    history = fit(model, lambda epoch: data.fit.batches(cfg.batch_requests, seed=cfg.seed * 1_000 + epoch),
                  cfg.model_copy(update={"lr": cfg.warm_start_lr}) if warm else cfg, device, on_epoch, validate, warm,
                  correction)
    start = time.perf_counter()
    return history, evaluate_on_test(data.test, model, cfg, device), time.perf_counter() - start


@dataclass(frozen=True)
class Trained:
    """One model of the day, trained and tested: its weights (CPU tensors), epochs and test report."""

    name: str
    state: dict[str, torch.Tensor]
    history: list[EpochResult]
    report: RankingReport
    seconds: dict[str, float]  # phases: load (the day's marts, once per worker), fit, validation, test
    parent: str | None = None  # the version whose weights it started from (None: from random weights)
    explored: RankingReport | None = None  # on the exploration bucket's test requests, when there are any

    @property
    def samples_per_s(self) -> float:
        """Candidate-samples per second of training (validation excluded)."""
        fit = sum(r.seconds for r in self.history)
        return sum(r.samples for r in self.history) / fit if fit else float("nan")

    def model(self, spec: dict, cfg: TrainConfig) -> Reranker:
        model = build_model(self.name, spec, cfg)
        model.load_state_dict(self.state)
        return model.eval()


_DAYS: dict[tuple, DayData] = {}  # a worker's day, read once for all the models it trains


def day_data(database: Path, spec: dict, share: float) -> DayData:
    """The day's marts in memory, read once per process for every model it trains."""
    key = (str(database), os.stat(database).st_mtime_ns, spec["sha256"], share)
    if key not in _DAYS:
        _DAYS.clear()
        _DAYS[key] = DayData.load(database, spec, share)
    return _DAYS[key]


@dataclass(frozen=True)
class Parent:
    """A registered version's checkpoint of one model, to start that model from (`checkpoints.warm_start`)."""

    version: str  # its version id
    checkpoint: dict


def train_one(database: Path, spec: dict, cfg: TrainConfig, name: str, device: str = "cpu",
              parent: Parent | None = None) -> Trained:
    """Train and test one model on the marts in `database` (in a worker: one thread), from `parent`'s weights
    when it has compatible ones, else from random weights."""
    start = time.perf_counter()
    data = day_data(database, spec, cfg.validation_share)
    loaded = time.perf_counter() - start
    seed_everything(cfg.seed)
    model = build_model(name, spec, cfg)
    if parent is not None:
        try:
            warm_start(model, parent.checkpoint, spec, f"{name} of {parent.version}")
        except IncompatibleVersion as e:
            log.warning("%s trains from random weights: %s", name, e)
            parent = None
    history, report, tested = train_and_test(model, data, cfg, torch.device(device), warm=parent is not None)
    explored = None if data.explored is None else evaluate_on_test(data.explored, model, cfg, torch.device(device))
    seconds = {"load": loaded, "fit": sum(r.seconds for r in history),
               "validation": sum(r.validation_seconds for r in history), "test": tested}
    log.info("%s: %d epochs, %.0f candidate-samples/s; %s", name, len(history),
             sum(r.samples for r in history) / max(seconds["fit"], 1e-9),
             ", ".join(f"{phase} {s:.1f} s" for phase, s in seconds.items()))
    return Trained(name, {k: v.detach().cpu() for k, v in model.state_dict().items()}, history, report, seconds,
                   parent.version if parent else None, explored)


def init_worker(level: int) -> None:
    torch.set_num_threads(1)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s [%(name)s] %(message)s")


# glibc's malloc serves a block above 128 KB from a fresh mmap and unmaps it when freed, and trims the heap's top
# back to the kernel. A training step allocates and frees tensors of megabytes to hundreds of megabytes per batch,
# so every one of them came back as new pages: a day's training took 130M minor page faults and a quarter of its
# CPU time in the kernel. Freed memory that stays in the worker is reused at once (docs/performance.md: -24% wall
# time, 0.9 GB more resident). Values a user has set win; the settings reach only the workers, read at their start.
ALLOCATOR_ENV = {"MALLOC_MMAP_THRESHOLD_": str(2**32), "MALLOC_TRIM_THRESHOLD_": str(2**32),
                 "MALLOC_TOP_PAD_": str(2**28)}


@contextlib.contextmanager
def _allocator_kept_in_workers() -> Iterator[None]:
    """ALLOCATOR_ENV in the environment of the processes started inside, unless already set; restored after."""
    added = {name: value for name, value in ALLOCATOR_ENV.items() if name not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


@contextlib.contextmanager
def _no_main_script_in_workers() -> Iterator[None]:
    """Spawned workers run the parent's __main__ script again unless it ran as a module. Under an Airflow worker
    that script is the `airflow` console script, whose import needs the metadata database a task may not reach
    (the failure: a BrokenProcessPool). The workers need only what they unpickle, so they do without it."""
    main = sys.modules["__main__"]
    script = main.__dict__.pop("__file__", None)
    try:
        yield
    finally:
        if script is not None:
            main.__file__ = script


def default_workers(models: int) -> int:
    return max(1, min(models, len(os.sched_getaffinity(0))))


def train_models(database: Path, spec: dict, cfg: TrainConfig, names: list[str], device: torch.device,
                 workers: int = 0, parents: dict[str, Parent] | None = None) -> Iterator[Trained]:
    """Every model of `names`, trained and tested, yielded in the order of `names` as each is ready, each from its
    entry of `parents` when there is one. On the CPU in `workers` processes (0: one per core, at most one per
    model), one thread each; with CUDA one by one here."""
    parents = parents or {}
    if device.type != "cpu":
        for name in names:
            yield train_one(database, spec, cfg, name, device.type, parents.get(name))
        return
    workers = workers or default_workers(len(names))
    log.info("training %d models in %d worker process(es), one thread each", len(names), workers)
    context = multiprocessing.get_context("spawn")  # no fork of a process holding torch's and MLflow's threads
    with ProcessPoolExecutor(workers, mp_context=context, initializer=init_worker,
                             initargs=(logging.getLogger().getEffectiveLevel(),)) as pool:
        started = sorted(names, key=lambda n: COST_ORDER.index(n) if n in COST_ORDER else -1)
        with _no_main_script_in_workers(), _allocator_kept_in_workers():  # the workers start at the submits
            futures = {name: pool.submit(train_one, database, spec, cfg, name, "cpu", parents.get(name))
                       for name in started}
        for name in names:
            yield futures[name].result()
