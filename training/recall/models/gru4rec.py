"""GRU4Rec-Enhanced (baseline): a GRU over the history, and the user as the attention-weighted sum of its outputs
against the last one."""

from __future__ import annotations

import torch
from torch import nn

from training.recall.models.base import AdditiveAttention, TwoTower


class GRU4RecEnhanced(TwoTower):
    key = "gru4rec"
    name = "GRU4Rec-Enhanced"

    def __init__(self, items, cfg, width):
        super().__init__(items, cfg, width)
        self.gru = nn.GRU(cfg.dim, cfg.dim, batch_first=True)
        self.attention = AdditiveAttention(cfg.dim)

    def user(self, history: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.gru(history)  # the padding before the history is zeros: the state stays near its start
        return self.attention(outputs, outputs[:, -1], valid)
