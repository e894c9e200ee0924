"""bench/train.py's ceiling on a world's share from its behaviour encoders alone."""

import pytest

from tests.benches import load_bench

pytestmark = pytest.mark.unit

bench = load_bench("train")


def test_the_encoders_ceiling_is_the_candidates_a_request_over_the_encoders_time_as_a_share():
    """20 candidates a request; IE 0.5 ms and IPV 0.25 ms a request: reading both, at most 20 / 0.75 ms = 26,667
    candidate-samples/s, 2/3 of a first world's 40,000; reading page views alone, 80,000, twice it."""
    later = bench.Day(rates={}, candidates=20.0, encoders={"ie": 0.5, "ipv": 0.25})
    assert bench.ceiling_share(later, ("ie", "ipv"), 40_000.0) == pytest.approx(2 / 3)
    assert bench.ceiling_share(later, ("ipv",), 40_000.0) == pytest.approx(2.0)
