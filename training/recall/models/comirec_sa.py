"""ComiRec-SA (baseline): K self-attentive interests straight over the embedded history with absolute positions,
without the causal transformer; trained and evaluated on interests as PWPRec(MI) is."""

from __future__ import annotations

import torch
from torch import nn

from training.recall.models.base import SelfAttentiveInterests, TwoTower, absolute_positions


class ComiRecSA(TwoTower):
    key = "comirec_sa"
    name = "ComiRec-SA"
    multi_interest = True

    def __init__(self, items, cfg, width):
        super().__init__(items, cfg, width)
        self.positions = nn.Embedding(width, cfg.dim)
        self.interests = SelfAttentiveInterests(cfg)

    def user(self, history: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        positions = self.positions(absolute_positions(valid))
        return self.interests(history + positions * valid.unsqueeze(-1), valid)
