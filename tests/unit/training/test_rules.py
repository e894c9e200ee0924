"""The hand rules on explicit batches: which candidates each puts first, and ties in the list order."""

import numpy as np
import pytest

from training.data import Batch
from training.evaluation import evaluate
from training.rules import HandRules, by_list_order, click_counts, score_rules, view_recency

pytestmark = pytest.mark.unit


def batch(candidates: list[list[int]], views: list[list[int]], labels: list[list[int]]) -> Batch:
    """Candidates in list order, page views most recent first (as the marts keep them), labels of the candidates;
    every candidate labelled. Feature codes are zeros: the rules read item ids alone."""
    k, n = max(map(len, candidates)), max(1, max(map(len, views)))

    def padded(rows: list[list[int]], width: int) -> np.ndarray:
        return np.array([row + [0] * (width - len(row)) for row in rows], dtype=np.int64)

    b = len(candidates)
    return Batch([f"r{i}" for i in range(b)], padded(candidates, k), np.zeros((b, k, 9), dtype=np.int64),
                 np.array([len(c) for c in candidates]), padded(labels, k),
                 padded([[1] * len(c) for c in candidates], k), padded([list(range(len(c))) for c in candidates], k),
                 np.zeros((b, k), dtype=np.int64), np.zeros((b, k), dtype=np.int64),
                 np.zeros((b, 1), dtype=np.int64),
                 np.zeros((b, 1, 15), dtype=np.int64), np.zeros(b, dtype=np.int64), padded(views, n),
                 np.zeros((b, n, 20), dtype=np.int64), np.array([len(v) for v in views]))


def test_by_list_order_puts_a_higher_key_first_and_keeps_the_list_order_among_equals():
    scores = by_list_order(np.array([[0, 2, 0, 1]]))
    assert np.argsort(-scores[0], kind="stable").tolist() == [1, 3, 0, 2]


def test_view_recency_scores_the_latest_view_highest_and_unviewed_items_zero():
    # views most recent first: 30, then 10, then 30 again (an older view of the same item), then 99 (no candidate)
    b = batch([[10, 20, 30, 40]], [[30, 10, 30, 99]], [[0, 0, 1, 0]])
    assert view_recency(b).tolist() == [[3, 0, 4, 0]]


def test_padding_never_matches_a_padded_candidate():
    b = batch([[10, 20], [5]], [[], [7]], [[1, 0], [1]])
    assert view_recency(b).tolist() == [[0, 0], [0, 0]]


def test_each_rule_orders_the_candidates_of_a_request_as_written():
    b = batch([[10, 20, 30, 40]], [[30, 10]], [[0, 0, 1, 0]])
    scored = score_rules(HandRules({40: 5, 20: 1}), [b])
    order = {name: np.argsort(-scores[0], kind="stable").tolist() for name, (scores, _, _) in scored.items()}
    assert order == {"viewed_first": [0, 2, 1, 3],  # 10 and 30 viewed, in list order; then 20, 40
                     "recent_first": [2, 0, 1, 3],  # 30 viewed last
                     "popular_first": [3, 1, 0, 2]}  # 40 (5 clicks), 20 (1), then the list order
    assert evaluate(*scored["recent_first"]).gauc.value == 1.0
    assert evaluate(*scored["viewed_first"]).gauc.value == pytest.approx(2 / 3)


def test_click_counts_count_labelled_clicks_only():
    b = batch([[10, 20, 30], [10, 40]], [[], []], [[1, 0, 1], [1, 0]])
    b.mask[0, 2] = 0  # 30's click was never exposed: it does not count
    assert click_counts([b]) == {10: 2}
