"""PWPRec(LS): the causal transformer over the history with a learnable relative position embedding (pos = T - i,
how many interactions ago) added to each item embedding, then long-short fusion: short = the last position's
output, long = additive attention over all outputs against it, mixed by a sigmoid gate."""

from __future__ import annotations

import torch
from torch import nn

from training.recall.models.base import AdditiveAttention, CausalTransformer, TwoTower


class RelativePositions(nn.Module):
    """pos = T - i on a right-aligned history: the latest interaction is 0."""

    def __init__(self, width: int, dim: int):
        super().__init__()
        self.table = nn.Embedding(width, dim)
        self.register_buffer("ago", torch.arange(width - 1, -1, -1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.table(self.ago[-x.shape[1]:])


class PWPRecLS(TwoTower):
    key = "pwprec_ls"
    name = "PWPRec(LS)"

    def __init__(self, items, cfg, width):
        super().__init__(items, cfg, width)
        self.positions = RelativePositions(width, cfg.dim)
        self.transformer = CausalTransformer(cfg)
        self.long = AdditiveAttention(cfg.dim)
        self.gate = nn.Linear(2 * cfg.dim, cfg.dim)

    def user(self, history: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        outputs = self.transformer(self.positions(history), valid)
        short = outputs[:, -1]
        long = self.long(outputs, short, valid)
        mix = torch.sigmoid(self.gate(torch.cat([short, long], dim=-1)))
        return mix * short + (1 - mix) * long
