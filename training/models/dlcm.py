"""DLCM (Ai et al. 2018), the paper's list-wise baseline: a GRU over the initial list of candidates, cloud
features only, and the local ranking function phi(o_i, s) = V (o_i * tanh(W s + b)) of each candidate's
output o_i against the list's final state s.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from training.config import TrainConfig
from training.models.base import Inputs, Reranker, gru, last_state


class DLCM(Reranker):
    name = "dlcm"
    title = "DLCM"

    def __init__(self, spec: dict, cfg: TrainConfig):
        super().__init__(spec, cfg)
        self.list_gru = gru(self.candidate_dim, cfg)
        self.state = nn.Linear(cfg.hidden, cfg.hidden)
        self.v = nn.Linear(cfg.hidden, 1, bias=False)

    def forward(self, x: Inputs, scored: Tensor | None = None) -> Tensor:  # cheap: scores every slot
        outputs, _ = self.list_gru(self.candidate_features(x))  # [B, K, H]
        state = torch.tanh(self.state(last_state(outputs, x.candidates))).unsqueeze(1)
        return self.v(outputs * state).squeeze(-1)
