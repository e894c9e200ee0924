"""The model bundle contract (docs/design.md): one immutable directory per version, and its verification.

    behavior_ie.onnx, behavior_ipv.onnx   one event step of each behaviour encoder (hidden states in and out)
    reranker.onnx                         candidates + stored behaviour encodings -> scores
    feature_spec.json                     the spec the codes were made with
    embeddings/{table}/shard-NNNNN.npy    the cloud-side item tables, fixed rows per shard
    manifest.json                         every file's sha256 and bytes, signatures, tables, versions, and the
                                          business rules the device applies (edgerec.contracts.rules)

`verify_bundle` is what both the servability gate and the edge runtime call before they trust a bundle: it
refuses a missing file, a wrong checksum or size, a feature spec whose sha differs from the manifest's, and an
embedding shard of the wrong shape or dtype, naming the file and the mismatch.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from edgerec.contracts.digest import canonical_sha
from edgerec.contracts.rules import RULES_RUNTIME_VERSION, manifest_rules
from edgerec.errors import EdgeRecError

# 2: behaviour steps with a state input and output per GRU layer; 3: the re-ranker reads each event's match codes;
# 4: the match codes start with the item id, and the re-ranker reads the candidates' item ids
BUNDLE_FORMAT = 4
# the edge runtime's own version; a bundle names the lowest that can load it (5: applies the manifest's rules)
RUNTIME_VERSION = RULES_RUNTIME_VERSION
BASE_RUNTIME_VERSION = 4  # what a bundle without business rules needs
MANIFEST = "manifest.json"
FEATURE_SPEC = "feature_spec.json"
STEP_MODELS = {"ie": "behavior_ie.onnx", "ipv": "behavior_ipv.onnx"}
RERANKER = "reranker.onnx"
EMBEDDINGS = "embeddings"


class BundleError(EdgeRecError):
    """A bundle that must not be served; the message names the file and the mismatch."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_entry(root: Path, path: Path) -> dict:
    return {"sha256": sha256_of(path), "bytes": path.stat().st_size, "path": path.relative_to(root).as_posix()}


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.npy"


def network_bytes(manifest: dict) -> int:
    """Bytes of the bundle without its embedding shards: what the phone downloads per version."""
    return sum(f["bytes"] for f in manifest["files"].values())


def check_file(root: Path, entry: dict) -> Path:
    """The file of a manifest entry, present with its bytes and sha256; BundleError otherwise."""
    path = root / entry["path"]
    if not path.is_file():
        raise BundleError(f"bundle {root}: {entry['path']} is missing")
    size = path.stat().st_size
    if size != entry["bytes"]:
        raise BundleError(f"bundle {root}: {entry['path']} has {size} bytes, the manifest says {entry['bytes']}")
    digest = sha256_of(path)
    if digest != entry["sha256"]:
        raise BundleError(f"bundle {root}: {entry['path']} has sha256 {digest[:12]}…, the manifest says "
                          f"{entry['sha256'][:12]}…")
    return path


def unloadable(manifest: dict, runtime_version: int = RUNTIME_VERSION) -> str | None:
    """Why a runtime of `runtime_version` cannot load a bundle with this manifest, or None when it can."""
    if manifest.get("format") != BUNDLE_FORMAT:
        return f"{MANIFEST} has format {manifest.get('format')!r}, this code reads {BUNDLE_FORMAT}"
    if manifest.get("min_runtime_version", 0) > runtime_version:
        return f"needs runtime version {manifest['min_runtime_version']}, this runtime is {runtime_version}"
    return None


def read_manifest(root: Path, trusted: dict | None, kind: str) -> dict:
    """A bundle's manifest, after its signature by one of the `trusted` keys is checked (when given);
    BundleError naming `kind` and the directory otherwise."""
    from edgerec.contracts.signing import SIGNATURE, SignatureError, check

    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"{kind} {root}: {MANIFEST} is missing")
    if trusted is not None:
        signature = root / SIGNATURE
        try:
            check(manifest_path.read_bytes(), signature.read_bytes() if signature.exists() else None, trusted,
                  f"{kind} {root}")
        except SignatureError as e:
            raise BundleError(str(e)) from None
    try:
        return json.loads(manifest_path.read_text())
    except json.JSONDecodeError as e:
        raise BundleError(f"{kind} {root}: {MANIFEST} is not JSON ({e})") from e


