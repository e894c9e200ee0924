"""Training and scoring loops, apart from the models (RecBole-style): Adam on the masked cross-entropy,
whole requests per batch, a seeded batch order per epoch, CUDA when present, and early stopping on the GAUC of
held-out requests (the weights of the best epoch are kept).

On the CPU, the same seed and data give the same weights: weights are drawn after seeding, the batch order is a
seeded hash, and torch runs with deterministic algorithms.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from edgerec.errors import ConfigError
from training.config import TrainConfig
from training.data import Batch, to_inputs
from training.evaluation import pooled_auc, request_aucs
from training.models import Reranker
from training.models.base import HEADS, PRICE_INDEX, multitask_loss
from training.position_bias import PositionCorrection

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def pick_device(cfg: TrainConfig) -> torch.device:
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("EDGEREC_TRAIN_DEVICE=cuda, but torch sees no CUDA device")
    return torch.device("cuda" if cfg.device != "cpu" and torch.cuda.is_available() else "cpu")


@dataclass(frozen=True)
class EpochResult:
    epoch: int
    loss: float  # mean over labelled candidates
    requests: int
    samples: int  # real candidates seen
    seconds: float
    lr: float  # the learning rate the epoch trained with
    validation_gauc: float | None = None  # on the held-out requests, when there are any
    kept: bool = False  # the weights after this epoch are the best so far on the held-out requests
    validation_seconds: float = 0.0

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds else float("nan")


def train_epoch(model: Reranker, optimizer: torch.optim.Optimizer, batches: Iterable[Batch],
                device: torch.device, epoch: int = 0, correction: PositionCorrection | None = None) -> EpochResult:
    model.train()
    start, total_loss, labelled, requests, samples = time.perf_counter(), 0.0, 0, 0, 0
    for batch in batches:
        label = torch.from_numpy(batch.label).to(device)
        mask = torch.from_numpy(batch.mask).to(device)
        multitask = getattr(model, "heads", 1) > 1
        out = model(to_inputs(batch).to(device), scored=mask > 0, **({"heads": True} if multitask else {}))
        logits = out[..., 0] if multitask else out
        loss = model.loss(logits, label, mask) if correction is None else correction.loss(
            model, logits, label, mask, torch.from_numpy(batch.shown_position).to(device))
        if multitask:
            loss = multitask_loss(out, label, mask, torch.from_numpy(batch.cart).to(device),
                                  torch.from_numpy(batch.buy).to(device), loss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        n = int(batch.mask.sum())
        total_loss += float(loss.detach()) * n
        labelled, requests, samples = labelled + n, requests + len(batch), samples + batch.samples
    return EpochResult(epoch, total_loss / max(labelled, 1), requests, samples, time.perf_counter() - start,
                       optimizer.param_groups[0]["lr"])


def learning_rate(cfg: TrainConfig, epoch: int) -> float:
    """The rate of epoch (0-based): cfg.lr, or under the cosine schedule cfg.lr * (1 + cos(pi * epoch / epochs)) / 2,
    so the last epochs take small steps and settle rather than jump about the optimum."""
    if cfg.lr_schedule == "constant":
        return cfg.lr
    return cfg.lr * (1.0 + math.cos(math.pi * epoch / cfg.epochs)) / 2.0


def fit(model: Reranker, epoch_batches: Callable[[int], Iterable[Batch]], cfg: TrainConfig,
        device: torch.device, on_epoch: Callable[[EpochResult], None] | None = None,
        validate: Callable[[Reranker], float] | None = None, warm: bool = False,
        correction: PositionCorrection | None = None) -> list[EpochResult]:
    """Train for up to cfg.epochs; `epoch_batches(epoch)` yields that epoch's batches (shuffled by the caller).

    With `validate` (the model's GAUC on held-out requests, `validation_gauc`), training stops after cfg.patience
    epochs without a better GAUC and the model keeps the weights of the best epoch. A NaN GAUC (no held-out request
    with both a click and a non-click) judges nothing: then every epoch runs and the last weights stay.

    `warm`: the model starts from a parent version's weights (`checkpoints.warm_start`). Those weights are then the
    first to beat: an epoch is kept only if it scores above them, and training that never does leaves them in
    place, so a day's fine-tuning cannot end worse than its start on the held-out requests.

    `correction`: the loss under a position-bias correction (training.position_bias); its own parameters train
    beside the model's, and nothing of it reaches validation, scoring or the model's weights."""
    model.to(device)
    extra = [] if correction is None else correction.to(device).parameters()
    optimizer = torch.optim.Adam([*model.parameters(), *extra], lr=cfg.lr)
    history: list[EpochResult] = []
    best_gauc, best_state, since_best = -math.inf, None, 0
    if warm and validate is not None:
        start = validate(model)
        log.info("%s starts from its parent's weights: validation GAUC %.5f", model.name, start)
        if not math.isnan(start):
            best_gauc, best_state = start, {k: v.detach().clone() for k, v in model.state_dict().items()}
    for epoch in range(cfg.epochs):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(cfg, epoch)
        result = train_epoch(model, optimizer, epoch_batches(epoch), device, epoch, correction)
        if validate is not None:
            start = time.perf_counter()
            gauc = validate(model)
            result = replace(result, validation_gauc=gauc, kept=gauc > best_gauc,
                             validation_seconds=time.perf_counter() - start)
            since_best = 0 if result.kept or math.isnan(gauc) else since_best + 1
            if result.kept:
                best_gauc, best_state = gauc, {k: v.detach().clone() for k, v in model.state_dict().items()}
        log.info("%s epoch %d/%d: lr %.5f, loss %.5f, %s requests, %.0f candidate-samples/s%s", model.name,
                 epoch + 1, cfg.epochs, result.lr, result.loss, f"{result.requests:,}", result.samples_per_s,
                 "" if result.validation_gauc is None else
                 f", validation GAUC {result.validation_gauc:.5f}{' (best)' if result.kept else ''}")
        history.append(result)
        if on_epoch:
            on_epoch(result)
        if since_best >= cfg.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return history


def validation_gauc(model: Reranker, batches: Iterable[Batch], device: torch.device) -> float:
    scored = score(model, batches, device)
    return request_aucs(scored.scores, scored.labels, scored.masks).gauc()


def initial_order_gauc(batches: Iterable[Batch]) -> float:
    """GAUC of the list order itself on the same requests (what a collapsed model scores)."""
    scores, labels, masks = [], [], []
    for batch in batches:
        for i, n in enumerate(batch.candidates.tolist()):
            scores.append(-np.arange(n, dtype=np.float64))
            labels.append(batch.label[i, :n])
            masks.append(batch.mask[i, :n])
    return request_aucs(scores, labels, masks).gauc()


@dataclass(frozen=True)
class Scored:
    """Per request: the model's scores, labels and mask of its real candidates, in the initial order, and what each
    sold (price units where bought, else 0). Only the labelled candidates (mask 1) are scored: every metric reads
    those alone, and the others' scores are 0. A multi-task model's cart and buy heads, with their labels, over the
    clicked candidates of all requests: `heads`."""

    rerank_id: list[str]
    scores: list[np.ndarray]
    labels: list[np.ndarray]
    masks: list[np.ndarray]
    values: list[np.ndarray]
    heads: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # head -> (logits, labels)

    def head_aucs(self) -> dict[str, float]:
        return {head: pooled_auc(logits, target) for head, (logits, target) in self.heads.items()}


@torch.no_grad()
def score(model: Reranker, batches: Iterable[Batch], device: torch.device) -> Scored:
    model.to(device).eval()
    ids, scores, labels, masks, values = [], [], [], [], []
    heads: dict[str, list] = {h: ([], []) for h in HEADS[1:]} if getattr(model, "heads", 1) > 1 else {}
    for batch in batches:
        labelled = torch.from_numpy(batch.mask).to(device) > 0  # the list context still reads every candidate
        inputs = to_inputs(batch).to(device)
        if heads:  # one pass: the heads, and the score ranked by from them (0 where unscored, as `forward` gives)
            out = model(inputs, scored=labelled, heads=True)
            ranked = torch.where(labelled, model.ranked(out, inputs.candidate[..., PRICE_INDEX]), 0.0)
            logits, out = ranked.float().cpu().numpy(), out.float().cpu().numpy()
        else:
            logits = model(inputs, scored=labelled).float().cpu().numpy()
        for i, n in enumerate(batch.candidates.tolist()):
            scores.append(logits[i, :n])
            labels.append(batch.label[i, :n])
            masks.append(batch.mask[i, :n])
        values.extend(batch.per_request(batch.sold()))
        ids.extend(batch.rerank_id)
        if heads:
            clicked = (batch.mask > 0) & (batch.label > 0)
            for h, (head_logits, targets) in heads.items():
                head_logits.append(out[..., HEADS.index(h)][clicked])
                targets.append(getattr(batch, h)[clicked])
    return Scored(ids, scores, labels, masks, values,
                  {h: (np.concatenate(a), np.concatenate(b)) for h, (a, b) in heads.items() if a})
