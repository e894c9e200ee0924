"""The canary analysis on explicit cohorts: ratios of sums, relative differences with bootstrap intervals, which
comparisons are made, and the report."""

import math

import numpy as np
import pytest

from edgerec.canary import COLUMNS, analyse, ratio, relative_difference

pytestmark = pytest.mark.unit


def cohort(**columns) -> dict[str, np.ndarray]:
    n = len(next(iter(columns.values())))
    return {c: np.asarray(columns.get(c, [0] * n), dtype=np.float64) for c in COLUMNS}


def test_metrics_are_ratios_of_sums_over_the_cohorts_devices():
    c = cohort(clicks=[1, 3], exposures=[10, 30], reranks=[4, 8], sessions=[1, 3])
    assert ratio(c, "clicks per device") == 2.0
    assert ratio(c, "CTR") == 0.1  # 4 / 40, not the mean of the devices' CTRs
    assert ratio(c, "re-ranks per session") == 3.0
    assert math.isnan(ratio(cohort(clicks=[0], exposures=[0]), "CTR"))  # no exposure: no CTR, no crash


def test_the_difference_and_its_interval():
    doubled = relative_difference(cohort(clicks=[2, 2, 2]), cohort(clicks=[1, 1]), "clicks per device")
    assert doubled == {"value": 1.0, "low": 1.0, "high": 1.0}  # no spread among devices: no width
    spread = relative_difference(cohort(clicks=[0, 4, 2, 2]), cohort(clicks=[1, 1, 1, 1]), "clicks per device")
    assert spread["value"] == 1.0 and spread["low"] < 1.0 < spread["high"]
    assert relative_difference(cohort(clicks=[0, 4, 2, 2]), cohort(clicks=[1, 1, 1, 1]), "clicks per device") == spread
    ctr = relative_difference(cohort(clicks=[1, 1], exposures=[10, 10]), cohort(clicks=[1, 1], exposures=[20, 20]),
                              "CTR")
    assert ctr["value"] == pytest.approx(1.0) and ctr["low"] == pytest.approx(1.0)


def test_the_canary_is_compared_with_the_cohorts_that_ran_beside_it():
    devices = {"cloud order": cohort(clicks=[1, 1]), "v2": cohort(clicks=[2, 2]), "v1": cohort(clicks=[1, 3])}
    report = analyse("2026-11-03", devices, canary="v2", stable="v1")
    assert set(report.comparisons) == {"canary vs stable", "canary vs cloud order"}
    assert report.comparisons["canary vs cloud order"]["clicks per device"]["value"] == 1.0
    assert report.comparisons["canary vs stable"]["clicks per device"]["value"] == 0.0
    assert report.versions["v1"]["devices"] == 2 and report.versions["v1"]["clicks"] == 4
    assert "## canary vs stable" in report.to_markdown()
    # no canary device this day (the canary set after the day's logs, or a refused bundle): nothing to compare
    alone = analyse("2026-11-03", {"cloud order": cohort(clicks=[1])}, canary="v2", stable=None)
    assert alone.comparisons == {} and "No comparison" in alone.to_markdown()


def test_the_plot_has_a_bar_per_metric_and_comparison(tmp_path):
    from edgerec.canary import METRICS, plot

    devices = {"cloud order": cohort(clicks=[1, 2]), "v2": cohort(clicks=[2, 3]), "v1": cohort(clicks=[1, 3])}
    report = analyse("2026-11-03", devices, canary="v2", stable="v1")
    path = plot(report, tmp_path / "canary_analysis.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sum(len(m) for m in report.comparisons.values()) == 2 * len(METRICS)


def test_ctr_by_position_and_by_half_of_the_page():
    devices = {"cloud order": cohort(clicks=[3]), "v2": cohort(clicks=[3])}
    positions = {"cloud order": {"exposures": np.array([10, 10, 10, 0]), "clicks": np.array([2, 1, 0, 0])},
                 "v2": {"exposures": np.array([10, 10, 10, 10]), "clicks": np.array([1, 1, 0, 1])}}
    report = analyse("2026-11-03", devices, canary="v2", stable=None, positions=positions)
    assert report.ctr_by_position == {"cloud order": [0.2, 0.1, 0.0, None], "v2": [0.1, 0.1, 0.0, 0.1]}
    assert report.versions["cloud order"]["CTR, positions 0-1"] == pytest.approx(0.15)
    assert report.versions["cloud order"]["CTR, positions 2-3"] == 0.0  # 0 clicks in 10 shown
    assert report.versions["v2"]["CTR, positions 2-3"] == pytest.approx(0.05)
    assert "| v2 | 10.00% | 5.00% |" in report.to_markdown()
    assert "CTR, positions 0-1" not in analyse("2026-11-03", devices, canary="v2", stable=None).to_markdown()
