"""Version synchronization (`edgerec release verify VERSION`): a device on a version must find that version's
model files on the CDN and its embedding rows in the key-value store, and they must belong together.

Checks, each reported with what it found:
- cdn: every file the manifest lists is on the CDN with its sha256 (downloaded and hashed, not trusted metadata);
- kv: the version's index record exists, and every table has all its rows with the checksum of the CDN's shards;
- shipped: the CDN's manifest carries a valid signature by a trusted key, and is byte for byte the manifest the
  servability gate tested (its sha256 recorded on the MLflow version);
- signature: the tables' dims add up to the re-ranker's `candidate_rows` input, and dtypes agree;
- feature spec: one sha256 in the manifest, the CDN's feature_spec.json and the MLflow version's tags;
- channels: for every channel, the KV still holds the embeddings of its current and previous versions.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass, field

import numpy as np
import onnx

from deploy.cdn import ObjectStore, model_key
from deploy.channels import CHANNEL_NAMES, ForgedPointer, read_channel
from deploy.kv import INDEX_FORMAT, KVStore, row_dtype
from deploy.targets import Targets
from edgerec import registry
from edgerec.contracts import signing
from edgerec.contracts.bundle import FEATURE_SPEC, MANIFEST, RERANKER, unloadable
from edgerec.contracts.digest import canonical_sha


@dataclass(frozen=True)
class Finding:
    check: str
    passed: bool
    detail: str


@dataclass
class VerifyReport:
    version: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.findings) and all(f.passed for f in self.findings)

    @property
    def failures(self) -> list[str]:
        return [f"{f.check}: {f.detail}" for f in self.findings if not f.passed]

    def add(self, check: str, passed: bool, detail: str) -> bool:
        self.findings.append(Finding(check, bool(passed), detail))
        return bool(passed)

    def to_dict(self) -> dict:
        return {"version": self.version, "passed": self.passed, "findings": [asdict(f) for f in self.findings]}

    def to_markdown(self) -> str:
        lines = [f"verify {self.version}: {'PASSED' if self.passed else 'FAILED'}", "", "| check | result | detail |",
                 "|---|---|---|"]
        return "\n".join(lines + [f"| {f.check} | {'ok' if f.passed else 'FAIL'} | {f.detail} |"
                                  for f in self.findings])


def rows_sha256(shards: list[np.ndarray]) -> str:
    """The checksum of a table's rows in id order, as the KV holds them (little-endian bytes)."""
    digest = hashlib.sha256()
    for rows in shards:
        digest.update(np.ascontiguousarray(rows, dtype=rows.dtype.newbyteorder("<")).tobytes())
    return digest.hexdigest()


def index_record(manifest: dict, table_sha: dict[str, str], deployed_at: str) -> dict:
    """The KV's per-version record: what a complete push holds."""
    return {"format": INDEX_FORMAT, "version": manifest["version"],
            "feature_spec_sha256": manifest["feature_spec_sha256"], "deployed_at": deployed_at,
            "tables": {name: {"rows": t["rows"], "dim": t["dim"], "dtype": t["dtype"], "sha256": table_sha[name]}
                       for name, t in manifest["embeddings"].items()}}


def manifest_files(manifest: dict) -> list[dict]:
    """Every file entry of a manifest: networks and spec, then the embedding shards."""
    return [*manifest["files"].values(), *(s for t in manifest["embeddings"].values() for s in t["shards"])]


def check_cdn(cdn: ObjectStore, version: str, report: VerifyReport) -> tuple[dict | None, dict[str, str], dict]:
    """Download and hash every file of the version. Returns (manifest, row checksum per table, small files)."""
    raw = cdn.get_bytes(model_key(version, MANIFEST))
    if not report.add("cdn.manifest", raw is not None, f"{cdn.url}/{model_key(version, MANIFEST)}"
                      + ("" if raw is not None else " is missing")):
        return None, {}, {}
    manifest = json.loads(raw)
    bad, small, shards = [], {}, {}
    for entry in manifest_files(manifest):
        data = cdn.get_bytes(model_key(version, entry["path"]))
        if data is None:
            bad.append(f"{entry['path']} is missing")
        elif hashlib.sha256(data).hexdigest() != entry["sha256"]:
            bad.append(f"{entry['path']} has sha256 {hashlib.sha256(data).hexdigest()[:12]}…, the manifest says "
                       f"{entry['sha256'][:12]}…")
        elif entry["path"].endswith(".npy"):
            shards[entry["path"]] = np.load(io.BytesIO(data))
        else:
            small[entry["path"]] = data
    table_sha = {name: rows_sha256([shards[s["path"]] for s in t["shards"]])
                 if all(s["path"] in shards for s in t["shards"]) else "unreadable"
                 for name, t in manifest["embeddings"].items()}
    count = len(manifest_files(manifest))
    report.add("cdn.files", not bad, "; ".join(bad) if bad else f"{count} files match the manifest's sha256")
    return manifest, table_sha, small


def check_kv(kv: KVStore, manifest: dict, table_sha: dict[str, str], report: VerifyReport) -> None:
    version = manifest["version"]
    record = kv.get_index(version)
    if not report.add("kv.index", record is not None, f"{kv.url}: index record of {version}"
                      + (" present" if record else " is missing (the push did not complete)")):
        return
    for name, t in manifest["embeddings"].items():
        scan = kv.scan(version, name, t["rows"], row_dtype(t["dim"], t["dtype"]).itemsize)
        problems = []
        if scan.present != t["rows"]:
            problems.append(f"{t['rows'] - scan.present:,} of {t['rows']:,} rows missing")
        elif scan.sha256 != table_sha.get(name):
            problems.append(f"row checksum {scan.sha256[:12]}… differs from the bundle's "
                            f"{str(table_sha.get(name))[:12]}…")
        if (record["tables"].get(name) or {}).get("sha256") != table_sha.get(name):
            problems.append("the index record's checksum differs from the bundle's")
        report.add(f"kv.table.{name}", not problems, "; ".join(problems) if problems else
                   f"{t['rows']:,} rows x {t['dim']} {t['dtype']}, checksum {scan.sha256[:12]}…")


