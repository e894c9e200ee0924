"""The six re-rankers and their blocks: shapes, masking, causality of the behaviour encoders, overfitting, and
determinism for a seed."""

import math

import numpy as np
import pytest
import torch
from torch import Tensor

from edgerec.features import AGE_INDEX, GROUPS
from edgerec.features import match_codes as feature_match_codes
from tests.unit.training.worlds import SMALL, SPEC, VOCAB, random_batch
from training.config import TrainConfig
from training.data import Batch, chronological, row_counts, to_inputs
from training.models import MODELS, build_model
from training.models.base import (
    BahdanauAttention,
    CodeEmbedding,
    ItemTables,
    by_length,
    last_state,
    match_codes,
    match_indicators,
    steps_mask,
)
from training.models.crban import BehaviourEncoder
from training.models.crban_huism import DinAttention
from training.trainer import fit, learning_rate, seed_everything

pytestmark = pytest.mark.unit


def test_defaults():
    """The paper's, except the learning rate (see TrainConfig)."""
    cfg = TrainConfig()
    assert (cfg.batch_requests, cfg.gru_layers, cfg.hidden, cfg.attention, cfg.mlp) == (512, 3, 32, 32, 32)
    assert (cfg.lr, cfg.lr_schedule, cfg.epochs, cfg.patience) == (0.015, "cosine", 10, 3)


def test_the_cosine_schedule_falls_from_lr_towards_zero_and_constant_keeps_lr():
    cosine = SMALL.model_copy(update={"lr": 0.01, "epochs": 4, "lr_schedule": "cosine"})
    assert [learning_rate(cosine, e) for e in range(4)] == pytest.approx([0.01, 0.0085355, 0.005, 0.0014645],
                                                                         abs=1e-7)
    constant = cosine.model_copy(update={"lr_schedule": "constant"})
    assert [learning_rate(constant, e) for e in range(4)] == [0.01] * 4


