"""Ranking metrics of the paper: GAUC (Eq. 12), NDCG@k and clicks@k against the initial order, with bootstrap
confidence intervals over requests.

Inputs are per request: the model's scores, the labels and the mask of the candidates (mask 1 where the
candidate was exposed, so its label is known). Only labelled candidates count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import rankdata


def request_auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """AUC of one request's labelled candidates (ties count half); None when only one class is present."""
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return None
    ranks = rankdata(scores)  # average ranks: a tie between a positive and a negative counts 1/2
    return float((ranks[labels == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


@dataclass(frozen=True)
class RequestAucs:
    """Per-request AUC and weight (impressions) of the requests that have both classes."""

    aucs: np.ndarray
    weights: np.ndarray
    skipped: int  # requests with one label class only (no AUC)

    def gauc(self, rows: np.ndarray | None = None) -> float:
        """Eq. 12: sum_i w_i AUC_i / sum_i w_i, w_i the request's impressions (labelled candidates)."""
        aucs, weights = (self.aucs, self.weights) if rows is None else (self.aucs[rows], self.weights[rows])
        return float(np.dot(aucs, weights) / weights.sum()) if weights.sum() > 0 else float("nan")


def request_aucs(scores: Sequence[np.ndarray], labels: Sequence[np.ndarray],
                 masks: Sequence[np.ndarray]) -> RequestAucs:
    aucs, weights, skipped = [], [], 0
    for s, y, m in zip(scores, labels, masks, strict=True):
        seen = np.asarray(m) == 1
        auc = request_auc(np.asarray(s, dtype=np.float64)[seen], np.asarray(y)[seen])
        if auc is None:
            skipped += 1
            continue
        aucs.append(auc)
        weights.append(int(seen.sum()))
    return RequestAucs(np.asarray(aucs, dtype=np.float64), np.asarray(weights, dtype=np.float64), skipped)


def _top_k_labels(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Labels of the k best-scored candidates, best first (stable: ties keep the initial order)."""
    return labels[np.argsort(-scores, kind="stable")[:k]]


def ndcg_at_k(scores: np.ndarray, labels: np.ndarray, k: int) -> float | None:
    """NDCG@k of one request's labelled candidates ranked by score; None without a click."""
    if labels.sum() == 0:
        return None
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    gains = _top_k_labels(scores, labels, k)
    ideal = np.sort(labels)[::-1][:k]
    return float(np.dot(gains, discounts[: len(gains)]) / np.dot(ideal, discounts[: len(ideal)]))


def clicks_at_k(scores: np.ndarray, labels: np.ndarray, k: int) -> int:
    return int(_top_k_labels(scores, labels, k).sum())


def gmv_at_k(scores: np.ndarray, values: np.ndarray, k: int) -> float:
    """What the k best-scored candidates sold: the sum of their values (price where bought, else 0)."""
    return float(_top_k_labels(scores, values, k).sum())


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:.5f} [{self.low:.5f}, {self.high:.5f}]"


def bootstrap(statistic, n: int, rounds: int = 200, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of statistic(rows) over `rounds` resamples of n rows with replacement."""
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng.integers(0, n, n)) for _ in range(rounds)])
    tail = (1 - level) / 2 * 100
    return float(np.nanpercentile(values, tail)), float(np.nanpercentile(values, 100 - tail))


@dataclass(frozen=True)
class RankingReport:
    """GAUC with its interval, and NDCG@k / clicks@k / GMV@k of the model's order and of the initial order."""

    gauc: Interval
    requests: int
    skipped: int
    ndcg: dict[int, float]
    ndcg_initial: dict[int, float]
    clicks: dict[int, float]
    clicks_initial: dict[int, float]
    per_request: RequestAucs = field(compare=False, repr=False)  # for paired comparisons on the same requests
    per_request_initial: RequestAucs = field(compare=False, repr=False)  # the initial order's, the same way
    # GMV@k: per request, the value (price units, training.models.base.price_units) its k best candidates sold
    gmv: dict[int, float] = field(default_factory=dict)
    gmv_initial: dict[int, float] = field(default_factory=dict)
    gmv_per_request: dict[int, np.ndarray] = field(default_factory=dict, compare=False, repr=False)
    head_auc: dict[str, float] = field(default_factory=dict)  # cart and buy heads, among the clicked candidates

    @property
    def gauc_initial(self) -> float:
        """GAUC of the initial (cloud) order: what the list order alone explains."""
        return self.per_request_initial.gauc()


def evaluate(scores: Sequence[np.ndarray], labels: Sequence[np.ndarray], masks: Sequence[np.ndarray],
             ks: Sequence[int] = (5, 10), rounds: int = 200, seed: int = 0,
             values: Sequence[np.ndarray] | None = None) -> RankingReport:
    """All metrics for one model on one test set. The initial order is the candidates' list order. `values`: per
    request what each candidate sold (price where bought, else 0), for GMV@k."""
    per_request = request_aucs(scores, labels, masks)
    low, high = bootstrap(per_request.gauc, len(per_request.aucs), rounds, seed) if len(per_request.aucs) else \
        (float("nan"), float("nan"))
    initial_order = [-np.arange(len(np.asarray(y)), dtype=np.float64) for y in labels]
    per_request_initial = request_aucs(initial_order, labels, masks)
    ndcg, ndcg0, clicks, clicks0, gmv, gmv0 = ({k: [] for k in ks} for _ in range(6))
    values = values if values is not None else [np.zeros(len(np.asarray(y))) for y in labels]
    for s, y, m, v in zip(scores, labels, masks, values, strict=True):
        seen = np.asarray(m) == 1
        s, y, v = np.asarray(s, dtype=np.float64)[seen], np.asarray(y)[seen], np.asarray(v, dtype=np.float64)[seen]
        initial = -np.arange(len(y), dtype=np.float64)
        for k in ks:
            clicks[k].append(clicks_at_k(s, y, k))
            clicks0[k].append(clicks_at_k(initial, y, k))
            gmv[k].append(gmv_at_k(s, v, k))
            gmv0[k].append(gmv_at_k(initial, v, k))
            value, value0 = ndcg_at_k(s, y, k), ndcg_at_k(initial, y, k)
            if value is not None:
                ndcg[k].append(value)
                ndcg0[k].append(value0)

    def mean(values: dict[int, list]) -> dict[int, float]:
        return {k: float(np.mean(v)) if v else float("nan") for k, v in values.items()}

    return RankingReport(Interval(per_request.gauc(), low, high), len(per_request.aucs), per_request.skipped,
                         mean(ndcg), mean(ndcg0), mean(clicks), mean(clicks0), per_request, per_request_initial,
                         mean(gmv), mean(gmv0), {k: np.asarray(v) for k, v in gmv.items()})


def paired_mean_gain(model: np.ndarray, baseline: np.ndarray, rounds: int = 200, seed: int = 0) -> Interval:
    """Relative gain of the mean of a per-request figure (GMV@k, say) over a baseline's on the same requests, with a
    paired bootstrap interval."""
    if len(model) != len(baseline):
        raise ValueError("paired_mean_gain needs both models scored on the same requests")

    def gain(rows: np.ndarray | None = None) -> float:
        a, b = (model, baseline) if rows is None else (model[rows], baseline[rows])
        return float(a.mean() / b.mean() - 1.0) if b.mean() else float("nan")

    low, high = bootstrap(gain, len(model), rounds, seed)
    return Interval(gain(), low, high)


def pooled_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """AUC of scores against 0/1 labels over all rows together (ties count half); NaN with one class only."""
    auc = request_auc(np.asarray(scores, dtype=np.float64), np.asarray(labels))
    return float("nan") if auc is None else auc


def paired_gain(model: RequestAucs, baseline: RequestAucs, rounds: int = 200, seed: int = 0) -> Interval:
    """Relative GAUC gain of a model over a baseline scored on the same requests, with a paired bootstrap
    interval: both are resampled with the same requests each round, so what the requests share cancels."""
    if len(model.aucs) != len(baseline.aucs) or not np.array_equal(model.weights, baseline.weights):
        raise ValueError("paired_gain needs both models scored on the same requests")

    def gain(rows: np.ndarray | None = None) -> float:
        return model.gauc(rows) / baseline.gauc(rows) - 1.0

    low, high = bootstrap(gain, len(model.aucs), rounds, seed)
    return Interval(gain(), low, high)
