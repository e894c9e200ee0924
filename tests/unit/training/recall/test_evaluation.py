import numpy as np
import pytest

from training.recall.evaluation import UserBootstrap, eval_candidates, metric_table, ranks
from training.recall.pipeline import judge_recall
from training.recall.rules import score_popular, score_recent

pytestmark = pytest.mark.unit


def test_negatives_never_hold_the_positive_and_the_same_seed_draws_the_same():
    targets = np.array([1, 2, 3, 2])
    first = eval_candidates(targets, n_items=3, negatives=50, seed=7)
    assert first[:, 0].tolist() == [1, 2, 3, 2]
    assert not (first[:, 1:] == targets[:, None]).any()
    assert first.min() >= 1 and first.max() <= 3
    assert (eval_candidates(targets, 3, 50, seed=7) == first).all()


def test_the_positive_ranks_after_the_better_negatives_with_its_ties_apart_and_a_failed_score_last():
    scores = np.array([[0.9, 0.1, 0.2], [0.5, 0.7, 0.5], [0.3, 0.3, 0.3], [np.nan, 0.1, 0.2], [0.4, np.nan, 0.1]])
    above, tied = ranks(scores)
    assert above.tolist() == [0, 1, 0, 2, 0] and tied.tolist() == [0, 1, 2, 0, 0]


def test_recall_and_ndcg_of_explicit_ranks_in_expectation_over_ties():
    table = metric_table((np.array([0, 4, 12, 0, 9]), np.array([0, 0, 0, 3, 1])))
    assert table["recall_at_1"].tolist() == [1, 0, 0, 0.25, 0]  # 4 tied in first place: first a quarter of the time
    assert table["recall_at_5"].tolist() == [1, 1, 0, 1, 0]
    assert table["recall_at_10"].tolist() == [1, 1, 0, 1, 0.5]
    assert table["recall_at_20"].tolist() == [1, 1, 1, 1, 1]
    tied_four = (1 + 1 / np.log2(3) + 1 / np.log2(4) + 1 / np.log2(5)) / 4
    assert table["ndcg_at_10"] == pytest.approx([1.0, 1 / np.log2(6), 0.0, tied_four, 1 / np.log2(11) / 2])


def test_a_constant_score_is_worth_what_a_random_order_is():
    table = metric_table(ranks(np.zeros((1, 1001))))
    assert table["recall_at_20"][0] == pytest.approx(20 / 1001)


def test_the_bootstrap_resamples_users_not_clicks():
    # user 0 always hits, user 1 never: a mean over users' clicks, and an interval that spans the two
    boot = UserBootstrap(np.array([0, 0, 0, 1]), rounds=200, seed=0)
    interval = boot.interval(np.array([1.0, 1.0, 1.0, 0.0]))
    assert interval.value == pytest.approx(0.75)
    assert interval.low == pytest.approx(0.0) and interval.high == pytest.approx(1.0)
    gain = boot.interval(np.array([1.0, 1.0, 1.0, 1.0]), baseline=np.array([1.0, 1.0, 1.0, 0.0]))
    assert gain.value == pytest.approx(1 / 0.75 - 1) and gain.low >= 0.0


def test_the_rules_rank_history_items_latest_first_then_by_popularity():
    counts = np.array([0.0, 5.0, 1.0, 9.0, 0.0])  # item 3 the most clicked
    candidates = np.array([[1, 2, 3, 4]])
    history = np.array([[0, 2, 1]])  # item 2, then item 1 (the latest)
    assert score_popular(candidates, counts).argsort()[0][::-1].tolist() == [2, 0, 1, 3]
    assert score_recent(candidates, history, counts).argsort()[0][::-1].tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize(("value", "champion", "blessed", "says"), [
    (0.20, None, True, "no champion"),
    (0.04, None, False, "below the floor"),
    (0.20, 0.205, True, "minus 0.0100"),
    (0.20, 0.25, False, "below the champion's 0.2500"),
    (float("nan"), None, False, "below the floor"),
])
def test_the_recall_gate_judges_the_floor_then_the_champion(value, champion, blessed, says):
    passed, reason = judge_recall(value, floor=0.05, champion=champion, tolerance=0.01)
    assert passed is blessed and says in reason


def test_the_whole_catalog_section_compares_the_sources_and_checks_the_model_against_the_cloud_ranker():
    from training.recall.compare import CLOUD_RANKER, RecallComparison, TaskTable

    users = np.array([0, 0, 1, 2, 3, 4])
    table = TaskTable("user", 6, UserBootstrap(users, rounds=50))
    comparison = RecallComparison({"user": table}, catalog={
        "PWPRec(LS)": np.array([1.0, 1, 1, 1, 1, 0]), "rule: most popular": np.array([0.0, 0, 1, 0, 0, 0]),
        CLOUD_RANKER: np.array([0.0, 0, 0, 1, 0, 0])})
    text = comparison.to_markdown()
    assert "### Candidate generation over the whole catalog (user-based task)" in text
    assert "| PWPRec(LS) | 0.8333 [" in text and f"| {CLOUD_RANKER} | 0.1667 [" in text
    assert f"- PWPRec(LS) over {CLOUD_RANKER}: +400.0% [" in text
    assert comparison.checks == {f"user: PWPRec(LS) > {CLOUD_RANKER} on catalog recall_at_100": True,
                                 "user: PWPRec(LS) > rule: most popular on catalog recall_at_100": True}
    rows = [r for r in comparison.to_records() if r["task"] == "user (whole catalog)"]
    assert [r["row"] for r in rows] == ["PWPRec(LS)", "rule: most popular", CLOUD_RANKER]
    worse = RecallComparison({"user": table}, catalog={"PWPRec(LS)": np.zeros(6), CLOUD_RANKER: np.ones(6)})
    assert worse.checks == {f"user: PWPRec(LS) > {CLOUD_RANKER} on catalog recall_at_100": False}
