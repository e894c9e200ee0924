"""Export a registered version of the full model into the bundle of edgerec.contracts.bundle.

The shipped network is cut where the phone needs it:
- one behaviour step per type (`step_model`): an event's item rows and codes and the GRUs' previous hidden
  states in; the new hidden states, the event's item encoding and its fused encoding out. The phone runs it
  once per event, as it happens, and stores the two encodings;
- the re-ranker (`RerankHead`): one request's candidates (item rows and codes) and the stored encodings and match
  codes with each event's age code at the trigger in; a score per candidate out.
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
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from onnx import TensorProto, helper, numpy_helper
from torch import Tensor, nn

from edgerec.contracts.bundle import (
    BASE_RUNTIME_VERSION,
    BUNDLE_FORMAT,
    EMBEDDINGS,
    FEATURE_SPEC,
    MANIFEST,
    RERANKER,
    STEP_MODELS,
    file_entry,
    shard_name,
)
from edgerec.contracts.rules import RULES_RUNTIME_VERSION, BusinessRules
from edgerec.contracts.signing import SIGNATURE, sign
from edgerec.features import GROUPS, ITEM_CATEGORICAL, MATCH_FEATURES, write_spec
from edgerec.registry import REGISTERED_MODEL
from training.models.base import (
    HASH_MULTIPLIER,
    N_ITEM,
    N_ITEM_PART,
    PRICE_INDEX,
    match_codes,
    steps_mask,
    weighted_sum,
)
from training.models.crban import CRBAN, BehaviourEncoder

OPSET = 17
DEFAULT_ROWS_PER_SHARD = 65_536
# The manifest lists every shard and ships to the phone: a table of more rows than this many shards hold gets larger
# shards rather than more of them, so the bundle does not grow with the catalog (a brand per item, raw item ids)
MAX_SHARDS_PER_TABLE = 16


def step_model(encoder: BehaviourEncoder, item_dim: int, behaviour: str) -> onnx.ModelProto:
    """One event of one behaviour type, as an ONNX graph written node by node rather than traced.

    item_rows [1, item_dim], codes [1, F] (the event's codes in GROUPS order; its item codes and its age are not
    read), state_0 .. state_{layers-1} [1, 1, 2H] -> state_out_0 .. state_out_{layers-1} [1, 1, 2H].
    Each layer's state holds the action GRU's and the item GRU's hidden states side by side, so the top layer's
    new state is the event's fused encoding [action | item] and its second half the item encoding. (The runtime
    binds the layers to one [layers, 1, 2H] buffer: no split or concat in the graph.)
    The phone runs it once per event, so per-node overhead is what its latency budget pays. The action and item
    GRUs are independent, so each layer runs both as one ONNX GRU of 2H units with block-diagonal weights; the
    file keeps only the two GRUs' own weights and a few constant nodes that lay them out block-diagonally, which
    onnxruntime folds when it loads the graph. Per event that leaves one GRU node per layer and one gather over a
    table fusing both code groups: 7 + layers nodes. Its outputs equal the PyTorch encoder's (tested, and checked by the
    servability gate on every bundle).
    """
    nodes, weights = [], []
    action_gru, item_gru = encoder.action_gru, encoder.item_gru
    layers, hidden = item_gru.num_layers, item_gru.hidden_size

    def const(name: str, array: np.ndarray) -> str:
        weights.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(op: str, inputs: list[str], outputs: list[str], **attrs):
        nodes.append(helper.make_node(op, inputs, outputs, **attrs))
        return outputs[0] if len(outputs) == 1 else outputs

    def zrn(w: Tensor) -> np.ndarray:  # torch's gate order (r, z, n) -> ONNX's (z, r, h)
        r, z, n = np.split(w.detach().cpu().numpy(), 3, axis=0)
        return np.concatenate([z, r, n], axis=0)

    def block_diagonal(name: str, action: np.ndarray, item: np.ndarray, action_first: bool) -> str:
        """[1, 3 * 2H, columns]: per gate, the action units' rows then the item units' rows, each reading only its
        own GRU's columns (the action columns first in the state, last in the first layer's input)."""
        a, i = const(f"{name}_action", action), const(f"{name}_item", item)
        a_cols, i_cols = action.shape[1], item.shape[1]
        left = [0, i_cols, 0, 0] if not action_first else [0, 0, 0, i_cols]  # pads: begins then ends, per axis
        right = [0, 0, 0, a_cols] if not action_first else [0, a_cols, 0, 0]
        padded = [node("Pad", [a, const(f"{name}_action_pads", np.array(left, np.int64))], [f"{name}_action_wide"]),
                  node("Pad", [i, const(f"{name}_item_pads", np.array(right, np.int64))], [f"{name}_item_wide"])]
        both = node("Concat", padded, [f"{name}_both"], axis=0)  # [units a_z a_r a_h i_z i_r i_h]
        columns = a_cols + i_cols
        by_gru = node("Reshape", [both, const(f"{name}_by_gru", np.array([2, 3, hidden, columns], np.int64))],
                      [f"{name}_by_gru_gate"])
        by_gate = node("Transpose", [by_gru], [f"{name}_by_gate"], perm=[1, 0, 2, 3])  # [a_z i_z a_r i_r a_h i_h]
        return node("Reshape", [by_gate, const(f"{name}_shape", np.array([1, 6 * hidden, columns], np.int64))],
                    [name])

    # both code groups through one gather: the item's extra codes, then the action codes
    extra, actions = list(range(N_ITEM, N_ITEM_PART)), encoder.action_index
    tables = (encoder.item_codes, encoder.action_codes)
    table = np.concatenate([t.table.weight.detach().cpu().numpy() for t in tables])
    offsets = np.concatenate([encoder.item_codes.offsets.cpu().numpy(),
                              encoder.action_codes.offsets.cpu().numpy() + encoder.item_codes.table.num_embeddings])
    last = np.concatenate([t.last.cpu().numpy() for t in tables])
    picked = node("Gather", ["codes", const("code_positions", np.array(extra + actions, np.int64))], ["picked"], axis=1)
    clamped = node("Min", [picked, const("code_last", last[None])], ["clamped"])  # as CodeEmbedding.forward
    looked = node("Gather", [const("code_table", table), node("Add", [clamped, const("code_offsets", offsets[None])],
                                                                      ["table_rows"])], ["embedded"], axis=0)
    width = table.shape[1] * len(extra + actions)
    embedded = node("Reshape", [looked, const("embedded_shape", np.array([1, 1, width], np.int64))], ["codes_x"])
    rows = node("Reshape", ["item_rows", const("rows_shape", np.array([1, 1, item_dim], np.int64))], ["rows_x"])
    x = node("Concat", [rows, embedded], ["x"], axis=2)  # [1, 1, item GRU input | action GRU input]

    for k in range(layers):
        w = block_diagonal(f"W{k}", zrn(getattr(action_gru, f"weight_ih_l{k}")),
                           zrn(getattr(item_gru, f"weight_ih_l{k}")), action_first=k > 0)
        r = block_diagonal(f"R{k}", zrn(getattr(action_gru, f"weight_hh_l{k}")),
                           zrn(getattr(item_gru, f"weight_hh_l{k}")), action_first=True)
        biases = [np.concatenate([np.stack(np.split(zrn(getattr(g, f"bias_{m}_l{k}")), 3)) for g in
                                  (action_gru, item_gru)], axis=1).reshape(-1) for m in ("ih", "hh")]
        b = const(f"B{k}", np.concatenate(biases)[None])
        _, x = node("GRU", [x, w, r, b, "", f"state_{k}"], ["", f"state_out_{k}"], hidden_size=2 * hidden,
                    linear_before_reset=1)  # torch's GRU applies r after the linear map
    f32, i64 = TensorProto.FLOAT, TensorProto.INT64
    value = helper.make_tensor_value_info
    states = [[value(f"{name}_{k}", f32, [1, 1, 2 * hidden]) for k in range(layers)] for name in ("state", "state_out")]
    graph = helper.make_graph(
        nodes, f"behavior_{behaviour}_step",
        [value("item_rows", f32, [1, item_dim]), value("codes", i64, [1, len(GROUPS[behaviour])]), *states[0]],
        states[1], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edgerec")


class RerankHead(nn.Module):
    """The re-ranker for one request on the phone.

    candidate_rows [K, item_dim], candidate_codes [K, F_candidate] (GROUPS order), candidate_items [K] (item ids),
    and per behaviour type b: b_item_encoding [L, H], b_fused_encoding [L, 2H], b_match_codes [L, M] (each event's
    MATCH_FEATURES: `edgerec.features.match_codes`), b_age [L] (age codes at the trigger), b_length [1] (real
    events; L >= 1, padded when there are none) -> scores [K].

    It computes the model's scores (`CRBAN.forward`) with the work per candidate and event pair cut down, the same
    function up to float rounding. As in training, the query and match terms of the energy are a table read per
    pair (`BahdanauAttention.pair_inputs`). Here, besides, the scoring MLP's first layer is linear in each pooled
    value sum_j a_j x_j, so it is applied to each event's fused encoding once per request (L products) and the
    candidates sum those with their weights, rather than pool the 2H-wide encodings per candidate and project the
    pools; the list context s, the same for every candidate, is projected once too.
    """

    def __init__(self, model: CRBAN):
        super().__init__()
        self.model = model
        # the first layer's columns, in the order the model concatenates its inputs: per behaviour the pooled
        # fused encodings (2H), the log partition and the pooled match indicators (1 + M); then o_i and s
        hidden = model.context_gru.hidden_size
        widths = [w for _ in model.behaviours for w in (2 * hidden, 1 + len(MATCH_FEATURES))] + [hidden, hidden]
        self.columns = model.score[0].weight.detach().split(widths, dim=1)

    def forward(self, candidate_rows: Tensor, candidate_codes: Tensor, candidate_items: Tensor,
                *behaviours: Tensor) -> Tensor:
        m = self.model
        features = torch.cat([candidate_rows, m.candidate_codes(candidate_codes[:, N_ITEM:])], dim=-1)
        outputs, _ = m.context_gru(features.unsqueeze(0))
        candidate = outputs[0]  # [K, H]: every candidate is real here, so the last output is the context
        *pooled_columns, candidate_columns, context_columns = self.columns
        first = (candidate @ candidate_columns.t() + outputs[0, -1:] @ context_columns.t()  # [K, mlp]
                 + m.score[0].bias)
        # [K, M]; an unknown code (0) never matches: as -1 it equals no event's code, with no And per pair
        candidate_match = match_codes(candidate_items, candidate_codes)
        candidate_match = candidate_match.masked_fill(candidate_match == 0, -1)
        for i, b in enumerate(m.behaviours):
            item_enc, fused, event_match, age, length = behaviours[5 * i:5 * i + 5]
            attention, keys = m.attention[b], m.encoders[b].keys(item_enc, age)  # [L, H]
            same = (event_match.unsqueeze(0) == candidate_match.unsqueeze(1)).float()  # [K, L, M] match indicators
            projected = attention.key(keys).unsqueeze(0) + attention.pair_inputs(candidate, same)  # [K, L, units]
            weights, mass = attention.weights(projected, steps_mask(length, keys.size(0)))
            values, rest = pooled_columns[2 * i:2 * i + 2]
            first = (first + weights @ (fused @ values.t())
                     + torch.cat([mass, weighted_sum(weights, same)], dim=-1) @ rest.t())
        return m.ranked(m.score[2](torch.relu(first)), candidate_codes[:, PRICE_INDEX])


def graph_signature(graph: onnx.ModelProto) -> dict:
    """The manifest's signature of a graph written by hand, read off its declared inputs and outputs."""
    def tensor(value) -> dict:
        kind = value.type.tensor_type
        return {"name": value.name, "dtype": str(helper.tensor_dtype_to_np_dtype(kind.elem_type)),
                "shape": [d.dim_value for d in kind.shape.dim]}

    return {"inputs": [tensor(v) for v in graph.graph.input], "outputs": [v.name for v in graph.graph.output]}


