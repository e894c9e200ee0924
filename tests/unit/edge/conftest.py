"""A tiny bundle for the default simulated world: the spec has the world's vocabularies, the model is small and
untrained (the runtime's behaviour does not depend on the weights)."""

import pytest
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


@pytest.fixture(scope="session")
def bundle(tmp_path_factory):
    torch.manual_seed(0)
    spec = world_spec()
    model = build_model(FULL_MODEL, spec, SMALL).eval()
    root = tmp_path_factory.mktemp("bundles") / "v20261104-0000beef"
    export_bundle(model, spec, root, version_id=root.name)
    return root
