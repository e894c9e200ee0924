"""The shared two-tower base: an item tower from the item features p1..p6 and an optional hashed item id, a user
tower each model defines over the embedded history, and the loss and scores on normalized embeddings (cosine times
an inverse temperature). The parts several towers share live here too: the causal transformer and the
self-attentive multi-interest extractor."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from training.recall.config import RecallConfig

HASH_MULTIPLIER = 2_654_435_761  # Knuth's multiplicative hash: spreads consecutive item ids over the buckets


class ItemTower(nn.Module):
    def __init__(self, codes: torch.Tensor, item_ids: torch.Tensor, vocab_sizes: list[int], cfg: RecallConfig):
        super().__init__()
        self.register_buffer("codes", codes, persistent=False)  # [N + 1, 6], row 0 padding
        hashed = torch.zeros(len(codes), dtype=torch.long)
        if cfg.item_id_buckets:
            hashed[1:] = (item_ids * HASH_MULTIPLIER) % cfg.item_id_buckets + 1
        self.register_buffer("hashed", hashed, persistent=False)
        self.features = nn.ModuleList(nn.Embedding(n + 1, cfg.feature_dim, padding_idx=0) for n in vocab_sizes)
        self.item_id = nn.Embedding(cfg.item_id_buckets + 1, cfg.dim, padding_idx=0) if cfg.item_id_buckets else None
        self.project = nn.Linear(cfg.feature_dim * len(vocab_sizes), cfg.dim)

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        """Item indices [...] -> embeddings [..., dim] (not normalized; padding gives the bias alone)."""
        codes = self.codes[index]
        out = self.project(torch.cat([table(codes[..., j]) for j, table in enumerate(self.features)], dim=-1))
        if self.item_id is not None:
            out = out + self.item_id(self.hashed[index])
        return out


def attendable(valid: torch.Tensor) -> torch.Tensor:
    """The positions the towers' attention may read: the history's, or, for a history without one known item, its
    last (zero) position, so that no softmax runs over nothing (which gives NaN)."""
    empty = ~valid.any(dim=1)
    return torch.cat([valid[:, :-1], valid[:, -1:] | empty.unsqueeze(1)], dim=1)


class TwoTower(nn.Module):
    """Subclasses set `key` and `name` and implement `user(history_embeddings, valid) -> [B, dim]` or, with
    `multi_interest`, `[B, K, dim]`. Histories are right-aligned: position L-1 is the latest interaction."""

    key: str = ""  # how settings and checkpoints name it
    name: str = ""  # its title in the comparison
    multi_interest: bool = False

    def __init__(self, items: ItemTower, cfg: RecallConfig, width: int):
        super().__init__()
        self.items, self.cfg, self.width = items, cfg, width


    def user(self, history: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def encode(self, history_index: torch.Tensor) -> torch.Tensor:
        valid = history_index > 0
        history = self.items(history_index) * valid.unsqueeze(-1)
        return F.normalize(self.user(history, attendable(valid)), dim=-1)

    def item_vectors(self, index: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.items(index), dim=-1)

    def pick_interest(self, users: torch.Tensor, by: torch.Tensor) -> torch.Tensor:
        """Multi-interest: each sample's interest with the highest summed affinity to `by` [B, C, dim] (training:
        the positive alone, the interest closest to it; evaluation: the candidate set). [B, dim]."""
        if not self.multi_interest:
            return users
        affinity = torch.einsum("bkd,bcd->bk", users, by)
        return users[torch.arange(len(users)), affinity.argmax(dim=1)]

    def loss(self, history_index: torch.Tensor, target: torch.Tensor, negatives: torch.Tensor | None) -> torch.Tensor:
        """Softmax cross-entropy of the positive against `negatives` [B, n] (global negatives) or, when None,
        against the batch's other positives (batch negatives; a repeated target is not its own negative)."""
        positives = self.item_vectors(target)
        users = self.pick_interest(self.encode(history_index), positives.unsqueeze(1))
        scale = self.cfg.inverse_temperature
        if negatives is None:
            logits = scale * users @ positives.T
            same = (target.unsqueeze(0) == target.unsqueeze(1)) & ~torch.eye(len(target), dtype=torch.bool,
                                                                              device=target.device)
            logits = logits.masked_fill(same, float("-inf"))
            return F.cross_entropy(logits, torch.arange(len(target), device=target.device))
        candidates = torch.cat([positives.unsqueeze(1), self.item_vectors(negatives)], dim=1)
        logits = scale * torch.einsum("bd,bcd->bc", users, candidates)
        logits = logits.masked_fill(torch.cat([torch.zeros_like(target).unsqueeze(1).bool(),
                                               negatives == target.unsqueeze(1)], dim=1), float("-inf"))
        return F.cross_entropy(logits, torch.zeros(len(target), dtype=torch.long, device=target.device))

    @torch.no_grad()
    def scores(self, history_index: torch.Tensor, candidates: torch.Tensor, item_table: torch.Tensor) -> torch.Tensor:
        """Cosine scores [B, C] of each sample's candidates, read from the normalized item table [N + 1, dim]."""
        vectors = item_table[candidates]
        users = self.pick_interest(self.encode(history_index), vectors)
        return torch.einsum("bd,bcd->bc", users, vectors)


