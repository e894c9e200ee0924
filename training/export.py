"""Export a registered version of the full model into the bundle of edgerec.contracts.bundle.

The shipped network is cut where the phone needs it:
- one behaviour step per type (`step_model`): an event's item rows and codes and the GRUs' previous hidden
  states in; the new hidden states, the event's item encoding and its fused encoding out. The phone runs it
  once per event, as it happens, and stores the two encodings;
- the re-ranker (`RerankHead`): one request's candidates (item rows and codes) and the stored encodings with each
  event's age code at the trigger in; a score per candidate out.
The item tables (p1..p6 and the optional hashed item_id) leave the network: they become fp16 shards that the
cloud serves, keyed by the version, with the candidates.
The re-ranker goes through the TorchScript exporter (`dynamo=False`: the dynamo exporter has known GRU errors);
the step graphs are written directly (`step_model`).
"""

from __future__ import annotations

import datetime as dt
import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import Tensor, nn

from edgerec.contracts.bundle import (
    BUNDLE_FORMAT,
    EMBEDDINGS,
    FEATURE_SPEC,
    MANIFEST,
    RERANKER,
    RUNTIME_VERSION,
    STEP_MODELS,
    file_entry,
    shard_name,
)
from edgerec.features import GROUPS, ITEM_CATEGORICAL, write_spec
from training.models.base import HASH_MULTIPLIER, N_ITEM, N_ITEM_PART, CodeEmbedding, steps_mask
from training.models.crban import CRBAN, BehaviourEncoder
from training.registry import REGISTERED_MODEL

OPSET = 17
DEFAULT_ROWS_PER_SHARD = 65_536


