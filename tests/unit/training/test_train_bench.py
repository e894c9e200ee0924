"""bench/train.py's comparison of two worlds: shares, per labelled candidate, the encoders' ceiling, the floor."""

import pytest

from tests.benches import load_bench

pytestmark = pytest.mark.unit

bench = load_bench("train")


def test_the_encoders_ceiling_is_the_candidates_a_request_over_the_encoders_time_as_a_share():
    """20 candidates a request; IE 0.5 ms and IPV 0.25 ms a request: reading both, at most 20 / 0.75 ms = 26,667
    candidate-samples/s, 2/3 of a first world's 40,000; reading page views alone, 80,000, twice it."""
    later = bench.Day(rates={}, candidates=20.0, labelled=0.8, encoders={"ie": 0.5, "ipv": 0.25})
    assert bench.ceiling_share(later, ("ie", "ipv"), 40_000.0) == pytest.approx(2 / 3)
    assert bench.ceiling_share(later, ("ipv",), 40_000.0) == pytest.approx(2.0)


def test_the_comparison_gives_each_models_share_per_candidate_and_per_labelled_one_and_the_full_models_floor():
    """The first world labels a quarter of its 80 candidates, the second 0.8 of its 20: DLCM at half the first's rate
    meets the share (0.50) and per labelled candidate runs 1.6x as fast; the full model at 12,000 of 40,000 misses
    the share (0.30, 0.96 per labelled candidate; its encoders, 0.75 ms a request over 20 candidates, allow 0.67)
    and clears the floor of 10,000 the second world is held to."""
    first = bench.Day(rates={"dlcm": 100_000.0, "crban_hubsm_ie_ipv": 40_000.0}, candidates=80.0, labelled=0.25,
                      encoders={"ie": 0.5, "ipv": 0.25})
    later = bench.Day(rates={"dlcm": 50_000.0, "crban_hubsm_ie_ipv": 12_000.0}, candidates=20.0, labelled=0.8,
                      encoders={"ie": 0.5, "ipv": 0.25})
    assert bench.comparison([first, later])[1:] == [
        "dlcm                    100,000     50,000  0.500 (met)  (1.60)",
        "crban_hubsm_ie_ipv       40,000     12,000  0.300 (MISSED)  (0.96)  [0.67]",
        "crban_hubsm_ie_ipv against the design's floor: home 1 40,000 >= 20,000 met, home 2 12,000 >= 10,000 met"]
    slow = bench.Day(rates={"dlcm": 50_000.0, "crban_hubsm_ie_ipv": 9_000.0}, candidates=20.0, labelled=0.8,
                     encoders={"ie": 0.5, "ipv": 0.25})
    assert bench.comparison([first, slow])[-1].endswith("home 2 9,000 >= 10,000 MISSED")