class CausalTransformer(nn.Module):
    """Transformer encoder over the history with a causal (lower-triangular) mask: position i reads positions
    <= i that hold an interaction, and itself (so a padding position's row is never empty)."""

    def __init__(self, cfg: RecallConfig):
        super().__init__()
        layer = nn.TransformerEncoderLayer(cfg.dim, cfg.heads, dim_feedforward=2 * cfg.dim, dropout=cfg.dropout,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.heads = cfg.heads
        self.norm = nn.LayerNorm(cfg.dim)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        position = torch.arange(x.shape[1], device=x.device)  # comparisons: onnxruntime has no boolean EyeLike
        causal, itself = position[None, :] <= position[:, None], position[None, :] == position[:, None]
        allowed = causal.unsqueeze(0) & (valid.unsqueeze(1) | itself)
        mask = (~allowed).repeat_interleave(self.heads, dim=0)  # [B * heads, L, L]: True = may not attend
        return self.norm(self.encoder(x, mask=mask))


class SelfAttentiveInterests(nn.Module):
    """K interests from a sequence H [B, L, dim]: A = softmax_L((tanh(H W1) W2)^T), U = A H (ComiRec-SA)."""

    def __init__(self, cfg: RecallConfig):
        super().__init__()
        self.w1 = nn.Linear(cfg.dim, 4 * cfg.dim, bias=False)
        self.w2 = nn.Linear(4 * cfg.dim, cfg.interests, bias=False)

    def forward(self, h: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        energy = self.w2(torch.tanh(self.w1(h))).transpose(1, 2)  # [B, K, L]
        weights = torch.softmax(energy.masked_fill(~valid.unsqueeze(1), float("-inf")), dim=-1)
        return weights @ h


def absolute_positions(valid: torch.Tensor) -> torch.Tensor:
    """[B, L] each position's place counted from the history's first interaction (0 on the padding)."""
    first = valid.shape[1] - valid.sum(dim=1, keepdim=True)
    return (torch.arange(valid.shape[1], device=valid.device).unsqueeze(0) - first).clamp(min=0)


class AdditiveAttention(nn.Module):
    """Weights over the outputs O [B, L, dim] against a query q [B, dim]: softmax_L(v^T tanh(W1 O + W2 q))."""

    def __init__(self, dim: int):
        super().__init__()
        self.keys, self.query = nn.Linear(dim, dim, bias=False), nn.Linear(dim, dim)
        self.v = nn.Linear(dim, 1, bias=False)

    def forward(self, outputs: torch.Tensor, query: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        energy = self.v(torch.tanh(self.keys(outputs) + self.query(query).unsqueeze(1))).squeeze(-1)
        weights = torch.softmax(energy.masked_fill(~valid, float("-inf")), dim=-1)
        return (weights.unsqueeze(-1) * outputs).sum(dim=1)
