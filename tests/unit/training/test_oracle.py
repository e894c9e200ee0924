"""bench/oracle.py: which test requests match a simulated re-rank, and the scores each oracle row gives them."""


import numpy as np
import pytest

from edgerec.sim.config import load_sim_config
from edgerec.sim.engine import Trigger
from tests.benches import load_bench
from training.data import Batch

pytestmark = pytest.mark.unit



def batch(rerank_ids: list[str], items: list[list[int]]) -> Batch:
    width = max(len(i) for i in items)
    candidate_item = np.array([i + [0] * (width - len(i)) for i in items])
    zeros = np.zeros_like(candidate_item)
    empty = np.zeros((len(items), 1), dtype=np.int64)
    return Batch(rerank_ids, candidate_item, zeros[..., None], np.array([len(i) for i in items]), zeros, zeros,
                 zeros, zeros, zeros, empty, empty[..., None], np.zeros(len(items), dtype=np.int64), empty,
                 empty[..., None], np.zeros(len(items), dtype=np.int64))


def test_the_nth_rerank_of_a_request_with_the_same_candidates_matches():
    oracle = load_bench("oracle")
    seen = {
        "s1-p0": [Trigger("s1-p0", 10, [11, 12, 13], [0.5, 2.0, -1.0], [0.5, 0.0, -1.0], [3.0, 2.0, 1.0], 0),
                  Trigger("s1-p0", 20, [12, 13], [2.5, -1.0], [0.0, -1.0], [2.0, 1.0], 1)],
        "s1-p1": [Trigger("s1-p1", 30, [21, 22, 23], [1.0, 1.0, 3.0], [1.0, 1.0, 0.0], [5.0, 4.0, 3.0], 0)],
    }
    test = batch(["s1-p0-2", "s1-p1-1", "s1-p1-2", "s9-p0-1", "s1-p0-1"],
                 [[12, 13], [22, 21], [21, 22], [1], [11, 12, 13]])
    cfg = load_sim_config(behaviour={"position_decay": 0.5, "base_click_logit": 0.0})
    rows, scores = oracle.oracle_scores(test, seen, cfg)
    # s1-p1-1 lists its candidates in another order, s1-p1-2 and s9-p0-1 were never re-ranked: left out; s1-p0-1 and
    # s1-p0-2 match (a mart that cut a list to its first k would match on those k)
    assert rows.tolist() == [0, 4]
    appeal, shown, session = (scores[oracle.ORACLES[name]] for name in ("appeal", "shown", "session"))
    assert [a.tolist() for a in appeal] == [[2.5, -1.0], [0.5, 2.0, -1.0]]
    # log examination at the display position (1 exposed before the second trigger) + log sigmoid(appeal)
    assert shown[0] == pytest.approx([-0.5 + np.log(1 / (1 + np.exp(-2.5))), -1.0 + np.log(1 / (1 + np.exp(1.0)))])
    # the cloud's estimate plus the in-session part (appeal - utility)
    assert [s.tolist() for s in session] == [[4.5, 1.0], [3.0, 4.0, 1.0]]


def test_a_mart_that_cut_the_list_matches_on_its_first_candidates():
    oracle = load_bench("oracle")
    seen = {"s1-p0": [Trigger("s1-p0", 10, [11, 12, 13], [0.5, 2.0, -1.0], [0.0] * 3, [0.0] * 3, 0)]}
    rows, scores = oracle.oracle_scores(batch(["s1-p0-1"], [[11, 12]]), seen, load_sim_config())
    assert rows.tolist() == [0] and scores[oracle.ORACLES["appeal"]][0].tolist() == [0.5, 2.0]


def test_a_list_the_devices_model_re_ranked_matches_its_cloud_ordered_request():
    """The mart keeps the cloud's order; the trigger records the model's. Scores come back in the mart's order, and the
    position row reads where the model showed each candidate."""
    oracle = load_bench("oracle")
    seen = {"s1-p0": [Trigger("s1-p0", 10, [13, 11, 12], [3.0, 1.0, 2.0], [3.0, 1.0, 2.0], [0.0] * 3, 2)]}
    cfg = load_sim_config(behaviour={"position_decay": 0.5, "base_click_logit": 0.0})
    rows, scores = oracle.oracle_scores(batch(["s1-p0-1", "s1-p0-1"], [[11, 12, 13], [11, 12]]), seen, cfg)
    assert rows.tolist() == [0]  # the same candidates; a cut re-ranked list (the second) cannot be matched
    assert scores[oracle.ORACLES["appeal"]][0].tolist() == [1.0, 2.0, 3.0]
    # 11 was shown second, 12 third, 13 first, after 2 exposed before the trigger
    expected = [-0.5 * p + np.log(1 / (1 + np.exp(-a))) for p, a in ((3, 1.0), (4, 2.0), (2, 3.0))]
    assert scores[oracle.ORACLES["shown"]][0] == pytest.approx(expected)