def verify_bundle(root: Path, *, runtime_version: int = RUNTIME_VERSION, trusted: dict | None = None) -> dict:
    """The manifest of a bundle whose every file is present and intact, and, with `trusted` public keys (by key
    id), whose manifest is signed by one of them (what the phone checks); BundleError otherwise."""
    root = Path(root)
    manifest = read_manifest(root, trusted, "bundle")
    problem = unloadable(manifest, runtime_version)
    if problem:
        raise BundleError(f"bundle {root}: {problem}")
    try:
        manifest_rules(manifest)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, x['loc'])) or 'rules'} = {x.get('input')!r}: {x['msg']}"
                             for x in e.errors(include_url=False))
        raise BundleError(f"bundle {root}: {MANIFEST} has rules this runtime cannot apply: {problems}") from None
    except ValueError as e:
        raise BundleError(f"bundle {root}: {MANIFEST} has {e}") from None
    for name in (*STEP_MODELS.values(), RERANKER, FEATURE_SPEC):
        if name not in manifest["files"]:
            raise BundleError(f"bundle {root}: {MANIFEST} lists no {name}")
    for entry in manifest["files"].values():
        check_file(root, entry)
    spec_sha = canonical_sha(json.loads((root / FEATURE_SPEC).read_text()))
    if spec_sha != manifest["feature_spec_sha256"]:
        raise BundleError(f"bundle {root}: {FEATURE_SPEC} has sha256 {spec_sha[:12]}…, the manifest says "
                          f"{manifest['feature_spec_sha256'][:12]}…")
    for table, t in manifest["embeddings"].items():
        expected_lo = 0
        for shard in t["shards"]:
            path = check_file(root, shard)
            lo, hi = shard["rows"]
            rows = np.load(path, mmap_mode="r")
            if lo != expected_lo or rows.shape != (hi - lo, t["dim"]) or rows.dtype != np.dtype(t["dtype"]):
                raise BundleError(f"bundle {root}: {shard['path']} holds {rows.dtype} rows of shape {rows.shape} "
                                  f"from row {lo}; table {table} wants {t['dtype']} [{hi - lo}, {t['dim']}] "
                                  f"from row {expected_lo}")
            expected_lo = hi
        if expected_lo != t["rows"]:
            raise BundleError(f"bundle {root}: the shards of table {table} hold {expected_lo} rows, the manifest "
                              f"says {t['rows']}")
    return manifest


def load_table(root: Path, manifest: dict, table: str) -> np.ndarray:
    """One embedding table as float32 [rows, dim], from its verified shards."""
    t = manifest["embeddings"][table]
    return np.concatenate([np.load(Path(root) / s["path"]) for s in t["shards"]]).astype(np.float32)


def item_row_ids(manifest: dict, table_rows: dict[str, int], codes: np.ndarray, item_ids: np.ndarray
                 ) -> dict[str, np.ndarray]:
    """Which row of each item table serves each item: its p1..p6 codes (a code beyond a table reads the table's last
    row, as in training) and its hashed item_id. codes [N, >=6] (ITEM_CATEGORICAL first), item_ids [N]."""
    layout = manifest["item_rows"]
    out = {}
    for i, name in enumerate(layout["tables"]):
        if name == "item_id":
            ids = np.asarray(item_ids, dtype=np.int64)
            out[name] = np.where(ids > 0, (ids * layout["item_id_hash_multiplier"]) % layout["item_id_buckets"] + 1, 0)
        else:
            out[name] = np.minimum(np.asarray(codes)[:, i], table_rows[name] - 1)
    return out


def item_rows(manifest: dict, tables: dict[str, np.ndarray], codes: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
    """The rows the cloud serves with each item: the item tables' rows concatenated in the manifest's order.
    codes [N, >=6] (ITEM_CATEGORICAL first), item_ids [N] -> float32 [N, item_dim]."""
    ids = item_row_ids(manifest, {name: len(t) for name, t in tables.items()}, codes, item_ids)
    return np.concatenate([tables[name][rows] for name, rows in ids.items()], axis=1).astype(np.float32)