def check_signature(manifest: dict, reranker: bytes | None, report: VerifyReport) -> None:
    tables = manifest["embeddings"]
    width = sum(tables[name]["dim"] for name in manifest["item_rows"]["tables"])
    dims = None
    if reranker is not None:
        graph = onnx.load_model_from_string(reranker).graph
        rows = next((i for i in graph.input if i.name == "candidate_rows"), None)
        dims = [d.dim_value or d.dim_param for d in rows.type.tensor_type.shape.dim] if rows else None
    dtypes = {t["dtype"] for t in tables.values()}
    problems = [problem] if (problem := unloadable(manifest)) else []  # e.g. a rollback across a format change
    if dims is None or dims[-1] != width:
        problems.append(f"the tables' dims add up to {width}, {RERANKER} takes candidate_rows {dims}")
    if len(dtypes) != 1:
        problems.append(f"the tables have mixed dtypes {sorted(dtypes)}")
    report.add("signature", not problems, "; ".join(problems) if problems else
               f"{len(tables)} tables of {'/'.join(sorted(dtypes))}, {width} wide = {RERANKER} candidate_rows {dims}")


def check_feature_spec(manifest: dict, spec: bytes | None, tags: dict[str, str], report: VerifyReport) -> None:
    shas = {"manifest": manifest["feature_spec_sha256"],
            FEATURE_SPEC: canonical_sha(json.loads(spec)) if spec else "missing",
            "mlflow tag feature_spec_sha": tags.get("feature_spec_sha", "missing")}
    same = len(set(shas.values())) == 1
    report.add("feature_spec", same, f"sha256 {shas['manifest'][:12]}… everywhere" if same else
               ", ".join(f"{where} {sha[:12]}" for where, sha in shas.items()))


def check_channels(kv: KVStore, cdn: ObjectStore, key: bytes, report: VerifyReport) -> None:
    for name in CHANNEL_NAMES:
        try:
            pointer = read_channel(cdn, name, key)
        except ForgedPointer as e:
            report.add(f"channel.{name}", False, str(e))
            continue
        if pointer is None:
            report.add(f"channel.{name}", True, "not set")
            continue
        held = [v for v in (pointer.version, pointer.previous) if v]
        gone = [v for v in held if not holds_rows(kv, v)]
        report.add(f"channel.{name}", not gone, f"KV lacks the embeddings of {', '.join(gone)}" if gone else
                   f"current {pointer.version}, previous {pointer.previous or '-'}: embeddings present")


def holds_rows(kv: KVStore, version: str) -> bool:
    """The version's index record and the first and last row of each of its tables are in the KV (a cheap
    check; `check_kv` is the full one)."""
    record = kv.get_index(version)
    if record is None:
        return False
    for name, t in record["tables"].items():
        ends = np.array(sorted({0, max(t["rows"] - 1, 0)}))
        if t["rows"] and None in kv.get_rows(version, name, ends, row_dtype(t["dim"], t["dtype"]).itemsize):
            return False
    return True


def shipped_problems(manifest: bytes, signature: bytes | None, tags: dict[str, str], trusted: dict,
                     where: str) -> list[str]:
    """Why these manifest bytes may not ship: not signed by a trusted key, or not the manifest the servability gate
    tested. Empty when they may."""
    problems = []
    try:
        signing.check(manifest, signature, trusted, where)
    except signing.SignatureError as e:
        problems.append(str(e))
    tested = tags.get(registry.BUNDLE_SHA)
    sha = hashlib.sha256(manifest).hexdigest()
    if sha != tested:
        problems.append(f"{where}: manifest sha256 {sha[:12]}…, but the servability gate tested "
                        + (f"{tested[:12]}…: these are not the bytes the gates tested" if tested else
                           "no manifest of this version (no gate record)"))
    return problems


def bundle_problems(root, tags: dict[str, str], trusted: dict) -> list[str]:
    """`shipped_problems` of a local bundle directory's manifest and signature."""
    signature = root / signing.SIGNATURE
    return shipped_problems((root / MANIFEST).read_bytes(), signature.read_bytes() if signature.exists() else None,
                            tags, trusted, str(root / MANIFEST))


def verify_version(targets: Targets, version: str, tags: dict[str, str]) -> VerifyReport:
    report = VerifyReport(version)
    manifest, table_sha, small = check_cdn(targets.cdn, version, report)
    if manifest is None:
        return report
    where = f"{targets.cdn.url}/{model_key(version, MANIFEST)}"
    problems = shipped_problems(targets.cdn.get_bytes(model_key(version, MANIFEST)),
                                targets.cdn.get_bytes(model_key(version, signing.SIGNATURE)), tags, targets.trusted,
                                where)
    report.add("shipped", not problems, "; ".join(problems) if problems else
               "the manifest is signed by a trusted key and is the one the servability gate tested")
    check_kv(targets.kv, manifest, table_sha, report)
    check_signature(manifest, small.get(RERANKER), report)
    check_feature_spec(manifest, small.get(FEATURE_SPEC), tags, report)
    check_channels(targets.kv, targets.cdn, targets.key, report)
    return report
