"""The recall's deploy (`edgerec recall deploy VERSION`) and its verification, in the re-ranker's release order:
the batch user vectors into the key-value store, then the bundle onto the CDN (manifest last), both verified;
the `recall` channel pointer is flipped later, by a release action (`deploy.release`), to a version that verifies.

    recall/{version}/...                  the recall bundle on the CDN, immutable (edgerec.contracts.recall_bundle)
    KV keyed rows (version, "batch")      each user's vector from their latest history (fct_recall_users)
    KV keyed rows (version, "history")    that history (JSON item ids): where the near-real-time consumer starts
    KV keyed rows (version, "nrt"), ("nrt_history"), ("session")   the near-real-time consumer's (deploy.nrt)
    KV keyed row  (version, "recall")     "index": what the push wrote (users, first and last, when): written last

A re-run writes the same vectors and skips the files already uploaded, so an interrupted deploy resumes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from deploy.cdn import RECALL, recall_key
from deploy.push import DEPLOYED, DeployError, NotReleasable
from deploy.targets import Targets
from deploy.verify import VerifyReport, bundle_problems, shipped_problems
from edgerec import registry
from edgerec.contracts.bundle import MANIFEST, BundleError, sha256_of
from edgerec.contracts.recall_bundle import FILES
from edgerec.contracts.signing import SIGNATURE
from edgerec.errors import MissingInput
from edgerec.recall import RecallRuntime, to_bytes, user_histories

log = logging.getLogger(__name__)
BATCH, HISTORY, RECORD = "batch", "history", "recall"  # keyed tables of a recall version (and deploy.nrt's)
NRT, NRT_HISTORY, SESSION = "nrt", "nrt_history", "session"
# a session's deletes and exposures are the user's, not a version's: kept under this scope across promotes
SESSION_SCOPE = "sessions"
INDEX_KEY = "index"
USERS_PER_PUSH = 4096


def releasable_recall(client, ref: str) -> registry.ModelVersion:
    """The recall version `ref`, if its evaluation gate blessed it and its bundle's manifest was recorded at export
    (where the served path was checked against the model)."""
    found = registry.find_version(client, ref, registry.RECALL_MODEL)
    if found.blessing is not registry.Blessing.PASSED:
        raise NotReleasable(f"recall {found.label} is not blessed ({registry.BLESSED}="
                            f"{found.tags.get(registry.BLESSED)!r}): run `edgerec recall evaluate --ds {found.ds}`; "
                            "nothing unblessed ships")
    if registry.BUNDLE_SHA not in found.tags:
        raise NotReleasable(f"recall {found.label} has no exported bundle on record: run `edgerec recall export "
                            f"--ds {found.ds}` first")
    return found


def push_users(targets: Targets, runtime: RecallRuntime, database: Path,
               progress: Callable[[int], None] | None = None) -> dict:
    """Every user's batch vector into the KV, then the version's record; returns the record."""
    users, first, last = 0, None, None
    for ids, histories in user_histories(database, USERS_PER_PUSH):
        vectors, embedded = runtime.embed(histories)
        keep = [i for i, ok in enumerate(embedded) if ok]  # a history of items the version does not know: none
        targets.kv.put_keyed(runtime.version, BATCH, [ids[i] for i in keep], [to_bytes(vectors[i]) for i in keep])
        targets.kv.put_keyed(runtime.version, HISTORY, ids, [json.dumps({"items": h}).encode() for h in histories])
        if keep:
            first, last = first or ids[keep[0]], ids[keep[-1]]
        users += len(keep)
        if progress:
            progress(users)
    previous = recall_record(targets, runtime.version)
    record = {"version": runtime.version, "users": users, "first_user": first, "last_user": last,
              "dim": runtime.dim, "deployed_at": previous["deployed_at"] if previous else
              dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    targets.kv.put_keyed(runtime.version, RECORD, [INDEX_KEY], [json.dumps(record).encode()])
    return record


def recall_record(targets: Targets, version: str) -> dict | None:
    raw = targets.kv.get_keyed(version, RECORD, [INDEX_KEY])[0]
    return json.loads(raw) if raw else None


def upload_recall(targets: Targets, root: Path, manifest: dict) -> tuple[int, int]:
    """Every file, the signature, the manifest last. Returns (uploaded, already there)."""
    uploaded = skipped = 0
    for name in (*FILES, SIGNATURE, MANIFEST):
        path = root / name
        sha = manifest["files"][name]["sha256"] if name in manifest["files"] else sha256_of(path)
        if targets.cdn.put_immutable(recall_key(manifest["version"], name), path, sha):
            uploaded += 1
        else:
            skipped += 1
    return uploaded, skipped


def verify_recall(targets: Targets, version: str, tags: dict[str, str]) -> VerifyReport:
    """Can the paging API serve `version`: its files on the CDN with the manifest's sha256 (downloaded and hashed),
    the manifest signed by a trusted key and the one the export recorded, and the batch vectors in the KV."""
    report = VerifyReport(version)
    where = f"{targets.cdn.url}/{recall_key(version, MANIFEST)}"
    raw = targets.cdn.get_bytes(recall_key(version, MANIFEST))
    if not report.add("cdn.manifest", raw is not None, where + ("" if raw is not None else " is missing")):
        return report
    try:
        files = json.loads(raw)["files"]
        if not isinstance(files, dict) or not all(isinstance(e, dict) for e in files.values()):
            raise TypeError
        bad = [f"{name} is not in the manifest" for name in FILES if name not in files]
    except (ValueError, KeyError, TypeError):
        files, bad = {}, [f"{MANIFEST} is not a recall manifest (JSON with its files)"]
    for name in (n for n in FILES if n in files):  # the bundle's own names only: the manifest is not trusted yet
        data = targets.cdn.get_bytes(recall_key(version, name))
        if data is None:
            bad.append(f"{name} is missing")
        elif hashlib.sha256(data).hexdigest() != files[name].get("sha256"):
            bad.append(f"{name} has sha256 {hashlib.sha256(data).hexdigest()[:12]}…, the manifest says "
                       f"{str(files[name].get('sha256'))[:12]}…")
    report.add("cdn.files", not bad, "; ".join(bad) if bad else f"{len(FILES)} files match the manifest's sha256")
    problems = shipped_problems(raw, targets.cdn.get_bytes(recall_key(version, SIGNATURE)), tags, targets.trusted,
                                where)
    report.add("shipped", not problems, "; ".join(problems) if problems else
               "the manifest is signed by a trusted key and is the one the export checked")
    record = recall_record(targets, version)
    ends = [u for u in ((record or {}).get("first_user"), (record or {}).get("last_user")) if u]
    present = record is not None and None not in targets.kv.get_keyed(version, BATCH, ends)
    report.add("kv.users", present, f"{targets.kv.url}: " + (
        f"{record['users']:,} batch user vectors of {version}" if present else
        f"the batch user vectors of {version} are missing (the push did not complete)"))
    return report


def deploy_recall(settings, targets: Targets, ref: str, progress: Callable[[str, int, int], None] | None = None
                  ) -> VerifyReport:
    """Deploy a blessed and exported recall version (from settings.recall_bundles_dir); DeployError if its
    verification fails (re-run to continue)."""
    client = registry.connect(settings)
    found = releasable_recall(client, ref)
    root = settings.recall_bundles_dir / found.id
    if not root.is_dir():
        raise MissingInput(f"no recall bundle for {found.id} in {settings.recall_bundles_dir}: run `edgerec recall "
                           f"export --ds {found.ds}` first")
    runtime = RecallRuntime(root, trusted=targets.trusted)
    problems = bundle_problems(root, found.tags, targets.trusted)
    if problems:
        raise NotReleasable(f"recall {found.id} may not ship: {'; '.join(problems)}")
    record = push_users(targets, runtime, settings.duckdb_path,
                        (lambda n: progress("users", n, 0)) if progress else None)
    uploaded, already = upload_recall(targets, root, runtime.manifest)
    report = verify_recall(targets, found.id, found.tags)
    if not report.passed:
        raise DeployError(f"recall {found.id} is not served intact after the deploy: {'; '.join(report.failures)}; "
                          f"re-run `edgerec recall deploy {found.id}` to write it again")
    client.set_model_version_tag(registry.RECALL_MODEL, found.number, DEPLOYED, json.dumps(
        {"kv": targets.kv.url, "cdn": targets.cdn.url, "at": record["deployed_at"]}))
    targets.audit("deploy", model=registry.RECALL_MODEL, version=found.id, kv=targets.kv.url, cdn=targets.cdn.url,
                  users=record["users"], files_uploaded=uploaded)
    log.info("deployed recall %s: %s batch user vectors, %s files uploaded (%s already there)", found.id,
             f"{record['users']:,}", uploaded, already)
    return report


def deployed_recall(targets: Targets) -> list[str]:
    """Recall versions with a bundle on the CDN."""
    return sorted({k.split("/")[1] for k in targets.cdn.list(f"{RECALL}/") if k.count("/") >= 2})


def remove_recall(targets: Targets, version: str) -> None:
    """A version's record first (it stops verifying), then its vectors, then its files (the manifest first)."""
    # SESSION: session rows that consumers before the SESSION_SCOPE wrote under a version
    for table in (RECORD, BATCH, HISTORY, NRT, NRT_HISTORY, SESSION):
        targets.kv.delete_keyed(version, table)
    keys = targets.cdn.list(recall_key(version))
    targets.cdn.delete([k for k in keys if k.endswith(f"/{MANIFEST}")])
    targets.cdn.delete([k for k in keys if not k.endswith(f"/{MANIFEST}")])


