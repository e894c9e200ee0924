"""DNN-rank, the paper's point-wise baseline: Wide & Deep (Cheng et al. 2016) over each candidate's cloud
features alone; the wide part is a linear model of every feature code, the deep part an MLP of the embeddings.
"""

from __future__ import annotations

from torch import Tensor, nn

from edgerec.features import GROUPS
from training.config import TrainConfig
from training.models.base import CodeEmbedding, Inputs, Reranker, vocab_sizes


class DNNRank(Reranker):
    name = "dnn_rank"
    title = "DNN-rank"

    def __init__(self, spec: dict, cfg: TrainConfig):
        super().__init__(spec, cfg)
        self.wide = CodeEmbedding(vocab_sizes(spec, GROUPS["candidate"]), 1)
        self.deep = nn.Sequential(nn.Linear(self.candidate_dim, cfg.mlp), nn.ReLU(), nn.Linear(cfg.mlp, cfg.mlp),
                                  nn.ReLU(), nn.Linear(cfg.mlp, 1))

    def forward(self, x: Inputs, scored: Tensor | None = None) -> Tensor:  # cheap: scores every slot
        return (self.wide(x.candidate).sum(-1, keepdim=True) + self.deep(self.candidate_features(x))).squeeze(-1)
