"""Tiny hand-made inputs for the model tests: a spec with small vocabularies and random requests."""

from __future__ import annotations

import numpy as np

from edgerec.features import GROUPS
from training.config import TrainConfig
from training.data import Batch

VOCAB = 7
SPEC = {"features": {name: {"vocab_size": VOCAB} for names in GROUPS.values() for name in names},
        "sequence_lengths": {"candidates": 6, "ie": 5, "ipv": 4}}
SMALL = TrainConfig(hidden=8, attention=8, mlp=8, gru_layers=2, item_embedding_dim=4, code_embedding_dim=2,
                    batch_requests=8, lr=0.02, device="cpu")


def random_batch(requests: int, seed: int = 0, candidates: int = 6, ie: int = 5, ipv: int = 4) -> Batch:
    """Requests with 2..candidates real candidates (labelled at random, some unlabelled), and IE/IPV sequences
    of random lengths (0 included), padded with 0 like the marts."""
    rng = np.random.default_rng(seed)

    def padded(width: int, features: int, lengths: np.ndarray, low: int = 1) -> tuple[np.ndarray, np.ndarray]:
        real = np.arange(width)[None, :] < lengths[:, None]
        items = np.where(real, rng.integers(1, 50, (requests, width)), 0)
        codes = np.where(real[..., None], rng.integers(low, VOCAB, (requests, width, features)), 0)
        return items, codes

    n_cand = rng.integers(2, candidates + 1, requests)
    n_ie, n_ipv = rng.integers(0, ie + 1, requests), rng.integers(0, ipv + 1, requests)
    cand_item, cand = padded(candidates, len(GROUPS["candidate"]), n_cand)
    real = np.arange(candidates)[None, :] < n_cand[:, None]
    mask = (real & (rng.random((requests, candidates)) < 0.8)).astype(np.int64)
    mask[:, 0] = 1
    label = (mask & (rng.random((requests, candidates)) < 0.4)).astype(np.int64)
    ie_item, ie_codes = padded(ie, len(GROUPS["ie"]), n_ie)
    ipv_item, ipv_codes = padded(ipv, len(GROUPS["ipv"]), n_ipv)
    return Batch([f"r{i}" for i in range(requests)], cand_item, cand, n_cand, label, mask,
                 np.where(mask > 0, np.arange(candidates)[None, :], 0), label & (rng.random(label.shape) < 0.3),
                 label & (rng.random(label.shape) < 0.1), ie_item, ie_codes, n_ie,
                 ipv_item, ipv_codes, n_ipv)
