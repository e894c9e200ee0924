"""Recall@k and NDCG@10 of each test click, its positive ranked against sampled negatives, the same negatives for
every model and rule; intervals by a bootstrap over users (a user's clicks move together)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.evaluation import Interval

KS = (1, 5, 10, 20, 50, 100)
NDCG_K = 10


def eval_candidates(targets: np.ndarray, n_items: int, negatives: int, seed: int) -> np.ndarray:
    """[S, 1 + negatives] item indices: the positive in column 0, then negatives drawn uniformly from the catalog
    (1 .. n_items), a draw of the positive moved to the next item."""
    rng = np.random.default_rng(seed)
    drawn = rng.integers(1, n_items + 1, size=(len(targets), negatives))
    hit = drawn == targets[:, None]
    drawn[hit] = drawn[hit] % n_items + 1
    return np.concatenate([targets[:, None], drawn], axis=1)


def ranks(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The positive's (column 0) place among its candidates: how many negatives score above it and how many tie with
    it. A score that is not a number (a model that failed on the row) ranks the positive last."""
    scores = np.where(np.isfinite(scores), scores, -np.inf)
    positive = scores[:, :1]
    above, tied = (scores[:, 1:] > positive).sum(axis=1), (scores[:, 1:] == positive).sum(axis=1)
    failed = ~np.isfinite(positive[:, 0])
    return np.where(failed, scores.shape[1] - 1, above), np.where(failed, 0, tied)


# the discounted gain of each 0-based rank below NDCG_K, accumulated: GAINS[r] = sum of 1 / log2(j + 2) for j < r
GAINS = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(NDCG_K) + 2))])


def metric_table(place: tuple[np.ndarray, np.ndarray]) -> dict[str, np.ndarray]:
    """Per click: Recall@k for each k and NDCG@10, in expectation over a random order of the tied candidates (the
    positive's rank is equally likely to be any of above .. above + tied)."""
    above, tied = (np.asarray(a, dtype=float) for a in place)
    table = {f"recall_at_{k}": np.clip((k - above) / (tied + 1), 0.0, 1.0) for k in KS}
    first, last = np.minimum(above, NDCG_K).astype(int), np.minimum(above + tied + 1, NDCG_K).astype(int)
    table[f"ndcg_at_{NDCG_K}"] = (GAINS[last] - GAINS[first]) / (tied + 1)
    return table


class UserBootstrap:
    """Resamples of the users, shared by every statistic so that paired differences use the same draws."""

    def __init__(self, user: np.ndarray, rounds: int = 200, seed: int = 0):
        self.user = np.unique(user, return_inverse=True)[1]
        n = self.user.max() + 1 if len(self.user) else 0
        rng = np.random.default_rng(seed)
        self.weights = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(rounds)])
        self.clicks = np.bincount(self.user, minlength=n)

    def interval(self, values: np.ndarray, baseline: np.ndarray | None = None) -> Interval:
        """Mean of values (or relative gain of its mean over baseline's) with a 95% percentile interval."""
        def stat(weights: np.ndarray, v: np.ndarray) -> np.ndarray:
            return (weights @ np.bincount(self.user, v, minlength=len(self.clicks))) / (weights @ self.clicks)

        point = float(values.mean())
        draws = stat(self.weights, values)
        if baseline is not None:
            point = point / float(baseline.mean()) - 1 if baseline.mean() > 0 else float("nan")
            with np.errstate(divide="ignore", invalid="ignore"):
                draws = draws / stat(self.weights, baseline) - 1
        draws = draws[np.isfinite(draws)]  # a resample without any hit of the baseline has no relative gain
        low, high = np.percentile(draws, [2.5, 97.5]) if len(draws) else (np.nan, np.nan)
        return Interval(point, float(low), float(high))


@dataclass(frozen=True)
class RecallReport:
    """A model's or rule's per-click metrics on one task's test clicks."""

    name: str
    task: str
    per_click: dict[str, np.ndarray]

    def mean(self, metric: str) -> float:
        return float(self.per_click[metric].mean())
