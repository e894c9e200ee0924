"""PWPRec(MI): the same causal transformer and relative positions as PWPRec(LS), with multi-interest fusion: K
self-attentive interests over its outputs. Training reads the interest closest to the positive; evaluation the
interest with the highest summed affinity to the candidate set (TwoTower.pick_interest)."""

from __future__ import annotations

import torch

from training.recall.models.base import CausalTransformer, SelfAttentiveInterests, TwoTower
from training.recall.models.pwprec_ls import RelativePositions


class PWPRecMI(TwoTower):
    key = "pwprec_mi"
    name = "PWPRec(MI)"
    multi_interest = True

    def __init__(self, items, cfg, width):
        super().__init__(items, cfg, width)
        self.positions = RelativePositions(width, cfg.dim)
        self.transformer = CausalTransformer(cfg)
        self.interests = SelfAttentiveInterests(cfg)

    def user(self, history: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return self.interests(self.transformer(self.positions(history), valid), valid)
