"""The comparison table and the checks of the paper's order, on crafted scores."""

import json

import numpy as np
import pytest

from training.compare import Curves, compare, input_notes
from training.evaluation import evaluate

pytestmark = pytest.mark.unit
REQUESTS = 200


def report(tenths_right: int, otherwise: float = 0.0):
    """A model that ranks the click first in `tenths_right` of every 10 requests; otherwise the click gets the score
    `otherwise` (0.0: last; 0.45: second, where the list order has it)."""
    labels = [np.array([0, 1, 0, 0])] * REQUESTS
    scores = [np.array([0.5, 1.0 if i % 10 < tenths_right else otherwise, 0.4, 0.3]) for i in range(REQUESTS)]
    return evaluate(scores, labels, [np.ones(4, dtype=int)] * REQUESTS, ks=(5, 10), rounds=50)


# GAUC 0.5, 0.83333 (never below the list order), 0.9 for each variant, 0.96667
PAPER_ORDER = {"dnn_rank": report(5), "dlcm": report(5, otherwise=0.45), "crban_hubsm_ie": report(7, otherwise=0.45),
               "crban_hubsm_ipv": report(7, otherwise=0.45), "crban_huism_ie_ipv": report(7, otherwise=0.45),
               "crban_hubsm_ie_ipv": report(9, otherwise=0.45)}
LEARNING = Curves({"dlcm": [0.70, 0.71, 0.72], "crban_hubsm_ie_ipv": [0.70, 0.75, 0.80]}, initial=0.70)


def failed(checks: dict[str, bool]) -> list[str]:
    return [name for name, ok in checks.items() if not ok]


def test_the_paper_order_passes_every_check_and_is_written(tmp_path):
    comparison = compare(PAPER_ORDER, {"viewed_first": report(6)}, LEARNING, rounds=50)
    assert [r.title for r in comparison.rows] == ["DNN-rank", "DLCM", "CRBAN+HUBSM(IE)", "CRBAN+HUBSM(IPV)",
                                                  "CRBAN+HUISM(IE&IPV)", "CRBAN+HUBSM(IE&IPV)",
                                                  "rule: viewed before first"]
    assert comparison.row("crban_hubsm_ie_ipv").gain.value == pytest.approx(0.16)
    # 9 of the paper's order, 4 subsets, 1 rule, 2 collapse
    assert len(comparison.checks) == 16 and failed(comparison.checks) == []
    paths = comparison.write(lambda extension: tmp_path / "comparison" / f"table.{extension}")
    table = paths["md"].read_text()
    assert "| CRBAN+HUBSM(IE&IPV) | 0.96667 [" in table and "+16.00% [" in table and "| +2.00% |" in table
    assert "| rule: viewed before first | 0.60000 [" in table and "-28.00% [" in table
    assert "| initial order | 0.66667 |" in table  # the click is second in the list: above 2 of 3
    assert "| GMV@10 | paper GAUC |" in table and "| 0.000 | 0.64825 | +2.00% |" in table  # nothing sold here
    assert "- CRBAN+HUBSM(IE&IPV): 0.70000, 0.75000, 0.80000\n" in table and "collapsed" not in table.split(
        "Validation GAUC")[1]
    assert paths["csv"].read_text().splitlines()[0].startswith("model,title,gauc,gauc_low,gauc_high,gain_vs_dlcm")
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"


def test_a_full_model_not_above_a_hand_rule_fails_that_check():
    checks = compare(PAPER_ORDER, {"recent_first": report(10), "popular_first": report(5)}, rounds=50).checks
    assert [name.split(" (")[0] for name in failed(checks)] == [
        "CRBAN+HUBSM(IE&IPV) > rule: most recently viewed first, interval above 0"]


def test_a_model_that_stays_at_the_initial_order_is_reported_collapsed_and_fails():
    curves = Curves({"dlcm": [0.70, 0.71], "crban_hubsm_ie_ipv": [0.75, 0.6900004, 0.69]}, initial=0.69)
    comparison = compare(PAPER_ORDER, curves=curves, rounds=50)
    assert failed(comparison.checks) == ["CRBAN+HUBSM(IE&IPV) did not collapse onto the list order (its validation "
                                         "GAUC stayed at the initial order's 0.69000 after its first epoch)"]
    assert "DLCM did not collapse onto the list order (its validation GAUC left the initial order's 0.69000 after " \
        "its first epoch)" in comparison.checks
    assert "- CRBAN+HUBSM(IE&IPV): 0.75000, 0.69000, 0.69000 **collapsed onto the list order**" in \
        comparison.to_markdown()
    assert [r["collapsed"] for r in comparison.to_records()] == [False, False, False, False, False, True]


def test_one_epoch_is_not_judged_for_collapse():
    assert not Curves({"dlcm": [0.69]}, initial=0.69).collapsed("dlcm")


def test_a_full_model_below_a_model_that_sees_less_fails_the_subset_check():
    checks = compare({"dlcm": report(7, otherwise=0.45), "crban_hubsm_ie_ipv": report(6)}, rounds=50).checks
    assert [name.split(" (")[0] for name in failed(checks)] == [
        "CRBAN+HUBSM(IE&IPV) at least as good as DLCM, which sees a subset of its inputs",
        "CRBAN+HUBSM(IE&IPV) >= +2% over DLCM"]


