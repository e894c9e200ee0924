"""bench/ablations.py's model transforms run on the current models (their hooks replace the attention's pool)."""

import math

import pytest
import torch

from tests.benches import load_bench
from tests.unit.training.worlds import SMALL, SPEC, random_batch
from training.data import to_inputs
from training.models import build_model
from training.models.base import BahdanauAttention

pytestmark = pytest.mark.unit

bench = load_bench("ablations")


@pytest.mark.parametrize("variant", ["r2", "r2_no_null_event", "match_counts"])
def test_each_pool_replacing_variant_scores_a_batch(variant):
    _, overrides, transform = bench.VARIANTS[variant]
    model = transform(build_model("crban_hubsm_ie_ipv", SPEC, SMALL.model_copy(update=overrides)))
    batch = random_batch(6, seed=1)
    scores = model(to_inputs(batch))
    assert scores.shape == batch.label.shape and bool(torch.isfinite(scores).all())


def test_the_counted_pool_appends_the_log_count_of_matching_real_events():
    """One request of 2 real events of 4; the query's item matches the first event, its category both, its brand
    only the padding step: log(1 + 1), log(1 + 2), log(1 + 0)."""
    torch.manual_seed(0)
    attention = BahdanauAttention(query_dim=3, key_dim=4, units=5)
    match = torch.tensor([[[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]])
    attention.pool = lambda *args: bench.counted_pool(attention, *args)
    out = attention(torch.randn(1, 3), torch.randn(1, 4, 4), torch.randn(1, 4, 2), torch.tensor([2]),
                    torch.tensor([0]), match)
    assert out.shape == (1, 2 + 1 + 3 + 3)
    assert out[0, -3:].tolist() == pytest.approx([math.log(2), math.log(3), 0.0])
