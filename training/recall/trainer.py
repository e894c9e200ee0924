"""Fitting a recall model on one task's train clicks, and scoring test clicks' candidates with it."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from training.recall.config import RecallConfig
from training.recall.data import Samples
from training.recall.models.base import TwoTower

SCORE_BATCH = 512


@dataclass(frozen=True)
class Epoch:
    epoch: int
    loss: float
    seconds: float
    samples_per_s: float


def fit(model: TwoTower, train: Samples, cfg: RecallConfig, task: str, n_items: int) -> list[Epoch]:
    """Adam over shuffled batches; the session-based task draws `global_negatives` per click from the catalog, the
    user-based one uses the batch's other clicks. Deterministic for a seed."""
    rng = np.random.default_rng(cfg.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    history = torch.from_numpy(train.history)
    target = torch.from_numpy(train.target)
    epochs = []
    for epoch in range(cfg.epochs):
        model.train()
        start, total, seen = time.perf_counter(), 0.0, 0
        order = rng.permutation(len(train))
        for begin in range(0, len(order), cfg.batch):
            rows = torch.from_numpy(order[begin:begin + cfg.batch])
            if len(rows) < 2:
                continue  # batch negatives need another click
            negatives = None
            if task == "session":
                negatives = torch.from_numpy(rng.integers(1, n_items + 1, size=(len(rows), cfg.global_negatives)))
            loss = model.loss(history[rows], target[rows], negatives)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(rows)
            seen += len(rows)
        seconds = time.perf_counter() - start
        epochs.append(Epoch(epoch, total / max(seen, 1), seconds, seen / seconds if seconds else 0.0))
    model.eval()
    return epochs


@torch.no_grad()
def score(model: TwoTower, history: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """[S, C] scores of each click's candidates (item indices)."""
    model.eval()
    table = model.item_vectors(torch.arange(int(model.items.codes.shape[0])))
    out = [model.scores(torch.from_numpy(history[i:i + SCORE_BATCH]), torch.from_numpy(candidates[i:i + SCORE_BATCH]),
                        table).numpy() for i in range(0, len(history), SCORE_BATCH)]
    return np.concatenate(out) if out else np.zeros(candidates.shape)
