"""CRBAN+HUISM (the paper's ablation of HUBSM): the same re-ranker, but the behaviours are the interacted items
alone, without action encodings, pooled by DIN-style attention (Zhou et al. 2018): an MLP over
[q, k, q - k, q * k, m] weighs each behaviour item for the candidate, and the weighted items are summed.

The two differ in the behaviour encoding alone, so the attention reads what CRBAN+HUBSM's reads besides it: the
match indicators m (same category, same brand) and the event's age at the trigger, whose embedding is added to the
keys (not to the pooled items), as in HUBSM. Without the age the unnormalised sum weighs an exposure of three days
ago like one of a minute ago, and it grows with the history: a test day, with a day more of history behind it than
the train days had, fed the scoring MLP pools larger than any it was trained on.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from edgerec.features import AGE_INDEX, GROUPS, MATCH_FEATURES
from training.config import TrainConfig
from training.models.base import (
    N_ITEM,
    N_ITEM_PART,
    CodeEmbedding,
    ContextAwareReranker,
    EventAge,
    Inputs,
    pool_by_request,
    real_pairs,
    scatter_pairs,
    vocab_sizes,
)


class DinAttention(nn.Module):
    """query [N, D], keys [B, L, D], values [B, L, Dv], lengths [B], request [N], match [N, L, M] -> [N, Dv];
    weights are not normalised, as in DIN (so the pool keeps how many relevant items there were).

    The unit's first layer reads [q, k, q - k, q * k, m]; being linear, it is computed as W_q' q + W_k' k +
    W_p (q * k) + W_m m with W_q' = W_q + W_d and W_k' = W_k - W_d: the query's part once per candidate, the key's
    once per event, and no [N, L, 4D + M] input is built (the same function of the same weights, a third of the
    memory traffic)."""

    def __init__(self, dim: int, units: int):
        super().__init__()
        self.dim = dim
        self.unit = nn.Sequential(nn.Linear(4 * dim + len(MATCH_FEATURES), units), nn.ReLU(), nn.Linear(units, 1))

    def forward(self, query: Tensor, keys: Tensor, values: Tensor, lengths: Tensor, request: Tensor,
                match: Tensor) -> Tensor:
        first, d = self.unit[0], self.dim
        w_q, w_k, w_d, w_p, w_m = first.weight.split([d, d, d, d, len(MATCH_FEATURES)], dim=1)
        mask, query_of, step, event = real_pairs(lengths, keys.size(1), request)  # the real pairs alone: [P]
        k = keys.flatten(0, 1).index_select(0, event)  # [P, D]
        hidden = (F.linear(query, w_q + w_d, first.bias).index_select(0, query_of)
                  + F.linear(keys, w_k - w_d).flatten(0, 1).index_select(0, event)
                  + F.linear(query.index_select(0, query_of) * k, w_p) + F.linear(match[query_of, step], w_m))
        weights = self.unit[2](self.unit[1](hidden)).squeeze(-1)
        return pool_by_request(scatter_pairs(weights, mask, 0.0), values, request)


class CRBANHUISM(ContextAwareReranker):
    name = "crban_huism_ie_ipv"
    title = "CRBAN+HUISM(IE&IPV)"
    behaviours = ("ie", "ipv")

    def __init__(self, spec: dict, cfg: TrainConfig):
        super().__init__(spec, cfg, pooled_dim=cfg.hidden)
        self.item_codes = nn.ModuleDict({
            b: CodeEmbedding(vocab_sizes(spec, GROUPS[b][N_ITEM:N_ITEM_PART]), cfg.code_embedding_dim)
            for b in self.behaviours})
        item_dim = self.items.dim + cfg.code_embedding_dim * (N_ITEM_PART - N_ITEM)
        self.item_encoder = nn.Sequential(nn.Linear(item_dim, cfg.hidden), nn.Tanh())
        self.attention = nn.ModuleDict({b: DinAttention(cfg.hidden, cfg.attention) for b in self.behaviours})
        self.age = nn.ModuleDict({b: EventAge(spec, b, cfg.hidden) for b in self.behaviours})

    def attend(self, x: Inputs, behaviour: str, candidate: Tensor, request: Tensor, match: Tensor) -> Tensor:
        codes = getattr(x, behaviour)
        items = self.item_encoder(torch.cat([self.items(codes[..., :N_ITEM], getattr(x, f"{behaviour}_item")),
                                             self.item_codes[behaviour](codes[..., N_ITEM:N_ITEM_PART])], dim=-1))
        keys = self.age[behaviour].add_to(items, codes[..., AGE_INDEX[behaviour]])
        return self.attention[behaviour](candidate, keys, items, getattr(x, f"{behaviour}_length"), request, match)