def step_model(encoder: BehaviourEncoder, item_dim: int, behaviour: str) -> onnx.ModelProto:
    """One event of one behaviour type, as an ONNX graph written node by node rather than traced.

    item_rows [1, item_dim], codes [1, F] (the event's codes in GROUPS order; its item codes and its age are not
    read), h_item [layers, 1, H], h_action [layers, 1, H] -> (h_item_out, h_action_out, item_encoding [1, H],
    fused_encoding [1, 2H]).
    The phone runs it once per event, so per-node overhead is what its latency budget pays: each GRU layer is one
    ONNX GRU op whose final state feeds the next layer as is (no transposes or squeezes), and each code group is
    one gather from its fused table: about half the nodes a traced module gives. Its outputs equal the PyTorch
    encoder's (tested, and checked by the servability gate on every bundle).
    """
    nodes, weights = [], []

    def const(name: str, array: np.ndarray) -> str:
        weights.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(op: str, inputs: list[str], outputs: list[str], **attrs):
        nodes.append(helper.make_node(op, inputs, outputs, **attrs))
        return outputs[0] if len(outputs) == 1 else outputs

    def embed(prefix: str, codes: CodeEmbedding, positions: list[int]) -> str:
        """[1, 1, len(positions) * dim]: rows = min(code, last) + offset, as CodeEmbedding.forward."""
        picked = node("Gather", ["codes", const(f"{prefix}_positions", np.array(positions, np.int64))],
                      [f"{prefix}_codes"], axis=1)
        clamped = node("Min", [picked, const(f"{prefix}_last", codes.last.cpu().numpy()[None])], [f"{prefix}_min"])
        rows = node("Add", [clamped, const(f"{prefix}_offsets", codes.offsets.cpu().numpy()[None])], [f"{prefix}_rows"])
        looked = node("Gather", [const(f"{prefix}_table", codes.table.weight.detach().cpu().numpy()), rows],
                      [f"{prefix}_embedded"], axis=0)
        width = len(positions) * codes.table.embedding_dim
        return node("Reshape", [looked, const(f"{prefix}_shape", np.array([1, 1, width], np.int64))], [f"{prefix}_x"])

    def zrn(w: Tensor) -> np.ndarray:  # torch's gate order (r, z, n) -> ONNX's (z, r, h)
        r, z, n = np.split(w.detach().cpu().numpy(), 3, axis=0)
        return np.concatenate([z, r, n], axis=0)

    def stack(prefix: str, module: nn.GRU, x: str, h_in: str, h_out: str) -> str:
        """The layers of a GRU for one step; returns the top layer's state reshaped [1, H] (the encoding)."""
        layers, hidden = module.num_layers, module.hidden_size
        states = node("Split", [h_in], [f"{prefix}_h{k}" for k in range(layers)], axis=0) if layers > 1 else [h_in]
        finals = []
        for k in range(layers):
            w, r = (const(f"{prefix}_{n}{k}", zrn(getattr(module, f"weight_{m}_l{k}"))[None])
                    for n, m in (("W", "ih"), ("R", "hh")))
            biases = [zrn(getattr(module, f"bias_{m}_l{k}")) for m in ("ih", "hh")]
            b = const(f"{prefix}_B{k}", np.concatenate(biases)[None])
            _, x = node("GRU", [x, w, r, b, "", states[k]], [f"{prefix}_y{k}", f"{prefix}_state{k}"],
                        hidden_size=hidden, linear_before_reset=1)  # torch's GRU applies r after the linear map
            finals.append(x)
        node("Concat", finals, [h_out], axis=0)
        return node("Reshape", [x, const(f"{prefix}_encoding_shape", np.array([1, hidden], np.int64))],
                    [f"{prefix}_encoding"])

    item_x = node("Concat", [node("Reshape", ["item_rows", const("rows_shape", np.array([1, 1, item_dim], np.int64))],
                                  ["rows"]), embed("item_extra", encoder.item_codes, list(range(N_ITEM, N_ITEM_PART)))],
                  ["item_x"], axis=2)
    item = stack("item_gru", encoder.item_gru, item_x, "h_item", "h_item_out")
    action = stack("action_gru", encoder.action_gru, embed("action", encoder.action_codes, encoder.action_index),
                   "h_action", "h_action_out")
    node("Identity", [item], ["item_encoding"])
    node("Concat", [action, item], ["fused_encoding"], axis=1)
    layers, hidden = encoder.item_gru.num_layers, encoder.item_gru.hidden_size
    f32, i64 = TensorProto.FLOAT, TensorProto.INT64
    value = helper.make_tensor_value_info
    graph = helper.make_graph(
        nodes, f"behavior_{behaviour}_step",
        [value("item_rows", f32, [1, item_dim]), value("codes", i64, [1, len(GROUPS[behaviour])]),
         value("h_item", f32, [layers, 1, hidden]), value("h_action", f32, [layers, 1, hidden])],
        [value("h_item_out", f32, [layers, 1, hidden]), value("h_action_out", f32, [layers, 1, hidden]),
         value("item_encoding", f32, [1, hidden]), value("fused_encoding", f32, [1, 2 * hidden])],
        weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edgerec")


class RerankHead(nn.Module):
    """The re-ranker for one request on the phone.

    candidate_rows [K, item_dim], candidate_codes [K, F_candidate] (GROUPS order; item codes not read), and per
    behaviour type b: b_item_encoding [L, H], b_fused_encoding [L, 2H], b_age [L] (age codes at the trigger),
    b_length [1] (real events; L >= 1, padded when there are none) -> scores [K].
    """

    def __init__(self, model: CRBAN):
        super().__init__()
        self.model = model

    def forward(self, candidate_rows: Tensor, candidate_codes: Tensor, *behaviours: Tensor) -> Tensor:
        m = self.model
        features = torch.cat([candidate_rows, m.candidate_codes(candidate_codes[:, N_ITEM:])], dim=-1)
        outputs, _ = m.context_gru(features.unsqueeze(0))
        candidate = outputs[0]  # [K, H]: every candidate is real here, so the last output is the context
        context = outputs[0, -1:].expand_as(candidate)
        parts = []
        for i, b in enumerate(m.behaviours):
            item_enc, fused, age, length = behaviours[4 * i:4 * i + 4]
            attention, keys = m.attention[b], m.encoders[b].keys(item_enc, age)  # [L, H]
            mask = steps_mask(length, keys.size(0))  # [1, L]
            parts.append(attention.pool(candidate, attention.key(keys).unsqueeze(0), fused.unsqueeze(0), mask))
        return m.score(torch.cat([*parts, candidate, context], dim=-1)).squeeze(-1)


def graph_signature(graph: onnx.ModelProto) -> dict:
    """The manifest's signature of a graph written by hand, read off its declared inputs and outputs."""
    def tensor(value) -> dict:
        kind = value.type.tensor_type
        return {"name": value.name, "dtype": str(helper.tensor_dtype_to_np_dtype(kind.elem_type)),
                "shape": [d.dim_value for d in kind.shape.dim]}

    return {"inputs": [tensor(v) for v in graph.graph.input], "outputs": [v.name for v in graph.graph.output]}


def rerank_signature(model: CRBAN, candidates: int = 3, events: int = 2):
    hidden = model.context_gru.hidden_size
    names, example = ["candidate_rows", "candidate_codes"], [
        torch.zeros(candidates, model.items.dim), torch.ones(candidates, len(GROUPS["candidate"]), dtype=torch.long)]
    axes = {"candidate_rows": {0: "candidates"}, "candidate_codes": {0: "candidates"}, "scores": {0: "candidates"}}
    for b in model.behaviours:
        names += [f"{b}_item_encoding", f"{b}_fused_encoding", f"{b}_age", f"{b}_length"]
        example += [torch.zeros(events, hidden), torch.zeros(events, 2 * hidden),
                    torch.ones(events, dtype=torch.long), torch.tensor([events])]
        axes |= {f"{b}_item_encoding": {0: f"{b}_events"}, f"{b}_fused_encoding": {0: f"{b}_events"},
                 f"{b}_age": {0: f"{b}_events"}}
    return names, ["scores"], tuple(example), axes


def _export_onnx(module: nn.Module, example: tuple, path: Path, inputs: list[str], outputs: list[str],
                 axes: dict | None = None) -> None:
    module.eval()
    with warnings.catch_warnings():  # the exporter warns about batch_first GRUs it handles correctly
        warnings.simplefilter("ignore")
        torch.onnx.export(module, example, str(path), input_names=inputs, output_names=outputs,
                          dynamic_axes=axes or {}, opset_version=OPSET, dynamo=False)


def _signature(inputs: list[str], outputs: list[str], example: tuple, axes: dict | None = None) -> dict:
    axes = axes or {}

    def shape(name: str, tensor: Tensor) -> list:
        return [axes.get(name, {}).get(i, n) for i, n in enumerate(tensor.shape)]

    return {"inputs": [{"name": n, "dtype": str(t.dtype).removeprefix("torch."), "shape": shape(n, t)}
                       for n, t in zip(inputs, example, strict=True)],
            "outputs": outputs}


def table_order(model: CRBAN) -> list[str]:
    """The tables whose rows, concatenated in this order, make an item's `item_rows`."""
    return [*ITEM_CATEGORICAL, *(["item_id"] if model.items.item_id_buckets else [])]


def quantized_tables(model: CRBAN, dtype: str = "float16") -> dict[str, np.ndarray]:
    return {name: model.items.tables[name].weight.detach().cpu().numpy().astype(dtype) for name in table_order(model)}


def write_shards(root: Path, table: str, rows: np.ndarray, rows_per_shard: int) -> dict:
    folder = root / EMBEDDINGS / table
    folder.mkdir(parents=True, exist_ok=True)
    shards = []
    for index, lo in enumerate(range(0, len(rows), rows_per_shard)):
        hi = min(lo + rows_per_shard, len(rows))
        path = folder / shard_name(index)
        np.save(path, np.ascontiguousarray(rows[lo:hi]))
        shards.append({**file_entry(root, path), "rows": [lo, hi]})
    return {"rows": len(rows), "dim": int(rows.shape[1]), "dtype": str(rows.dtype), "shards": shards}


def export_bundle(model: CRBAN, spec: dict, root: Path, *, version_id: str, mlflow_version: str | None = None,
                  run_id: str | None = None, rows_per_shard: int = DEFAULT_ROWS_PER_SHARD,
                  dtype: str = "float16") -> dict:
    """Write the bundle of `model` into `root` (created; must not exist) and return its manifest."""
    if not isinstance(model, CRBAN):
        raise TypeError(f"only the CRBAN+HUBSM models can be exported (they have step encoders), not {model.name}")
    root = Path(root)
    if root.exists():
        raise FileExistsError(f"bundle {root} exists: bundles are immutable, export a new version instead")
    model = model.cpu().eval()
    tmp = root.with_name(f".{root.name}.partial")
    tmp.mkdir(parents=True, exist_ok=False)
    signatures = {}
    for b in model.behaviours:
        step = step_model(model.encoders[b], model.items.dim, b)
        onnx.save(step, tmp / STEP_MODELS[b])
        signatures[STEP_MODELS[b]] = graph_signature(step)
    inputs, outputs, example, axes = rerank_signature(model)
    _export_onnx(RerankHead(model), example, tmp / RERANKER, inputs, outputs, axes)
    signatures[RERANKER] = _signature(inputs, outputs, example, axes)
    write_spec(spec, tmp / FEATURE_SPEC)
    files = [*(STEP_MODELS[b] for b in model.behaviours), RERANKER, FEATURE_SPEC]
    manifest = {
        "format": BUNDLE_FORMAT,
        "version": version_id,
        "model": model.name,
        "behaviours": list(model.behaviours),
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "mlflow": {"registered_model": REGISTERED_MODEL, "version": mlflow_version, "run_id": run_id},
        "min_runtime_version": RUNTIME_VERSION,
        "onnx_opset": OPSET,
        "feature_spec_sha256": spec["sha256"],
        "gru_layers": model.context_gru.num_layers,
        "hidden": model.context_gru.hidden_size,
        "item_rows": {"tables": table_order(model), "item_id_buckets": model.items.item_id_buckets,
                      "item_id_hash_multiplier": HASH_MULTIPLIER},
        "signatures": signatures,
        "files": {name: file_entry(tmp, tmp / name) for name in files},
        "embeddings": {name: write_shards(tmp, name, rows, rows_per_shard)
                       for name, rows in quantized_tables(model, dtype).items()},
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.rename(root)  # whole or not at all: a crash leaves only the .partial directory
    return manifest