def rerank_signature(model: CRBAN, candidates: int = 3, events: int = 2):
    hidden = model.context_gru.hidden_size
    names, example = ["candidate_rows", "candidate_codes", "candidate_items"], [
        torch.zeros(candidates, model.items.dim), torch.ones(candidates, len(GROUPS["candidate"]), dtype=torch.long),
        torch.arange(1, candidates + 1)]
    axes = {"candidate_rows": {0: "candidates"}, "candidate_codes": {0: "candidates"},
            "candidate_items": {0: "candidates"}, "scores": {0: "candidates"}}
    for b in model.behaviours:
        names += [f"{b}_item_encoding", f"{b}_fused_encoding", f"{b}_match_codes", f"{b}_age", f"{b}_length"]
        example += [torch.zeros(events, hidden), torch.zeros(events, 2 * hidden),
                    torch.ones(events, len(MATCH_FEATURES), dtype=torch.long), torch.ones(events, dtype=torch.long),
                    torch.tensor([events])]
        axes |= {f"{b}_{name}": {0: f"{b}_events"} for name in ("item_encoding", "fused_encoding", "match_codes",
                                                                 "age")}
    return names, ["scores"], tuple(example), axes


def export_onnx(module: nn.Module, example: tuple, path: Path, inputs: list[str], outputs: list[str],
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
    return {name: model.items.exported(name).cpu().numpy().astype(dtype) for name in table_order(model)}


def write_shards(root: Path, table: str, rows: np.ndarray, rows_per_shard: int) -> dict:
    """The table's rows as .npy shards of rows_per_shard rows, or of more when it would take more than
    MAX_SHARDS_PER_TABLE shards; returns the manifest's entry of the table."""
    folder = root / EMBEDDINGS / table
    folder.mkdir(parents=True, exist_ok=True)
    rows_per_shard = max(rows_per_shard, -(-len(rows) // MAX_SHARDS_PER_TABLE))
    shards = []
    for index, lo in enumerate(range(0, len(rows), rows_per_shard)):
        hi = min(lo + rows_per_shard, len(rows))
        path = folder / shard_name(index)
        np.save(path, np.ascontiguousarray(rows[lo:hi]))
        shards.append({**file_entry(root, path), "rows": [lo, hi]})
    return {"rows": len(rows), "dim": int(rows.shape[1]), "dtype": str(rows.dtype), "shards": shards}


def begin_bundle(root: Path, kind: str) -> Path:
    """The `.partial` directory a bundle is written into; FileExistsError when the bundle exists (immutable)."""
    root = Path(root)
    if root.exists():
        raise FileExistsError(f"{kind} {root} exists: bundles are immutable, export a new version instead")
    tmp = root.with_name(f".{root.name}.partial")
    tmp.mkdir(parents=True, exist_ok=False)
    return tmp


def seal_bundle(tmp: Path, root: Path, manifest: dict, signer: Ed25519PrivateKey | None) -> dict:
    """Write the manifest and, with `signer`, its signature, then move the bundle into place whole (a crash leaves
    only the .partial directory). Returns the manifest."""
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    if signer is not None:
        (tmp / SIGNATURE).write_bytes(sign((tmp / MANIFEST).read_bytes(), signer))
    tmp.rename(root)
    return manifest


def export_bundle(model: CRBAN, spec: dict, root: Path, *, version_id: str, signer: Ed25519PrivateKey | None = None,
                  mlflow_version: str | None = None, run_id: str | None = None, recall_version: str | None = None,
                  rows_per_shard: int = DEFAULT_ROWS_PER_SHARD, dtype: str = "float16",
                  rules: BusinessRules | None = None) -> dict:
    """Write the bundle of `model` into `root` (created; must not exist) and return its manifest; with `signer`,
    its signature beside it (`manifest.sig`). `recall_version`: the recall version that served the candidates of
    the logs the model learned from (None: another candidate source, such as the simulator's cloud ranker); the
    paging API pairs the two. `rules`: the business rules the device applies after scoring (default: none); a
    bundle with rules needs a runtime that applies them."""
    rules = rules or BusinessRules()
    if not isinstance(model, CRBAN):
        raise TypeError(f"only the CRBAN+HUBSM models can be exported (they have step encoders), not {model.name}")
    tmp = begin_bundle(root, "bundle")
    model = model.cpu().eval()
    signatures = {}
    for b in model.behaviours:
        step = step_model(model.encoders[b], model.items.dim, b)
        onnx.save(step, tmp / STEP_MODELS[b])
        signatures[STEP_MODELS[b]] = graph_signature(step)
    inputs, outputs, example, axes = rerank_signature(model)
    export_onnx(RerankHead(model), example, tmp / RERANKER, inputs, outputs, axes)
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
        "recall_version": recall_version,
        "min_runtime_version": RULES_RUNTIME_VERSION if rules.active else BASE_RUNTIME_VERSION,
        "rules": rules.model_dump(),
        "onnx_opset": OPSET,
        "feature_spec_sha256": spec["sha256"],
        "gru_layers": model.encoders[model.behaviours[0]].item_gru.num_layers,  # of the step graphs' states
        "hidden": model.context_gru.hidden_size,
        "item_rows": {"tables": table_order(model), "item_id_buckets": model.items.item_id_buckets,
                      "item_id_hash_multiplier": HASH_MULTIPLIER},
        "signatures": signatures,
        "files": {name: file_entry(tmp, tmp / name) for name in files},
        "embeddings": {name: write_shards(tmp, name, rows, rows_per_shard)
                       for name, rows in quantized_tables(model, dtype).items()},
    }
    return seal_bundle(tmp, Path(root), manifest, signer)
