"""`edgerec deploy VERSION`: the version's embeddings into the key-value store, verified; then its bundle onto
the CDN, verified (the release order of docs/design.md; the channel pointer is flipped later, by a release action).

Idempotent and resumable: a journal per version and store records the shards already written, so a re-run after
a crash (or the store going away) continues where it stopped; re-writing a row writes the same bytes under the
same key. The CDN never gets other bytes under an existing immutable key, and the manifest goes up last, so a
manifest on the CDN means every file it lists was uploaded.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deploy.cdn import model_key
from deploy.targets import Targets
from deploy.verify import (
    VerifyReport,
    bundle_problems,
    check_cdn,
    check_kv,
    index_record,
    manifest_files,
    rows_sha256,
)
from edgerec import registry
from edgerec.contracts.bundle import EMBEDDINGS, MANIFEST, sha256_of, verify_bundle
from edgerec.contracts.signing import SIGNATURE
from edgerec.errors import EdgeRecError, MissingInput

log = logging.getLogger(__name__)
DEPLOYED = registry.DEPLOYED


class NotReleasable(EdgeRecError):
    """A version without both blessings (evaluation and servability gates) may not be deployed or promoted."""


class DeployError(EdgeRecError):
    """A deploy step failed its verification; the message says what and that a re-run continues."""


@dataclass
class DeployResult:
    version: str
    rows_written: int
    rows_skipped: int
    files_uploaded: int
    files_skipped: int
    kv: VerifyReport
    cdn: VerifyReport


def releasable(client, ref: str) -> registry.ModelVersion:
    """The registered version `ref` (number or version id), if the evaluation and servability gates blessed it and
    the replay gate did not refuse it."""
    found = registry.find_version(client, ref)
    missing = [f"{tag}={found.tags.get(tag)!r}" for tag, verdict in ((registry.BLESSED, found.blessing),
                                                                     (registry.SERVABLE, found.servable))
               if verdict is not registry.Blessing.PASSED]
    if missing:
        raise NotReleasable(f"version {found.number} ({found.id}) lacks a blessing ({', '.join(missing)}): run "
                            f"`edgerec evaluate` and `edgerec servability` on it; nothing unblessed ships")
    if found.replayed is registry.Blessing.REFUSED:  # pending (not judged: external logs) does not block
        raise NotReleasable(f"version {found.number} ({found.id}) was refused by the replay gate "
                            f"({registry.REPLAY}={found.tags.get(registry.REPLAY)!r}): it loses clicks against the "
                            f"cloud order")
    return found


class Journal:
    """Shards already written to one key-value store, per version (a file in the state directory)."""

    def __init__(self, folder: Path, version: str, kv_url: str):
        self.path = folder / f"{version}.json"
        self.kv_url = kv_url
        data = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.data: dict[str, list[str]] = data
        self.done = set(data.get(kv_url, []))

    def add(self, shard: str) -> None:
        self.done.add(shard)
        self._save()

    def forget(self, table: str) -> None:
        self.done = {s for s in self.done if not s.startswith(f"{EMBEDDINGS}/{table}/")}
        self._save()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.data[self.kv_url] = sorted(self.done)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        tmp.replace(self.path)


def push_embeddings(targets: Targets, root: Path, manifest: dict, progress: Callable[[int], None] | None = None
                    ) -> tuple[int, int, dict[str, str]]:
    """Write every shard not yet journaled; returns (rows written, rows skipped, row checksum per table)."""
    version = manifest["version"]
    journal = Journal(targets.journals, version, targets.kv.url)
    written = skipped = 0
    table_sha = {}
    for name, t in manifest["embeddings"].items():
        arrays = []
        for shard in t["shards"]:
            rows = np.load(root / shard["path"])
            arrays.append(rows)
            lo, hi = shard["rows"]
            if shard["path"] in journal.done:
                skipped += hi - lo
            else:
                targets.kv.put_rows(version, name, lo, rows)
                journal.add(shard["path"])
                written += hi - lo
            if progress:
                progress(hi - lo)
        table_sha[name] = rows_sha256(arrays)
    return written, skipped, table_sha


def upload_bundle(targets: Targets, root: Path, manifest: dict) -> tuple[int, int]:
    """Every file, its signature, the manifest last. Returns (uploaded, already there)."""
    uploaded = skipped = 0
    entries = [*manifest_files(manifest), {"path": SIGNATURE, "sha256": None}, {"path": MANIFEST, "sha256": None}]
    for entry in entries:
        path = root / entry["path"]
        sha = entry["sha256"] or sha256_of(path)
        if targets.cdn.put_immutable(model_key(manifest["version"], entry["path"]), path, sha):
            uploaded += 1
        else:
            skipped += 1
    return uploaded, skipped


def deploy_version(settings, targets: Targets, ref: str, progress: Callable[[str, int, int], None] | None = None
                   ) -> DeployResult:
    """Deploy a blessed and servable version's bundle (from settings.bundles_dir); DeployError if a step's
    verification fails (re-run to continue)."""
    client = registry.connect(settings)
    found = releasable(client, ref)
    root = settings.bundles_dir / found.id
    if not root.is_dir():
        raise MissingInput(f"no bundle for {found.id} in {settings.bundles_dir}: run `edgerec export "
                           f"{found.id}` first")
    manifest = verify_bundle(root)
    problems = bundle_problems(root, found.tags, targets.trusted)
    if problems:
        raise NotReleasable(f"{found.id} may not ship: {'; '.join(problems)}")
    total = sum(t["rows"] for t in manifest["embeddings"].values())
    done = 0

    def advance(rows: int) -> None:
        nonlocal done
        done += rows
        if progress:
            progress("embeddings", done, total)

    written, skipped, table_sha = push_embeddings(targets, root, manifest, advance)
    previous = targets.kv.get_index(found.id)
    deployed_at = previous["deployed_at"] if previous else dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    targets.kv.put_index(found.id, index_record(manifest, table_sha, deployed_at))
    kv_report = VerifyReport(found.id)
    check_kv(targets.kv, manifest, table_sha, kv_report)
    if not kv_report.passed:
        journal = Journal(targets.journals, found.id, targets.kv.url)
        for finding in kv_report.findings:
            if not finding.passed and finding.check.startswith("kv.table."):
                journal.forget(finding.check.removeprefix("kv.table."))
        raise DeployError(f"{targets.kv.url} does not hold {found.id} after the push: "
                          f"{'; '.join(kv_report.failures)}; re-run `edgerec deploy {found.id}` to write them again")
    if progress:
        progress("bundle", 0, 1)
    uploaded, already = upload_bundle(targets, root, manifest)
    cdn_report = VerifyReport(found.id)
    check_cdn(targets.cdn, found.id, cdn_report)
    if not cdn_report.passed:
        raise DeployError(f"{targets.cdn.url} does not hold {found.id} intact after the upload: "
                          f"{'; '.join(cdn_report.failures)}")
    client.set_model_version_tag(registry.REGISTERED_MODEL, found.number, DEPLOYED, json.dumps(
        {"kv": targets.kv.url, "cdn": targets.cdn.url, "at": deployed_at}))
    targets.audit("deploy", version=found.id, kv=targets.kv.url, cdn=targets.cdn.url, rows_written=written,
                  files_uploaded=uploaded)
    log.info("deployed %s: %s rows written (%s already there), %s files uploaded (%s already there)", found.id,
             written, skipped, uploaded, already)
    return DeployResult(found.id, written, skipped, uploaded, already, kv_report, cdn_report)