def fetch_recall(targets: Targets, version: str, cache: Path) -> RecallRuntime:
    """A deployed recall version from the CDN, into `cache` once, loaded after its verification against the trusted
    keys (BundleError when a file, its checksum, the index's dimension or the signature does not hold).

    Only the bundle's own file names are fetched (never names read from the manifest before its signature is
    checked), into a folder of this fetch alone, and kept only once they verify: a failed fetch leaves nothing
    behind, so the next one starts clean."""
    root = Path(cache) / version
    if (root / MANIFEST).is_file():
        try:
            return RecallRuntime(root, trusted=targets.trusted)
        except (BundleError, OSError) as e:  # altered, or being replaced by another process: fetched again
            log.warning("cached recall %s does not verify (%s): fetching it again", version, e)
            shutil.rmtree(root, ignore_errors=True)
    raw = targets.cdn.get_bytes(recall_key(version, MANIFEST))
    if raw is None:
        raise MissingInput(f"recall {version} is not on {targets.cdn.url}: deploy it first")
    Path(cache).mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{version}.", suffix=".partial", dir=cache))
    try:
        for name in (*FILES, SIGNATURE):
            data = targets.cdn.get_bytes(recall_key(version, name))
            if data is None:
                raise MissingInput(f"recall {version}: {name} is not on {targets.cdn.url}")
            (partial / name).write_bytes(data)
        (partial / MANIFEST).write_bytes(raw)
        runtime = RecallRuntime(partial, trusted=targets.trusted)  # loaded into memory: the folder can move
        shutil.rmtree(root, ignore_errors=True)
        try:
            partial.replace(root)
            runtime.root = root
        except OSError:  # another process (the API, the consumer) kept the same verified version first
            pass
        return runtime
    finally:
        shutil.rmtree(partial, ignore_errors=True)