def test_fit_trains_each_epoch_with_the_scheduled_rate(monkeypatch):
    batch = random_batch(8, seed=5)
    model = build_model("dlcm", SPEC, SMALL)
    cfg = SMALL.model_copy(update={"lr": 0.01, "epochs": 4, "lr_schedule": "cosine"})
    seen, original = [], torch.optim.Adam.step

    def step(self, *args, **kwargs):  # records the rate of every optimizer step
        seen.append(self.param_groups[0]["lr"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    history = fit(model, lambda epoch: [batch, batch], cfg, torch.device("cpu"))
    assert seen == pytest.approx([0.01, 0.01, 0.0085355, 0.0085355, 0.005, 0.005, 0.0014645, 0.0014645], abs=1e-7)
    assert [r.lr for r in history] == pytest.approx([0.01, 0.0085355, 0.005, 0.0014645], abs=1e-7)


def test_item_tables_shape_clamp_and_hashed_item_id():
    tables = ItemTables(SPEC, SMALL.model_copy(update={"item_id_buckets": 10}))
    assert list(tables.tables) == ["category", "brand", "gender", "price_level", "age_level", "bc_type", "item_id"]
    codes = torch.tensor([[[1, 2, 3, 4, 5, 6], [VOCAB + 5, 0, 0, 0, 0, 0]]])  # a code beyond the table is clamped
    out = tables(codes, torch.tensor([[17, 0]]))
    assert out.shape == (1, 2, 7 * 4)
    assert torch.equal(out[0, 1, :4], tables.tables["category"].weight[VOCAB - 1])
    assert torch.equal(out[0, 1, 4:8], torch.zeros(4))  # padding row
    rows = tables.rows("item_id", torch.tensor([0, 1, 2, 17]))
    assert rows[0] == 0 and bool(((rows[1:] >= 1) & (rows[1:] <= 10)).all())


def test_rows_seen_too_rarely_read_the_oov_row_and_are_exported_as_copies_of_it():
    tables = ItemTables(SPEC, SMALL.model_copy(update={"item_id_buckets": 4, "min_item_count": 3}))
    counts = {name: np.zeros(t.num_embeddings, dtype=np.int64) for name, t in tables.tables.items()}
    counts["brand"][[2, 3]] = [3, 2]  # brand code 2 seen 3 times: learned; code 3 seen twice: not
    counts["item_id"][[1, 2]] = [5, 1]
    learned = tables.restrict(counts)
    assert learned["brand"] == 3 and learned["item_id"] == 2  # code 2 + padding + OOV (1); row 1 + padding (0)
    assert tables.rows("brand", torch.tensor([0, 1, 2, 3, 4])).tolist() == [0, 1, 2, 1, 1]
    out = tables(torch.tensor([[2, 3, 2, 2, 2, 2]]), torch.tensor([0]))
    brand = tables.tables["brand"].weight
    assert torch.equal(out[0, 4:8], brand[1])  # code 3 reads the out-of-vocabulary row
    exported = tables.exported("brand")
    assert torch.equal(exported[2], brand[2]) and torch.equal(exported[3], brand[1]) and torch.equal(exported[0],
                                                                                                      brand[0])
    hashed = tables.exported("item_id")
    assert torch.equal(hashed[1], tables.tables["item_id"].weight[1]) and torch.equal(hashed[2], torch.zeros(4))


def test_row_counts_count_real_candidates_and_events_only():
    from tests.unit.training.test_rules import batch

    tables = ItemTables(SPEC, SMALL)
    b = batch([[10, 20], [30]], [[10], []], [[1, 0], [0]])
    b.candidate[0, :, 1] = [2, 3]  # brand codes of the first request's candidates
    b.candidate[1, :, 1] = [3, 6]  # the second request's second slot is padding
    b.ipv[0, 0, 1] = 3
    counts = row_counts([b], tables)
    assert counts["brand"][[2, 3, 6]].tolist() == [1, 3, 0]


def test_code_embedding_keeps_features_apart():
    emb = CodeEmbedding([3, 5], dim=2)
    out = emb(torch.tensor([[1, 1], [9, 4]]))  # 9 > 2: clamped to the first table's last row
    assert out.shape == (2, 4)
    assert torch.equal(out[0, :2], emb.table.weight[1]) and torch.equal(out[0, 2:], emb.table.weight[3 + 1])
    assert torch.equal(out[1, :2], emb.table.weight[2]) and torch.equal(out[1, 2:], emb.table.weight[3 + 4])


def test_a_gru_run_by_length_gives_the_real_steps_outputs_and_gradients_of_one_run_over_every_step():
    """Five page-view-like rows of 1 step, one empty and two of 10: the short ones run apart over 1 step (a saving
    of 54 of 80 row-steps), so their outputs after it are 0; the real steps' outputs, and the gradients of a loss on
    them, equal one GRU over all rows and steps."""
    torch.manual_seed(0)
    gru = torch.nn.GRU(3, 4, num_layers=2, batch_first=True)
    inputs = torch.randn(8, 10, 3, requires_grad=True)
    lengths = torch.tensor([1, 10, 0, 1, 1, 10, 1, 1])
    real = steps_mask(lengths, 10)

    def gradients(outputs: Tensor) -> list[Tensor]:
        grads = torch.autograd.grad(outputs[real].square().sum(), [inputs, *gru.parameters()])
        return [g.clone() for g in grads]

    expected, _ = gru(inputs)
    out = by_length(gru, inputs, lengths)
    assert torch.allclose(out[real], expected[real], atol=1e-6)
    assert torch.equal(out[lengths <= 1, 1:], torch.zeros(6, 9, 4))
    for grad, expected_grad in zip(gradients(out), gradients(expected), strict=True):
        assert torch.allclose(grad, expected_grad, atol=1e-5)


def test_a_gru_run_by_length_keeps_one_group_when_a_split_saves_little_and_handles_empty_rows():
    """Exposure-like rows (5, 10, 10, 10 steps): a split would save 5 of 40 row-steps, under a fifth, so one GRU
    call over every step, as without lengths. Rows without a step run one step, so the GRU stays in the graph (its
    weights get a gradient, as over padding before); an empty batch gives an empty result."""
    torch.manual_seed(0)
    gru = torch.nn.GRU(3, 4, batch_first=True)
    inputs = torch.randn(4, 10, 3)
    expected, _ = gru(inputs)
    assert torch.equal(by_length(gru, inputs, torch.tensor([5, 10, 10, 10])), expected)
    empty = by_length(gru, inputs, torch.zeros(4, dtype=torch.long))
    assert torch.equal(empty[:, :1], expected[:, :1]) and torch.equal(empty[:, 1:], torch.zeros(4, 9, 4))
    empty.sum().backward()
    assert all(p.grad is not None for p in gru.parameters())
    assert by_length(gru, inputs[:0], torch.zeros(0, dtype=torch.long)).shape == (0, 10, 4)


def test_last_state():
    outputs = torch.arange(12.0).view(2, 3, 2)
    assert last_state(outputs, torch.tensor([2, 0])).tolist() == [[2.0, 3.0], [0.0, 0.0]]


def test_pool_by_request_sums_each_querys_weights_over_its_own_requests_values():
    """Three requests (the middle one without queries), queries out of request order: each query's weighted sum of
    its own request's values, written out."""
    from training.models.base import pool_by_request

    values = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[5.0, 5.0], [5.0, 5.0]], [[2.0, 3.0], [4.0, 5.0]]])
    weights = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 2.0], [1.0, 1.0]], requires_grad=True)
    request = torch.tensor([2, 0, 0, 2])
    pooled = pool_by_request(weights, values, request)
    assert pooled.tolist() == [[2.0, 3.0], [0.5, 0.5], [0.0, 2.0], [6.0, 8.0]]
    pooled.sum().backward()  # d/dw of each query's sum: its request's values summed over D
    assert weights.grad.tolist() == [[5.0, 9.0], [1.0, 1.0], [1.0, 1.0], [5.0, 9.0]]
    assert pool_by_request(weights[:0], values, request[:0]).shape == (0, 2)


