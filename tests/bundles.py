"""Tiny bundles for the default simulated world: the spec has the world's vocabularies, the model is small and
untrained (the runtime's and the deploy stage's behaviour do not depend on the weights)."""

from pathlib import Path

import torch

from edgerec.features import BUCKETIZED, make_spec
from training.config import TrainConfig
from training.export import export_bundle
from training.models import FULL_MODEL, build_model

WORLD_VOCAB = {"category": 40, "brand": 320, "gender": 3, "price_level": 5, "age_level": 6, "bc_type": 2}
SMALL = TrainConfig(hidden=8, attention=8, mlp=8, gru_layers=2, item_embedding_dim=4, code_embedding_dim=2,
                    device="cpu")


def world_spec() -> dict:
    boundaries = {name: [0.01, 1.0, 100.0, 10_000.0] for name in BUCKETIZED}
    return make_spec(boundaries, WORLD_VOCAB, {"candidates": 100, "ie": 8, "ipv": 4}, fit={"tests": True})


def make_bundle(root: Path, seed: int = 0, rows_per_shard: int = 65_536, signer=None) -> dict:
    """Export an untrained small full model into root (named like a version id), signed by `signer` when given;
    returns the manifest."""
    torch.manual_seed(seed)
    spec = world_spec()
    model = build_model(FULL_MODEL, spec, SMALL).eval()
    return export_bundle(model, spec, root, version_id=root.name, signer=signer, rows_per_shard=rows_per_shard)