def test_a_full_model_no_better_than_a_variant_fails_that_check():
    reports = {"dnn_rank": report(5), "dlcm": report(5, otherwise=0.45), "crban_hubsm_ie": report(7, otherwise=0.45),
               "crban_hubsm_ie_ipv": report(7, otherwise=0.45)}
    assert [name.split(" (")[0] for name in failed(compare(reports, rounds=50).checks)] == [
        "CRBAN+HUBSM(IE&IPV) > CRBAN+HUBSM(IE), interval above 0"]


def test_a_dlcm_below_the_initial_order_fails_that_check():
    """The click is second of four: the initial order ranks it above 2 of 3 (0.667); a DLCM right in 6 of 10
    requests scores 0.6, so a gain over it would be a gain over a baseline that did not learn the list."""
    checks = compare({"dlcm": report(6)}, rounds=50).checks
    assert failed(checks) == ["DLCM not below the initial order's GAUC by more than 0.1% (0.60000 vs 0.66667: "
                              "-10.00% [-16.75%, -4.75%])"]


def test_a_dlcm_within_the_margin_of_the_initial_order_passes_that_check_and_one_beyond_it_fails():
    """DLCM keeps the initial order and puts the click last on one request: of 4000 that is -0.0125% of GAUC, and
    even the bootstrap samples that hold that request several times stay inside the margin; of 200 it is -0.25%,
    beyond the margin."""
    def dlcm(requests: int):
        labels = [np.array([0, 1, 0, 0])] * requests
        scores = [np.array([0.9, 0.0 if i == 0 else 0.8, 0.7, 0.6]) for i in range(requests)]
        return evaluate(scores, labels, [np.ones(4, dtype=int)] * requests, ks=(5, 10), rounds=50)

    assert list(compare({"dlcm": dlcm(4000)}, rounds=50).checks.values()) == [True]
    assert list(compare({"dlcm": dlcm(200)}, rounds=50).checks.values()) == [False]


def test_a_day_without_cloud_scores_says_that_the_baselines_saw_the_rank_only(tmp_path):
    unscored = {"features": {"cloud_score": {"boundaries": []}}}
    assert input_notes({"features": {"cloud_score": {"boundaries": [0.1, 0.5]}}}) == ()
    notes = input_notes(unscored)
    assert notes == ("the page requests carried no cloud score: DNN-rank and DLCM saw the rank only (besides the "
                     "items' own features), so a gain over DLCM is a gain over the list order",)
    paths = compare(PAPER_ORDER, rounds=50, notes=notes).write(lambda extension: tmp_path / f"table.{extension}")
    assert f"\nNote: {notes[0]}\n" in paths["md"].read_text()
    assert json.loads(paths["json"].read_text())["notes"] == list(notes)


def test_the_exploration_bucket_s_requests_get_their_own_table_and_columns(tmp_path):
    explored = {"dlcm": report(5, otherwise=0.45), "crban_hubsm_ie_ipv": report(8, otherwise=0.45)}
    comparison = compare(PAPER_ORDER, rounds=50, explored=explored)
    assert [(r.name, round(r.gain.value, 4)) for r in comparison.explored] == [("dlcm", 0.0),
                                                                               ("crban_hubsm_ie_ipv", 0.12)]
    paths = comparison.write(lambda extension: tmp_path / f"table.{extension}")
    table = paths["md"].read_text()
    assert "On the exploration bucket's test requests (200 with both labels)" in table
    assert "| CRBAN+HUBSM(IE&IPV) | 0.93333 [" in table.split("exploration bucket")[1]
    records = {r["model"]: r for r in json.loads(paths["json"].read_text())["rows"]}
    assert records["crban_hubsm_ie_ipv"]["gauc_explored"] == pytest.approx(0.93333, abs=1e-5)
    assert np.isnan(records["dnn_rank"]["gauc_explored"])  # not scored there
    assert "exploration bucket" not in compare(PAPER_ORDER, rounds=50).to_markdown()  # none: no table


def test_a_multitask_model_s_heads_are_reported_with_the_table(tmp_path):
    from dataclasses import replace

    reports = dict(PAPER_ORDER) | {"crban_hubsm_ie_ipv": replace(PAPER_ORDER["crban_hubsm_ie_ipv"],
                                                                  head_auc={"cart": 0.71, "buy": 0.64})}
    paths = compare(reports, rounds=50).write(lambda extension: tmp_path / f"table.{extension}")
    assert ("Multi-task heads, AUC over the clicked candidates: CRBAN+HUBSM(IE&IPV): cart 0.7100, buy 0.6400."
            in paths["md"].read_text())
    records = {r["model"]: r for r in json.loads(paths["json"].read_text())["rows"]}
    assert records["crban_hubsm_ie_ipv"]["buy_auc"] == 0.64 and np.isnan(records["dlcm"]["buy_auc"])


def test_without_dlcm_the_gain_column_is_blank_not_nan():
    table = compare({"crban_hubsm_ie_ipv": PAPER_ORDER["crban_hubsm_ie_ipv"]}, rounds=50).to_markdown()
    row = next(line for line in table.splitlines() if line.startswith("| CRBAN+HUBSM(IE&IPV) |"))
    assert row.split(" | ")[2] == "" and "nan" not in table