def test_the_attentions_pair_table_equals_the_query_and_match_projections_it_replaces():
    """W_q q_n + W_m m_nj read from the per-query table of the eight values m can take, for all eight of them: the
    training graph and the exported re-ranker both compute it this way, so parity between them cannot catch it."""
    attention = BahdanauAttention(query_dim=3, key_dim=4, units=5)
    query = torch.randn(2, 3)
    every = [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0],
             [0.0, 0.0, 1.0], [1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    match = torch.tensor([every, every[::-1]])  # [2 queries, 8 events, M=3]
    with torch.no_grad():
        expected = attention.query(query).unsqueeze(1) + attention.match(match)
        assert torch.allclose(attention.pair_inputs(query, match), expected, atol=1e-6)


def test_bahdanau_attention_shape_and_ignores_padding_steps():
    attention = BahdanauAttention(query_dim=3, key_dim=4, units=5)
    query, keys, values = torch.randn(6, 3), torch.randn(2, 7, 4), torch.randn(2, 7, 9)
    lengths, request = torch.tensor([3, 0]), torch.tensor([0, 0, 0, 0, 1, 1])  # 4 queries of request 0, 2 of 1
    match = torch.randint(0, 2, (6, 7, 3)).float()
    out = attention(query, keys, values, lengths, request, match)
    assert out.shape == (6, 9 + 1 + 3)  # the pooled values, the soft count and the pooled match indicators
    keys2, values2, match2 = keys.clone(), values.clone(), match.clone()
    keys2[:, 3:], values2[:, 3:], match2[:, 3:] = 100.0, 100.0, 1.0  # only padding steps change
    assert torch.allclose(attention(query, keys2, values2, lengths, request, match2), out)
    assert torch.equal(out[4:], torch.zeros(2, 13))  # no behaviour: a zero context, count and match
    pooled_ones = attention(query[:1], keys, torch.ones(2, 7, 1), lengths, request[:1], match[:1])
    weight_sum, mass = pooled_ones[0, 0], pooled_ones[0, 1]
    assert 0.0 < weight_sum < 1.0 and torch.allclose(weight_sum, 1 - torch.exp(-mass))  # the null event takes the rest


def assert_equal_with_gradients(attention: torch.nn.Module, expected: Tensor, *inputs: Tensor) -> Tensor:
    """attention(*inputs) equals `expected` (a reference computed from the same weights), and so do the gradients
    of the weights (of the sum of squares); returns the output."""
    expected.square().sum().backward()
    expected_grads = [p.grad.clone() for p in attention.parameters()]
    attention.zero_grad()
    out = attention(*inputs)
    out.square().sum().backward()
    assert torch.allclose(out, expected, atol=1e-6)
    for grad, expected_grad in zip((p.grad for p in attention.parameters()), expected_grads, strict=True):
        assert torch.allclose(grad, expected_grad, atol=1e-5)
    return out


def test_the_attention_computes_the_real_pairs_energy_alone_and_pools_as_over_every_pair():
    """Training computes the energy of the real (query, event) pairs only; the result and its gradients equal the
    energy of every pair with the padding steps masked (the form the exported re-ranker computes), for queries out
    of request order and requests of 5, 2 and 0 events."""
    torch.manual_seed(0)
    attention = BahdanauAttention(query_dim=3, key_dim=4, units=5)
    query, keys, values = torch.randn(5, 3), torch.randn(3, 5, 4), torch.randn(3, 5, 2)
    lengths, request = torch.tensor([5, 2, 0]), torch.tensor([1, 0, 2, 1, 0])
    match = torch.randint(0, 2, (5, 5, 3)).float()

    def dense() -> Tensor:
        mask = steps_mask(lengths, 5)[request]
        weights, mass = attention.weights(attention.key(keys)[request] + attention.pair_inputs(query, match), mask)
        return torch.cat([torch.einsum("nl,nld->nd", weights, values[request]), mass,
                          torch.einsum("nl,nlm->nm", weights, match)], dim=-1)

    out = assert_equal_with_gradients(attention, dense(), query, keys, values, lengths, request, match)
    assert torch.equal(out[2], torch.zeros(2 + 1 + 3))  # request 2 has no events


def test_match_indicators_compare_known_codes_only():
    candidates = torch.tensor([[7, 3, 5], [8, 0, 5]])  # item, category, brand; the second's category is unknown
    events = torch.tensor([[[7, 3, 5], [9, 3, 6], [0, 0, 0]]])  # one request's 3 events, broadcast over candidates
    assert match_indicators(candidates, events).tolist() == [
        [[1.0, 1.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]],
        [[0.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]]


def test_match_codes_put_the_item_id_before_the_category_and_brand_codes():
    codes = np.array([[4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 5, 6]])  # p1..p6: category, brand, ...
    assert feature_match_codes(np.array([11, 12]), codes).tolist() == [[11, 4, 5], [12, 1, 2]]
    assert match_codes(torch.tensor([11, 12]), torch.from_numpy(codes)).tolist() == [[11, 4, 5], [12, 1, 2]]


def category_attention(length: int, values: list[float], same_category: list[float]) -> Tensor:
    """A one-unit BahdanauAttention with every weight zero but v = 2 and the category's match weight 1, over one
    request of 4 steps (`length` real) holding `values`: an event's energy is v . tanh(W_m m), 0 for an unrelated
    event and e = 2 tanh 1 for one of the candidate's category. Returns [pooled value, soft count, pooled item
    match, pooled category match, pooled brand match]."""
    attention = BahdanauAttention(query_dim=1, key_dim=1, units=1)
    with torch.no_grad():
        for p in attention.parameters():
            p.zero_()
        attention.v.fill_(2.0)
        attention.match.weight.fill_(1.0)
        match = torch.tensor(same_category).view(1, 4, 1) * torch.tensor([0.0, 1.0, 0.0])
        return attention(torch.zeros(1, 1), torch.zeros(1, 4, 1), torch.tensor(values).view(1, 4, 1),
                         torch.tensor([length]), torch.tensor([0]), match)[0]


SAME_CATEGORY_EXP_ENERGY = math.exp(2 * math.tanh(1.0))


def test_bahdanau_weights_leave_the_null_event_its_share_so_the_pool_grows_with_the_relevant_events():
    """The weights are exp e_j / (1 + sum exp e): the null event (energy 0, value 0) takes the rest."""
    def pooled(length: int, values: list[float], same_category: list[float]) -> float:
        return float(category_attention(length, values, same_category)[0])

    e = SAME_CATEGORY_EXP_ENERGY
    assert pooled(3, [1.0, 2.0, 3.0, 99.0], [0, 0, 0, 1]) == pytest.approx((1 + 2 + 3) / 4)  # a plain softmax: 2.0
    assert pooled(1, [1.0] * 4, [1, 0, 0, 0]) == pytest.approx(e / (1 + e))
    assert pooled(3, [1.0] * 4, [1, 1, 1, 0]) == pytest.approx(3 * e / (1 + 3 * e))  # a plain softmax: 1 twice
    assert pooled(0, [1.0] * 4, [1, 1, 1, 1]) == 0.0


def test_the_soft_count_is_log_one_plus_sum_of_exp_energies():
    """An unrelated event counts 1 inside the log, each event of the candidate's category more."""
    def count(length: int, same_category: list[float]) -> float:
        return float(category_attention(length, [0.0] * 4, same_category)[1])

    e = SAME_CATEGORY_EXP_ENERGY
    assert count(3, [0, 0, 0, 0]) == pytest.approx(math.log(1 + 3))
    assert count(0, [1, 1, 1, 1]) == 0.0
    assert count(3, [1, 1, 0, 1]) == pytest.approx(math.log(1 + 2 * e + 1))  # the 4th event is padding
    assert count(3, [1, 1, 1, 0]) > count(3, [1, 1, 0, 0]) > count(3, [1, 0, 0, 0])


def test_the_pooled_match_is_the_attention_share_on_events_of_the_candidates_category():
    """sum_j a_j m_j: one of three events of the candidate's category pools e / (1 + e + 2); the item and the brand
    never match here, so their terms stay 0."""
    def match(length: int, same_category: list[float]) -> list[float]:
        return category_attention(length, [0.0] * 4, same_category)[2:].tolist()

    e = SAME_CATEGORY_EXP_ENERGY
    assert match(3, [1, 0, 0, 1]) == pytest.approx([0.0, e / (1 + e + 2), 0.0])  # the 4th event is padding
    assert match(3, [0, 0, 0, 1]) == [0.0, 0.0, 0.0]
    assert match(0, [1, 1, 1, 1]) == [0.0, 0.0, 0.0]


def test_behaviour_encoder_shapes_and_causality():
    """An event's encoding depends only on it and earlier events: the phone encodes it once, as it happens."""
    encoder = BehaviourEncoder(SPEC, "ie", item_dim=5, cfg=SMALL)
    items = torch.randn(2, 5, 5)
    codes = torch.randint(1, VOCAB, (2, 5, len(GROUPS["ie"])))
    keys, fused = encoder(items, codes)
    assert keys.shape == (2, 5, SMALL.hidden) and fused.shape == (2, 5, 2 * SMALL.hidden)
    later_items, later_codes = items.clone(), codes.clone()
    later_items[:, 3:], later_codes[:, 3:] = 0.0, 1
    _, fused_later = encoder(later_items, later_codes)
    assert torch.allclose(fused_later[:, :3], fused[:, :3])
    assert not torch.allclose(fused_later[:, 3:], fused[:, 3:])


def test_the_age_at_the_trigger_moves_the_keys_only():
    """The time decay changes after the event, so it must not enter the GRUs (whose steps the phone stores)."""
    encoder = BehaviourEncoder(SPEC, "ipv", item_dim=5, cfg=SMALL)
    age = AGE_INDEX["ipv"]
    items, codes = torch.randn(1, 4, 5), torch.randint(1, VOCAB, (1, 4, len(GROUPS["ipv"])))
    older = codes.clone()
    older[..., age] = (codes[..., age] % (VOCAB - 1)) + 1  # every event one bucket older (wrapping)
    keys, fused = encoder(items, codes)
    keys_older, fused_older = encoder(items, older)
    assert torch.equal(fused_older, fused)
    assert not torch.allclose(keys_older, keys)
    moved = encoder.age(older[..., age:age + 1]) - encoder.age(codes[..., age:age + 1])
    assert torch.allclose(keys_older - keys, moved)


def test_din_attention_weighs_each_event_by_its_key_and_sums_the_values_unnormalised():
    attention = DinAttention(dim=3, units=4)
    query, keys, values = torch.randn(3, 3), torch.randn(2, 4, 3), torch.randn(2, 4, 5)
    lengths, request = torch.tensor([2, 0]), torch.tensor([0, 0, 1])  # 2 queries of request 0, 1 of request 1
    match = torch.randint(0, 2, (3, 4, 3)).float()
    with torch.no_grad():
        out = attention(query, keys, values, lengths, request, match)
        q, k = query[:2, None].expand(2, 4, 3), keys[0].expand(2, 4, 3)
        weights = attention.unit(torch.cat([q, k, q - k, q * k, match[:2]], dim=-1))[..., 0]
    expected = weights[:, :2] @ values[0, :2]  # the two real events; the weights need not sum to 1
    assert out.shape == (3, 5)
    assert torch.allclose(out[:2], expected, atol=1e-6)
    assert torch.equal(out[2], torch.zeros(5))  # no behaviour: a zero pool


def test_din_attention_computes_the_real_pairs_alone_and_pools_as_over_every_pair():
    """As for the additive attention: queries out of request order over requests of 5, 2 and 0 events, the packed
    form's pools and gradients equal the unit's over every pair with the padding steps weighted 0."""
    torch.manual_seed(0)
    attention = DinAttention(dim=3, units=4)
    query, keys, values = torch.randn(5, 3), torch.randn(3, 5, 3), torch.randn(3, 5, 2)
    lengths, request = torch.tensor([5, 2, 0]), torch.tensor([1, 0, 2, 1, 0])
    match = torch.randint(0, 2, (5, 5, 3)).float()
    q, k = query.unsqueeze(1).expand(5, 5, 3), keys[request]
    weights = attention.unit(torch.cat([q, k, q - k, q * k, match], dim=-1))[..., 0]
    real = steps_mask(lengths, 5)[request]
    expected = torch.einsum("nl,nld->nd", weights * real, values[request])
    out = assert_equal_with_gradients(attention, expected, query, keys, values, lengths, request, match)
    assert torch.equal(out[2], torch.zeros(2))  # request 2 has no events


def test_huism_weighs_the_events_by_their_age_at_the_trigger():
    """As in HUBSM, the age enters the attention's keys, so an older event can weigh less."""
    model = build_model("crban_huism_ie_ipv", SPEC, SMALL)
    x = to_inputs(random_batch(4, seed=2, ie=5, ipv=4))
    age = AGE_INDEX["ipv"]
    candidate, request = torch.randn(4, SMALL.hidden), torch.arange(4)
    match = torch.zeros(4, x.ipv.size(1), 3)
    with torch.no_grad():
        pooled = model.attend(x, "ipv", candidate, request, match)
        x.ipv[..., age] = torch.where(x.ipv[..., age] > 0, x.ipv[..., age] % (VOCAB - 1) + 1, 0)  # one bucket older
        older = model.attend(x, "ipv", candidate, request, match)
    has_events = x.ipv_length > 0
    assert bool(has_events.any()) and not torch.allclose(older[has_events], pooled[has_events])
    assert torch.equal(older[~has_events], pooled[~has_events])


def test_sequences_become_oldest_first_with_padding_after():
    values = np.array([[3, 2, 1, 0], [9, 8, 7, 6], [0, 0, 0, 0]])  # most recent first, as in the marts
    assert chronological(values, np.array([3, 4, 0])).tolist() == [[1, 2, 3, 0], [6, 7, 8, 9], [0, 0, 0, 0]]
    features = np.stack([values, 10 * values], axis=-1)
    assert chronological(features, np.array([3, 4, 0]))[0].tolist() == [[1, 10], [2, 20], [3, 30], [0, 0]]


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_scores_every_candidate(name):
    batch = random_batch(5)
    model = build_model(name, SPEC, SMALL)
    scores = model(to_inputs(batch))
    assert scores.shape == (5, 6) and bool(torch.isfinite(scores).all())


@pytest.mark.parametrize("name", list(MODELS))
def test_unlabelled_and_padding_candidates_get_no_gradient(name):
    batch = random_batch(6, seed=3)
    model = build_model(name, SPEC, SMALL)
    x = to_inputs(batch)
    scores = model(x)
    scores.retain_grad()
    model.loss(scores, torch.from_numpy(batch.label), torch.from_numpy(batch.mask)).backward()
    unlabelled = torch.from_numpy(batch.mask) == 0
    assert bool(unlabelled.any()) and bool((scores.grad[unlabelled] == 0).all())
    assert bool((scores.grad[~unlabelled] != 0).any())
    # padding candidates change nothing for the real ones
    padded = x.candidate.clone()
    real = torch.arange(6)[None, :] < x.candidates[:, None]
    padded[~real] = VOCAB - 1
    x.candidate = padded
    with torch.no_grad():
        again = model(x)
    assert torch.allclose(again[real], scores.detach()[real], atol=1e-6)


@pytest.mark.parametrize("name", list(MODELS))
def test_a_batch_trimmed_to_its_longest_lists_scores_and_trains_as_the_padded_one(name):
    # lists of at most 3 candidates, 2 exposures and 1 page view, padded to 6, 5 and 4 as the marts pad them
    batch = random_batch(6, seed=4, candidates=3, ie=2, ipv=1)
    padded = Batch(batch.rerank_id, *(np.pad(getattr(batch, f), [(0, 0), (0, extra)] + [(0, 0)] * (getattr(
        batch, f).ndim - 2)) if extra else getattr(batch, f) for f, extra in (
        ("candidate_item", 3), ("candidate", 3), ("candidates", 0), ("label", 3), ("mask", 3), ("shown_position", 3),
        ("cart", 3), ("buy", 3), ("ie_item", 3), ("ie", 3), ("ie_length", 0), ("ipv_item", 3), ("ipv", 3),
        ("ipv_length", 0))))
    trimmed = padded.trimmed()
    assert (trimmed.candidate.shape[1], trimmed.ie.shape[1], trimmed.ipv.shape[1]) == (
        int(batch.candidates.max()), int(batch.ie_length.max()), max(int(batch.ipv_length.max()), 1))
    model = build_model(name, SPEC, SMALL)
    losses = []
    for b in (padded, trimmed):
        model.zero_grad()
        scores = model(to_inputs(b), scored=torch.from_numpy(b.mask) > 0)
        loss = model.loss(scores, torch.from_numpy(b.label), torch.from_numpy(b.mask))
        loss.backward()
        losses.append((scores.detach()[:, :trimmed.candidate.shape[1]], loss.item(),
                       [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    (full, full_loss, full_grads), (cut, cut_loss, cut_grads) = losses
    assert torch.allclose(full, cut, atol=1e-6) and full_loss == pytest.approx(cut_loss, abs=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(full_grads, cut_grads, strict=True))
    nothing = Batch(batch.rerank_id[:1], *(getattr(padded, f)[:1] * 0 for f in (
        "candidate_item", "candidate", "candidates", "label", "mask", "shown_position", "cart", "buy", "ie_item", "ie",
        "ie_length", "ipv_item", "ipv", "ipv_length"))).trimmed()
    assert (nothing.candidate.shape[1], nothing.ie.shape[1], nothing.ipv.shape[1]) == (1, 1, 1)  # never 0 steps


@pytest.mark.parametrize("name", ["crban_hubsm_ie_ipv", "dlcm"])
def test_overfitting_eight_requests_drives_the_loss_near_zero(name):
    batch = random_batch(8, seed=5)
    seed_everything(0)
    model = build_model(name, SPEC, SMALL)
    history = fit(model, lambda epoch: [batch], SMALL.model_copy(update={"epochs": 300}), torch.device("cpu"))
    assert history[0].loss > 0.4
    assert history[-1].loss < 0.02


def test_early_stopping_keeps_the_best_epoch_and_stops_after_the_patience():
    batch = random_batch(8, seed=5)
    seed_everything(0)
    model = build_model("dlcm", SPEC, SMALL)
    scripted = iter([0.60, 0.70, 0.65, 0.69, 0.99])  # the best is epoch 2; epochs 3 and 4 exhaust a patience of 2
    weights_after = []

    def validate(m) -> float:
        weights_after.append({k: v.clone() for k, v in m.state_dict().items()})
        return next(scripted)

    cfg = SMALL.model_copy(update={"epochs": 5, "patience": 2})
    history = fit(model, lambda epoch: [batch], cfg, torch.device("cpu"), validate=validate)
    assert [r.validation_gauc for r in history] == [0.60, 0.70, 0.65, 0.69]
    assert [r.kept for r in history] == [True, True, False, False]
    assert all(torch.equal(model.state_dict()[k], weights_after[1][k]) for k in weights_after[1])
    assert not all(torch.equal(weights_after[1][k], weights_after[3][k]) for k in weights_after[1])


def test_a_warm_start_keeps_the_parents_weights_unless_an_epoch_beats_them():
    """The first validation scores the parent's weights: an epoch is kept only above them."""
    batch = random_batch(8, seed=5)
    cfg = SMALL.model_copy(update={"epochs": 5, "patience": 2})

    def warm_fit(scores: list[float]) -> tuple[list, dict, dict]:
        seed_everything(0)
        model = build_model("dlcm", SPEC, SMALL)
        start = {k: v.clone() for k, v in model.state_dict().items()}
        scripted = iter(scores)
        history = fit(model, lambda epoch: [batch], cfg, torch.device("cpu"), validate=lambda m: next(scripted),
                      warm=True)
        return history, start, model.state_dict()

    history, start, end = warm_fit([0.70, 0.65, 0.69, 0.99])  # the parent's 0.70 is never beaten
    assert [r.validation_gauc for r in history] == [0.65, 0.69] and not any(r.kept for r in history)
    assert all(torch.equal(end[k], start[k]) for k in start)
    history, start, end = warm_fit([0.70, 0.65, 0.72, 0.71, 0.70, 0.60])
    assert [r.kept for r in history] == [False, True, False, False]
    assert not all(torch.equal(end[k], start[k]) for k in start)


def test_a_nan_validation_gauc_never_stops_training_and_keeps_the_last_weights():
    batch = random_batch(8, seed=5)
    model = build_model("dlcm", SPEC, SMALL)
    history = fit(model, lambda epoch: [batch], SMALL.model_copy(update={"epochs": 4, "patience": 1}),
                  torch.device("cpu"), validate=lambda m: float("nan"))
    assert len(history) == 4 and not any(r.kept for r in history)


def test_same_seed_same_weights_and_another_seed_differs():
    batches = [random_batch(8, seed=s) for s in range(3)]

    def trained(seed: int) -> dict:
        seed_everything(seed)
        model = build_model("crban_hubsm_ie_ipv", SPEC, SMALL)
        fit(model, lambda epoch: batches, SMALL.model_copy(update={"epochs": 2}), torch.device("cpu"))
        return model.state_dict()

    first, second, other = trained(1), trained(1), trained(2)
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


@pytest.mark.parametrize("name", ["crban_hubsm_ie_ipv", "crban_huism_ie_ipv"])
def test_scoring_a_subset_gives_the_same_scores_there_and_zero_elsewhere(name):
    batch = random_batch(6, seed=4)
    model = build_model(name, SPEC, SMALL)
    x = to_inputs(batch)
    labelled = torch.from_numpy(batch.mask) > 0
    with torch.no_grad():
        every, subset = model(x), model(x, scored=labelled)
    assert torch.allclose(subset[labelled], every[labelled], atol=1e-6)
    assert bool((subset[~labelled] == 0).all())
