"""CRBAN+HUISM (the paper's ablation of HUBSM): the same re-ranker, but the behaviours are the interacted items
alone, without action encodings, pooled by DIN-style attention (Zhou et al. 2018): an MLP over
[q, k, q - k, q * k] weighs each behaviour item for the candidate, and the weighted items are summed.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from edgerec.features import GROUPS
from training.config import TrainConfig
from training.models.base import (
    N_ITEM,
    N_ITEM_PART,
    CodeEmbedding,
    Inputs,
    Reranker,
    gru,
    last_state,
    mlp,
    scatter_scores,
    scored_positions,
    steps_mask,
    vocab_sizes,
)


class DinAttention(nn.Module):
    """query [N, D], items [B, L, D], lengths [B], request [N] -> [N, D]; weights are not normalised, as in DIN."""

    def __init__(self, dim: int, units: int):
        super().__init__()
        self.unit = nn.Sequential(nn.Linear(4 * dim, units), nn.ReLU(), nn.Linear(units, 1))

    def forward(self, query: Tensor, items: Tensor, lengths: Tensor, request: Tensor) -> Tensor:
        k = items[request]  # [N, L, D]
        q = query.unsqueeze(1).expand_as(k)
        weights = self.unit(torch.cat([q, k, q - k, q * k], dim=-1)).squeeze(-1)
        weights = weights * steps_mask(lengths, items.size(1))[request].to(weights.dtype)
        return (weights.unsqueeze(1) @ k).squeeze(1)


class CRBANHUISM(Reranker):
    name = "crban_huism_ie_ipv"
    title = "CRBAN+HUISM(IE&IPV)"
    behaviours = ("ie", "ipv")

    def __init__(self, spec: dict, cfg: TrainConfig):
        super().__init__(spec, cfg)
        self.candidate_encoder = nn.Sequential(nn.Linear(self.candidate_dim, cfg.hidden), nn.Tanh())
        self.context_gru = gru(self.candidate_dim, cfg)
        self.item_codes = nn.ModuleDict({
            b: CodeEmbedding(vocab_sizes(spec, GROUPS[b][N_ITEM:N_ITEM_PART]), cfg.code_embedding_dim)
            for b in self.behaviours})
        item_dim = self.items.dim + cfg.code_embedding_dim * (N_ITEM_PART - N_ITEM)
        self.item_encoder = nn.Sequential(nn.Linear(item_dim, cfg.hidden), nn.Tanh())
        self.attention = nn.ModuleDict({b: DinAttention(cfg.hidden, cfg.attention) for b in self.behaviours})
        self.score = mlp(cfg.hidden * len(self.behaviours) + 2 * cfg.hidden, cfg.mlp)

    def forward(self, x: Inputs, scored: Tensor | None = None) -> Tensor:
        features = self.candidate_features(x)
        outputs, _ = self.context_gru(features)
        request, flat = scored_positions(x, scored)
        candidate = self.candidate_encoder(features.flatten(0, 1)[flat])
        parts = []
        for b in self.behaviours:
            codes = getattr(x, b)
            items = self.item_encoder(torch.cat([self.items(codes[..., :N_ITEM], getattr(x, f"{b}_item")),
                                                 self.item_codes[b](codes[..., N_ITEM:N_ITEM_PART])], dim=-1))
            parts.append(self.attention[b](candidate, items, getattr(x, f"{b}_length"), request))
        context = last_state(outputs, x.candidates)[request]
        logits = self.score(torch.cat([*parts, candidate, context], dim=-1)).squeeze(-1)
        return scatter_scores(logits, flat, features.shape)
