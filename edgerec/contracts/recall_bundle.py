"""The recall bundle contract (docs/design.md): one immutable directory per recall version, and its verification.

    user_tower.onnx       history [B, L, dim] (the item tower's output of each interaction, oldest first, the latest at
                          L-1) and valid [B, L] (which positions hold one) -> the user vector [B, dim], normalized
    item_ids.npy          int64 [N]: the item of each row
    item_embeddings.npy   float32 [N, dim]: the item tower's output of each row, what the user tower reads
    popular_items.npy     int64 [<= N]: items by clicks in the train window, most first (the users without a history)
    index.faiss           an inverted-file index (inner product) of the normalized item embeddings, row i = item_ids[i]
    manifest.json         format, version, dim, items, history length, index parameters, every file's sha256 and bytes
    manifest.sig          the manifest's Ed25519 signature

`verify_recall_bundle` is what the recall's deploy and the paging API call before they trust one: it refuses a
missing or altered file and an index or table whose row count or dimension differs from the manifest's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgerec.contracts.bundle import MANIFEST, BundleError, check_file, read_manifest

RECALL_FORMAT = 1
USER_TOWER, ITEM_IDS, ITEM_EMBEDDINGS, INDEX = "user_tower.onnx", "item_ids.npy", "item_embeddings.npy", "index.faiss"
POPULAR = "popular_items.npy"
FILES = (USER_TOWER, ITEM_IDS, ITEM_EMBEDDINGS, POPULAR, INDEX)


def verify_recall_bundle(root: Path, *, trusted: dict | None = None) -> dict:
    """The manifest of a recall bundle whose files are all present and intact and agree with it (and, with
    `trusted` keys, whose manifest one of them signed); BundleError otherwise."""
    import faiss

    root = Path(root)
    manifest = read_manifest(root, trusted, "recall bundle")
    if manifest.get("format") != RECALL_FORMAT or manifest.get("kind") != "recall":
        raise BundleError(f"recall bundle {root}: {MANIFEST} is not a recall manifest of format {RECALL_FORMAT}")
    missing = [name for name in FILES if name not in manifest["files"]]
    if missing:
        raise BundleError(f"recall bundle {root}: {MANIFEST} lists no {', '.join(missing)}")
    paths = {name: check_file(root, manifest["files"][name]) for name in FILES}
    items, dim = manifest["items"], manifest["dim"]
    ids = np.load(paths[ITEM_IDS], mmap_mode="r")
    vectors = np.load(paths[ITEM_EMBEDDINGS], mmap_mode="r")
    if ids.shape != (items,) or ids.dtype != np.int64:
        raise BundleError(f"recall bundle {root}: {ITEM_IDS} holds {ids.dtype} {ids.shape}, the manifest says "
                          f"int64 ({items},)")
    if vectors.shape != (items, dim) or vectors.dtype != np.float32:
        raise BundleError(f"recall bundle {root}: {ITEM_EMBEDDINGS} holds {vectors.dtype} {vectors.shape}, the "
                          f"manifest says float32 ({items}, {dim})")
    popular = np.load(paths[POPULAR], mmap_mode="r")
    if popular.ndim != 1 or popular.dtype != np.int64 or len(popular) > items:
        raise BundleError(f"recall bundle {root}: {POPULAR} holds {popular.dtype} {popular.shape}, not int64 item ids "
                          f"(at most {items})")
    index = faiss.read_index(str(paths[INDEX]))
    if (index.ntotal, index.d) != (items, dim):
        raise BundleError(f"recall bundle {root}: {INDEX} holds {index.ntotal} vectors of dimension {index.d}, the "
                          f"manifest says {items} of {dim}")
    return manifest
