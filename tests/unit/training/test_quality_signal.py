"""bench/quality_signal.py: the behaviour counts it hands the logistic regression, on one explicit request."""

import math

import duckdb
import numpy as np
import pytest

from tests.benches import load_bench

pytestmark = pytest.mark.unit
T = 10_000_000  # the trigger, ms
MIN = 60_000



@pytest.fixture
def marts():
    con = duckdb.connect()
    con.execute(f"""
        create table requests as select * from (values
          ('r1', {T}, [5, 7, 5], [50, 70, 51], [9, 8, 7], [1, 0, 0], [1, 1, 0],
           [5, 5, 7, 5], [{T} - 1 * {MIN}, {T} - 20 * {MIN}, {T} - 40 * {MIN}, {T} - 10000], [0, 2, 0, 0],
           [5, 7], [51, 70], [{T} - 5 * {MIN}, {T} - 20 * {MIN}]),
          ('r2', {T}, [3], [30], [4], [0], [1], [], [], [], [], [], [])
        ) as t(rerank_id, trigger_ts, cand_category, cand_brand, cand_cloud_score, label, mask,
               ie_category, ie_ts, ie_e6_delete_reason, ipv_category, ipv_brand, ipv_end_ts)
    """)
    yield con
    con.close()


def test_counts_are_the_candidates_own_matches_inside_their_windows(marts):
    frame = load_bench("quality_signal").candidates(marts, "requests")
    # r1's third candidate is unlabelled (mask 0), so it is left out
    assert frame.rerank_id.tolist() == ["r1", "r1", "r2"]
    assert frame.log_position.tolist() == pytest.approx([0.0, math.log(2), 0.0])
    assert frame.cloud_score.tolist() == [9, 8, 4]
    assert frame.label.tolist() == [1, 0, 0]
    # category 5: exposures 1 min, 20 min and 10 s ago (the category-7 one 40 min ago is outside the session);
    # one of them deleted; one page view 5 min ago; brand 50 never viewed
    assert frame.ie_same_category.tolist() == pytest.approx([math.log(4), 0.0, 0.0])
    assert frame.ie_recent.tolist() == pytest.approx([math.log(4), math.log(4), 0.0])
    assert frame.deletes_same_category.tolist() == [1, 0, 0]
    # category 7 and brand 70 were viewed 20 min ago: outside the 15-minute window
    assert frame.ipv_same_category.tolist() == [1, 0, 0]
    assert frame.ipv_same_brand.tolist() == [0, 0, 0]


def test_per_request_splits_the_rows_back_into_requests(marts):
    bench = load_bench("quality_signal")
    frame = bench.candidates(marts, "requests")
    scores, labels, masks = bench.per_request(frame, np.array([0.5, 0.2, 0.9]))
    assert [s.tolist() for s in scores] == [[0.5, 0.2], [0.9]]
    assert [y.tolist() for y in labels] == [[1, 0], [0]]
    assert [m.tolist() for m in masks] == [[1.0, 1.0], [1.0]]
