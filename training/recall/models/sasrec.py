"""SASRec (baseline): a causal transformer with absolute learnable positions (counted from the history's first
interaction), the user as its last position's output."""

from __future__ import annotations

import torch
from torch import nn

from training.recall.models.base import CausalTransformer, TwoTower, absolute_positions


class SASRec(TwoTower):
    key = "sasrec"
    name = "SASRec"

    def __init__(self, items, cfg, width):
        super().__init__(items, cfg, width)
        self.positions = nn.Embedding(width, cfg.dim)
        self.transformer = CausalTransformer(cfg)

    def user(self, history: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        positions = self.positions(absolute_positions(valid)) * valid.unsqueeze(-1)
        return self.transformer(history + positions, valid)[:, -1]
