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


def make_bundle(root: Path, seed: int = 0, rows_per_shard: int = 65_536, signer=None, rules=None) -> dict:
    """Export an untrained small full model into root (named like a version id), signed by `signer` when given,
    with business `rules` in its manifest when given; returns the manifest."""
    torch.manual_seed(seed)
    spec = world_spec()
    model = build_model(FULL_MODEL, spec, SMALL).eval()
    return export_bundle(model, spec, root, version_id=root.name, signer=signer, rows_per_shard=rows_per_shard,
                         rules=rules)


def order_bundle(root: Path, reverse: bool, signer=None, rules=None) -> dict:
    """A bundle whose re-ranker looks at nothing but the order the cloud sent the candidates in: it keeps that order
    (`reverse=False`), or turns it upside down (`reverse=True`: the cloud's last candidates first, a deliberately
    harmful version). make_bundle's, with `reranker.onnx` replaced by a graph of the same inputs and the manifest
    written and signed again; returns the manifest."""
    import json

    import onnx
    from onnx import TensorProto, helper

    from edgerec.contracts.bundle import MANIFEST, RERANKER, file_entry
    from edgerec.contracts.signing import SIGNATURE, sign

    manifest = make_bundle(root, rules=rules)
    original = onnx.load(root / RERANKER)
    nodes = [helper.make_node("Shape", ["candidate_items"], ["count_1d"]),
             helper.make_node("Squeeze", ["count_1d"], ["count"]),
             helper.make_node("Range", ["zero", "count", "one"], ["index"]),
             helper.make_node("Cast", ["index"], ["rank"], to=TensorProto.FLOAT),
             helper.make_node("Identity" if reverse else "Neg", ["rank"], ["scores"])]
    constants = [helper.make_tensor("zero", TensorProto.INT64, [], [0]),
                 helper.make_tensor("one", TensorProto.INT64, [], [1])]
    graph = helper.make_graph(nodes, "cloud_order_reversed" if reverse else "cloud_order_kept",
                              list(original.graph.input), list(original.graph.output), initializer=constants)
    onnx.save(helper.make_model(graph, opset_imports=list(original.opset_import), ir_version=original.ir_version),
              root / RERANKER)
    manifest["files"][RERANKER] = file_entry(root, root / RERANKER)
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    if signer is not None:
        (root / SIGNATURE).write_bytes(sign((root / MANIFEST).read_bytes(), signer))
    return manifest
