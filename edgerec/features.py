"""The feature spec (the paper's Table 1) and the one function that applies it, on the device and in tests.

Index 0 means padding everywhere, so padded sequence positions and missing values share one embedding row.
- categorical (p1..p6): value v -> v + 2 when v < vocab_size - 2, else 1 (out of vocabulary);
- bucketized (e1..e5, e7, d1, d12, scores): 1 + the number of boundaries <= v;
- onehot (e6 delete reason): position in `values` + 1, unknown -> vocab_size - 1;
- binary (d2..d11 actions): false -> 1, true -> 2.
The Spark job (spark_jobs.bucketize) calls this same function on Arrow batches; the tests hold its output
equal to this function applied row by row.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgerec.contracts import ACTION_NAMES, DELETE_REASONS
from edgerec.contracts.digest import canonical_sha
from edgerec.errors import ContractError

SPEC_VERSION = 1
ITEM_CATEGORICAL = ("category", "brand", "gender", "price_level", "age_level", "bc_type")  # p1..p6
ITEM_SCORES = ("ctr_score", "cvr_score")  # p7
ITEM_FEATURES = (*ITEM_CATEGORICAL, *ITEM_SCORES)  # the catalog's features of an item
# What the re-ranker compares between a candidate and each behaviour event: the item itself (its id), then these
# item codes. The phone keeps them for every event beside its encodings.
MATCH_CODES = ("category", "brand")
MATCH_FEATURES = ("item_id", *MATCH_CODES)
MATCH_INDEX = tuple(ITEM_CATEGORICAL.index(name) for name in MATCH_CODES)  # in every group (each starts with p1..p6)
IE_BUCKETIZED = ("e1_duration_ms", "e2_count", "e3_max_scroll_speed", "e4_max_scroll_duration_ms",
                 "e5_scroll_count", "e7_age_s")
IPV_BUCKETIZED = ("d1_duration_ms", "d12_age_s")
NO_DELETE = "none"
DELETE_VALUES = (NO_DELETE, *DELETE_REASONS)
GROUPS = {
    "candidate": (*ITEM_CATEGORICAL, *ITEM_SCORES, "cloud_score"),
    "ie": (*ITEM_CATEGORICAL, *ITEM_SCORES, *IE_BUCKETIZED, "e6_delete_reason"),
    "ipv": (*ITEM_CATEGORICAL, *ITEM_SCORES, *IPV_BUCKETIZED, *ACTION_NAMES),
}
BUCKETIZED = (*ITEM_SCORES, "cloud_score", *IE_BUCKETIZED, *IPV_BUCKETIZED)
# Each sequence's time decay: the event's age at the trigger. Every other feature of an event is fixed once the
# event is over, so the phone encodes the event once; the age is applied at each re-rank instead.
AGE_FEATURE = {"ie": "e7_age_s", "ipv": "d12_age_s"}
AGE_INDEX = {group: GROUPS[group].index(name) for group, name in AGE_FEATURE.items()}  # in GROUPS[group]
# The encoded features dataset (spark_jobs.bucketize): request keys, then `<prefix>_item_id` and
# `<prefix>_<feature>` int lists per group, then labels, mask and the event times of the sequences.
ENCODED_KEYS = ("rerank_id", "user_id", "session_key", "request_id", "trigger", "trigger_ts", "origin", "ds")
PREFIXES = {"candidate": "cand", "ie": "ie", "ipv": "ipv"}
ENCODED_FEATURE_COLUMNS = tuple(f"{PREFIXES[g]}_{name}" for g, names in GROUPS.items() for name in names)


def match_codes(item_ids: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """The MATCH_FEATURES of items [N] with codes [N, F] (ITEM_CATEGORICAL first): [N, M] int64, the id first.
    (`training.models.base.match_codes` is the same on tensors.)"""
    ids = np.asarray(item_ids, dtype=np.int64).reshape(-1, 1)
    return np.concatenate([ids, np.asarray(codes, dtype=np.int64).reshape(len(ids), -1)[:, MATCH_INDEX]], axis=1)


def make_spec(boundaries: dict[str, list[float]], vocab: dict[str, int], lengths: dict[str, int],
              fit: dict) -> dict:
    """A complete spec from fitted boundaries (BUCKETIZED) and categorical value counts (ITEM_CATEGORICAL)."""
    features: dict[str, dict] = {}
    for name in ITEM_CATEGORICAL:
        features[name] = {"kind": "categorical", "vocab_size": int(vocab[name]) + 2}
    for name in BUCKETIZED:
        b = [float(x) for x in boundaries[name]]
        features[name] = {"kind": "bucketized", "boundaries": b, "vocab_size": len(b) + 2}
    features["e6_delete_reason"] = {"kind": "onehot", "values": list(DELETE_VALUES),
                                    "vocab_size": len(DELETE_VALUES) + 2}
    for name in ACTION_NAMES:
        features[name] = {"kind": "binary", "vocab_size": 3}
    spec = {"version": SPEC_VERSION, "features": features, "groups": {g: list(f) for g, f in GROUPS.items()},
            "sequence_lengths": dict(lengths), "fit": fit}
    spec["sha256"] = canonical_sha(spec)
    return spec


def load_spec(path: Path) -> dict:
    spec = json.loads(Path(path).read_text())
    if spec.get("sha256") != canonical_sha(spec):
        raise ContractError(f"feature spec {path}: sha256 does not match its content")
    return spec


def write_spec(spec: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n")
    return path


def encode(feature: dict, values) -> np.ndarray:
    """Apply one feature's spec to raw values (None/NaN -> 0, the padding index)."""
    kind = feature["kind"]
    if kind == "onehot":
        index = {v: i + 1 for i, v in enumerate(feature["values"])}
        other = feature["vocab_size"] - 1
        return np.array([0 if v is None else index.get(v, other) for v in values], dtype=np.int64)
    x = np.asarray(values, dtype=np.float64)
    missing = np.isnan(x)
    if kind == "categorical":
        n_values = feature["vocab_size"] - 2
        out = np.where((x >= 0) & (x < n_values), x + 2, 1)
    elif kind == "bucketized":
        out = 1 + np.searchsorted(np.asarray(feature["boundaries"], dtype=np.float64), x, side="right")
    elif kind == "binary":
        out = np.where(x != 0, 2, 1)
    else:
        raise ValueError(f"unknown feature kind {kind!r}")
    return np.where(missing, 0, out).astype(np.int64)


def encode_group(spec: dict, group: str, values: dict) -> np.ndarray:
    """Codes [N, F] of one group (GROUPS order) from raw values per feature name (sequences of length N)."""
    return np.stack([encode(spec["features"][name], values[name]) for name in GROUPS[group]], axis=1)
