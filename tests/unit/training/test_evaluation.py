"""GAUC (the paper's Eq. 12), NDCG@k and clicks@k on hand-computed examples and against sklearn."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from training.evaluation import (
    clicks_at_k,
    evaluate,
    gmv_at_k,
    ndcg_at_k,
    paired_gain,
    paired_mean_gain,
    pooled_auc,
    request_auc,
    request_aucs,
)

pytestmark = pytest.mark.unit
A = np.array


def test_gauc_weights_each_request_by_its_impressions_and_skips_one_class_requests():
    scores = [A([0.9, 0.1, 0.5]), A([0.2, 0.8, 0.4, 0.6]), A([0.3, 0.2]), A([0.1, 0.7, 0.99])]
    labels = [A([1, 0, 0]), A([1, 0, 1, 0]), A([0, 0]), A([0, 1, 0])]
    masks = [A([1, 1, 1]), A([1, 1, 1, 1]), A([1, 1]), A([1, 1, 0])]  # the 0.99 was never exposed
    per_request = request_aucs(scores, labels, masks)
    # A: the positive outscores both negatives (AUC 1, 3 impressions); B: both positives score lowest
    # (AUC 0, 4 impressions); C: no click (skipped); D: 0.7 > 0.1 once the unexposed 0.99 is masked (AUC 1, 2).
    assert per_request.aucs.tolist() == [1.0, 0.0, 1.0]
    assert per_request.weights.tolist() == [3, 4, 2]
    assert per_request.skipped == 1
    assert per_request.gauc() == pytest.approx((3 + 0 + 2) / 9)


def test_ties_count_half():
    assert request_auc(A([0.5, 0.5, 0.5]), A([1, 0, 0])) == 0.5
    assert request_auc(A([0.5, 0.5, 0.1]), A([1, 0, 0])) == 0.75


def test_request_auc_equals_sklearn_on_random_requests():
    rng = np.random.default_rng(3)
    for _ in range(200):
        n = int(rng.integers(2, 60))
        labels = rng.integers(0, 2, n)
        scores = np.round(rng.normal(size=n), 1)  # rounding makes ties
        expected = roc_auc_score(labels, scores) if 0 < labels.sum() < n else None
        assert request_auc(scores, labels) == (pytest.approx(expected) if expected is not None else None)


def test_ndcg_and_clicks_at_k():
    scores, labels = A([0.9, 0.5, 0.1]), A([0, 0, 1])  # the click is ranked last
    assert ndcg_at_k(scores, labels, 2) == 0.0
    assert ndcg_at_k(scores, labels, 3) == pytest.approx(1 / np.log2(4))
    assert ndcg_at_k(-scores, labels, 1) == 1.0
    assert clicks_at_k(scores, labels, 2) == 0 and clicks_at_k(scores, labels, 3) == 1
    assert ndcg_at_k(scores, A([0, 0, 0]), 3) is None


def test_evaluate_compares_with_the_initial_order_and_brackets_gauc():
    rng = np.random.default_rng(0)
    labels = [rng.integers(0, 2, 20) for _ in range(300)]
    scores = [y + rng.normal(scale=0.8, size=20) for y in labels]  # informative scores
    masks = [np.ones(20, dtype=int) for _ in labels]
    report = evaluate(scores, labels, masks, ks=(5,), rounds=100, seed=1)
    assert report.gauc.low <= report.gauc.value <= report.gauc.high
    assert 0.7 < report.gauc.value < 0.9 and report.gauc.high - report.gauc.low < 0.05
    assert report.ndcg[5] > report.ndcg_initial[5] and report.clicks[5] > report.clicks_initial[5]
    assert evaluate(scores, labels, masks, ks=(5,), rounds=100, seed=1) == report  # same seed, same interval


def test_gauc_of_the_initial_order_and_the_paired_gain_over_a_baseline():
    labels, masks = [A([1, 0, 0]), A([0, 1, 0, 0])], [A([1, 1, 1]), A([1, 1, 1, 1])]
    initial = evaluate([A([3.0, 2, 1]), A([4.0, 3, 2, 1])], labels, masks, ks=(1,), rounds=20)
    # A: the click is first (AUC 1, 3 impressions); B: the click is second, above 2 of 3 (AUC 2/3, 4 impressions)
    assert initial.gauc_initial == pytest.approx((3 * 1 + 4 * 2 / 3) / 7) == initial.gauc.value
    better = evaluate([A([3.0, 2, 1]), A([1.0, 4, 2, 0])], labels, masks, ks=(1,), rounds=20)  # B now AUC 1
    assert better.gauc_initial == initial.gauc_initial
    gain = paired_gain(better.per_request, initial.per_request, rounds=50)
    assert gain.value == pytest.approx(1 / ((3 + 8 / 3) / 7) - 1)
    assert gain.low <= gain.value <= gain.high
    with pytest.raises(ValueError, match="same requests"):
        paired_gain(better.per_request, request_aucs([A([1.0, 0])], [A([1, 0])], [A([1, 1])]))


def test_gmv_at_k_sums_what_the_k_best_sold_and_evaluate_reports_it_against_the_initial_order():
    assert gmv_at_k(np.array([0.1, 0.9, 0.5]), np.array([3.0, 0.0, 2.0]), 2) == 2.0  # 0.9 sold nothing, 0.5 sold 2
    labels = [np.array([0, 1, 1]), np.array([1, 0])]
    scores = [np.array([0.1, 0.9, 0.5]), np.array([0.2, 0.8])]
    masks = [np.array([1, 1, 1]), np.array([1, 0])]  # the second request's 0.8 candidate is unlabelled
    values = [np.array([0.0, 0.0, 4.0]), np.array([2.0, 5.0])]
    report = evaluate(scores, labels, masks, ks=(1, 2), rounds=10, values=values)
    assert report.gmv == {1: 1.0, 2: 3.0}  # request 1: top-1 sold 0, top-2 sold 4; request 2: its one labelled sold 2
    assert report.gmv_initial == {1: 1.0, 2: 1.0}  # the list order: 0, 0 then 2
    assert report.gmv_per_request[2].tolist() == [4.0, 2.0]
    assert evaluate(scores, labels, masks, ks=(1,), rounds=10).gmv == {1: 0.0}  # no values: nothing sold


def test_paired_mean_gain_and_pooled_auc():
    gain = paired_mean_gain(np.array([2.0, 4.0, 6.0]), np.array([2.0, 2.0, 2.0]), rounds=50)
    assert gain.value == pytest.approx(1.0) and gain.low <= 1.0 <= gain.high
    assert np.isnan(paired_mean_gain(np.ones(3), np.zeros(3), rounds=5).value)
    with pytest.raises(ValueError, match="same requests"):
        paired_mean_gain(np.ones(3), np.ones(2))
    assert pooled_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == 0.75
    assert np.isnan(pooled_auc(np.array([0.1, 0.2]), np.array([1, 1])))
