"""A registered recall version as its bundle (edgerec.contracts.recall_bundle): the user tower as ONNX, the item
tower's output for every item of its catalog, and an inverted-file index of them.

faiss (faiss-cpu from PyPI) rather than hnswlib: it is maintained by its authors with wheels for every platform we
build on, has both graph (HNSW) and inverted-file indexes saved and loaded as one file with their parameters, and
gives the exact search (`IndexFlatIP`) an index is measured against. The index is an inverted file of exact vectors
(IVF-Flat): on 100k clustered items and 100 neighbours per query (`bench/recall.py --ann`), HNSW (M=32) needed
efSearch 512 and efConstruction 200 to pass recall@100 0.99, a 44 s build; IVF-Flat with about 4 sqrt(N) lists, an
eighth of them probed, gives 0.998 at a p99 of 0.4 ms, built in 3 s.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import torch
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from torch import nn
from torch.nn import functional as F

from edgerec.contracts.bundle import file_entry
from edgerec.contracts.recall_bundle import (
    FILES,
    INDEX,
    ITEM_EMBEDDINGS,
    ITEM_IDS,
    POPULAR,
    RECALL_FORMAT,
    USER_TOWER,
)
from edgerec.registry import RECALL_MODEL
from training.export import OPSET, begin_bundle, export_onnx, seal_bundle
from training.recall.data import Catalog
from training.recall.models.base import TwoTower, attendable

PROBED_SHARE = 8  # probe one list in this many (and at least 16, all of a small catalog's)
MIN_SCANNED = 12_500  # ... and enough lists to scan this many vectors: an eighth of 100k, where 0.99 was measured
MIN_POINTS_PER_LIST = 39  # faiss's k-means wants this many training points per centroid


class UserTower(nn.Module):
    """What the paging API and the near-real-time consumer run: the item tower's rows of a history in, the user."""

    def __init__(self, model: TwoTower):
        super().__init__()
        self.model = model

    def forward(self, history: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.model.user(history * valid.unsqueeze(-1), attendable(valid)), dim=-1)


def index_lists(items: int) -> tuple[int, int]:
    """(lists, probed lists) of the inverted file for `items` vectors: an eighth of the lists probed, and at least
    enough to scan MIN_SCANNED vectors (a smaller catalog has fewer points per list to find its neighbours in)."""
    lists = max(1, min(round(4 * items ** 0.5), items // MIN_POINTS_PER_LIST))
    enough = -(-MIN_SCANNED * lists // max(items, 1))
    return lists, min(lists, max(-(-lists // PROBED_SHARE), enough, 16))


def build_index(vectors: np.ndarray):
    """An IVF-Flat index (inner product) of the rows of `vectors`, normalized first; k-means seeded by faiss's
    default, so the same vectors give the same index."""
    import faiss

    unit = np.ascontiguousarray(vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12),
                                dtype=np.float32)
    lists, probed = index_lists(len(unit))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(unit.shape[1]), unit.shape[1], lists, faiss.METRIC_INNER_PRODUCT)
    index.cp.min_points_per_centroid = 1  # a small catalog has fewer points than faiss's default asks
    index.train(unit)
    index.add(unit)
    index.nprobe = probed
    return index


def export_recall(model: TwoTower, catalog: Catalog, root: Path, *, version_id: str, clicks: np.ndarray | None = None,
                  signer: Ed25519PrivateKey | None = None, mlflow_version: str | None = None,
                  run_id: str | None = None) -> dict:
    """Write the recall bundle of `model` into `root` (created; must not exist) and return its manifest. `clicks`
    [N + 1] (by item index) orders the popular items; items never clicked are left out of them."""
    import faiss

    if model.multi_interest:
        raise TypeError(f"{model.name} gives several vectors per user: the recall bundle ships one-vector towers")
    tmp = begin_bundle(root, "recall bundle")
    model = model.cpu().eval()
    with torch.no_grad():
        embeddings = model.items(torch.arange(1, len(catalog) + 1)).numpy().astype(np.float32)
    np.save(tmp / ITEM_IDS, catalog.item_ids.astype(np.int64))
    np.save(tmp / ITEM_EMBEDDINGS, embeddings)
    clicks = np.zeros(len(catalog) + 1) if clicks is None else np.asarray(clicks, dtype=float)
    ranked = np.argsort(-clicks[1:], kind="stable")
    np.save(tmp / POPULAR, catalog.item_ids[ranked[clicks[1:][ranked] > 0]].astype(np.int64))
    faiss.write_index(build_index(embeddings), str(tmp / INDEX))
    example = (torch.zeros(1, model.width, model.cfg.dim), torch.ones(1, model.width, dtype=torch.bool))
    export_onnx(UserTower(model), example, tmp / USER_TOWER, ["history", "valid"], ["user"],
                {"history": {0: "users"}, "valid": {0: "users"}, "user": {0: "users"}})
    manifest = {
        "format": RECALL_FORMAT, "kind": "recall", "version": version_id, "model": model.name,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "mlflow": {"registered_model": RECALL_MODEL, "version": mlflow_version, "run_id": run_id},
        "onnx_opset": OPSET, "dim": model.cfg.dim, "items": len(catalog), "history": model.width,
        "index": {"type": "IVFFlat", "metric": "inner_product", "normalized": True,
                  **dict(zip(("lists", "probed"), index_lists(len(catalog)), strict=True))},
        "files": {name: file_entry(tmp, tmp / name) for name in FILES},
    }
    return seal_bundle(tmp, Path(root), manifest, signer)
