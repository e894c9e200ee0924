"""edgerec deploy: embeddings into the KV and the bundle onto the CDN, verified, resumable, never unblessed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from deploy.cdn import ImmutableObjectError, model_key
from deploy.channels import read_channel
from deploy.kv import KVError, open_kv
from deploy.push import DeployError, NotReleasable, deploy_version
from deploy.release import ReleaseError, promote
from deploy.targets import open_targets
from deploy.verify import verify_version
from edgerec import registry
from edgerec.config import load_settings
from edgerec.contracts import signing
from edgerec.contracts.bundle import MANIFEST, BundleError, sha256_of, verify_bundle
from edgerec.errors import MissingInput
from pipeline.cli import app
from tests.integration.deploy.conftest import V1, V2, register

pytestmark = pytest.mark.integration


def test_deploy_writes_verifies_and_a_rerun_does_nothing_again(released, bundles):
    settings, targets = released()
    manifest = bundles[V1][0]
    result = deploy_version(settings, targets, V1)
    rows = sum(t["rows"] for t in manifest["embeddings"].values())
    files = len(manifest["files"]) + sum(len(t["shards"]) for t in manifest["embeddings"].values()) + 2  # sig, manifest
    assert (result.rows_written, result.rows_skipped, result.files_uploaded) == (rows, 0, files)
    assert result.kv.passed and result.cdn.passed
    record = targets.kv.get_index(V1)
    assert record["tables"]["brand"]["rows"] == 322 and record["feature_spec_sha256"] == manifest["feature_spec_sha256"]
    brand = np.concatenate([np.load(bundles[V1][1] / s["path"]) for s in manifest["embeddings"]["brand"]["shards"]])
    assert targets.kv.get_rows(V1, "brand", np.array([321]), 8) == [brand[321].tobytes()]
    assert targets.cdn.get_bytes(model_key(V1, "reranker.onnx")) == (bundles[V1][1] / "reranker.onnx").read_bytes()
    again = deploy_version(settings, targets, V1)
    assert (again.rows_written, again.rows_skipped, again.files_uploaded, again.files_skipped) == (0, rows, 0, files)
    version = registry.find_version(registry.connect(settings), V1)
    assert json.loads(version.tags["edgerec.deployed"])["kv"] == targets.kv.url
    audit = [json.loads(line) for line in targets.audit_log.read_text().splitlines()]
    assert [(a["action"], a["version"], a["by"]) for a in audit] == [("deploy", V1, "alice")] * 2


def test_a_version_without_both_blessings_is_not_deployed(released, bundles):
    settings, targets = released()
    v = register(settings, "v20261105-0000dddd", bundles[V1][0], blessed=True, servable=False)
    with pytest.raises(NotReleasable, match=r"edgerec.servable='false'"):
        deploy_version(settings, targets, v)
    with pytest.raises(MissingInput, match="v20991231-00000000"):
        deploy_version(settings, targets, "v20991231-00000000")
    assert targets.kv.versions() == [] and targets.cdn.list("models/") == []


def test_a_crash_mid_push_resumes_where_it_stopped(released, bundles):
    settings, targets = released()
    seen = []

    def crash(step, done, total):
        seen.append(done)
        if len(seen) == 3:
            raise KeyboardInterrupt  # the process dies after its third shard

    with pytest.raises(KeyboardInterrupt):
        deploy_version(settings, targets, V1, progress=crash)
    assert targets.kv.get_index(V1) is None  # no index record: the version is not servable from the KV yet
    result = deploy_version(settings, targets, V1)
    assert result.rows_skipped == seen[2] and result.kv.passed and result.cdn.passed


def test_the_kv_going_away_mid_deploy_loses_nothing(released, bundles, own_redis):
    settings, targets = released(EDGEREC_KV_URL=own_redis.url)
    calls = []

    def stop_redis(step, done, total):
        calls.append(done)
        if len(calls) == 2:
            own_redis.stop()

    with pytest.raises(KVError, match=f"key-value store {own_redis.url}"):
        deploy_version(settings, targets, V1, progress=stop_redis)
    own_redis.start()  # an empty Redis: the rows written before the crash are gone, the journal says otherwise
    targets = open_targets(settings)
    with pytest.raises(DeployError, match=rf"rows missing.*re-run `edgerec deploy {V1}`"):
        deploy_version(settings, targets, V1)
    result = deploy_version(settings, targets, V1)  # the journal forgot the lost shards: they are written again
    assert result.kv.passed and result.cdn.passed
    assert open_kv(own_redis.url).scan(V1, "brand", 322, 8).present == 322


def test_damaged_bundles_and_rewrites_of_immutable_objects_are_refused(released, bundles):
    settings, targets = released()
    deploy_version(settings, targets, V1)
    other = settings.bundles_dir / V1 / "reranker.onnx"
    other.write_bytes(other.read_bytes() + b"\0")
    with pytest.raises(BundleError, match="reranker.onnx has .* bytes, the manifest says"):
        deploy_version(settings, targets, V1)
    targets.cdn.put_bytes(model_key("v20261102-0000bbbb", "behavior_ie.onnx"), b"not the exported model")
    with pytest.raises(ImmutableObjectError, match="behavior_ie.onnx exists with sha256"):
        deploy_version(settings, targets, "v20261102-0000bbbb")


def test_s3_throttling_fails_the_upload_clearly_and_a_rerun_completes(released, throttled_s3, moto_endpoint):
    import boto3

    from deploy.cdn import CDNError
    from deploy.channels import channel_key
    from deploy.release import promote

    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket="edgerec-throttled")
    settings, targets = released(EDGEREC_CDN_URL=f"s3://edgerec-throttled/cdn?endpoint_url={throttled_s3.url}"
                                                 f"&max_attempts=2")
    deploy_version(settings, targets, V1)
    promote(settings, targets, V1, "stable", 100, "first")
    pointer = targets.cdn.get_bytes(channel_key("stable"))
    throttled_s3.allow_puts, throttled_s3.puts = 3, 0  # S3 starts throttling after three more uploads
    with pytest.raises(CDNError, match=r"models/v20261102-0000bbbb/.*SlowDown"):
        deploy_version(settings, targets, "v20261102-0000bbbb")
    assert targets.cdn.get_bytes(channel_key("stable")) == pointer  # channels are as they were
    throttled_s3.allow_puts = None
    result = deploy_version(settings, targets, "v20261102-0000bbbb")
    assert result.files_skipped == 3 and result.cdn.passed and result.kv.passed


def substitute_reranker(root: Path, other: Path) -> None:
    """What an attacker with write access does: another model's reranker.onnx, and the manifest fixed to match."""
    onnx_path = root / "reranker.onnx"
    onnx_path.write_bytes((other / "reranker.onnx").read_bytes())
    manifest = json.loads((root / MANIFEST).read_text())
    manifest["files"]["reranker.onnx"].update(sha256=sha256_of(onnx_path), bytes=onnx_path.stat().st_size)
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def test_a_substituted_bundle_is_not_deployed(released, bundles):
    settings, targets = released()
    substitute_reranker(settings.bundles_dir / V1, bundles[V2][1])
    verify_bundle(settings.bundles_dir / V1)  # the bundle is consistent in itself: only the signature and the gate
    with pytest.raises(NotReleasable, match=r"may not ship: .*manifest.json: manifest.sig does not match the "
                                            r"manifest's bytes .*the servability gate tested .*: these are not the "
                                            r"bytes the gates tested"):
        deploy_version(settings, targets, V1)
    assert targets.kv.get_index(V1) is None and targets.cdn.list(model_key(V1)) == []


def test_a_bundle_signed_by_a_key_nobody_trusts_is_not_deployed(released, tmp_path):
    settings, targets = released()
    other = signing.load_signing_key(tmp_path / "other.pem", create=True)
    root = settings.bundles_dir / V1
    (root / signing.SIGNATURE).write_bytes(signing.sign((root / MANIFEST).read_bytes(), other))
    with pytest.raises(NotReleasable, match=f"signed with key {signing.key_id(other.public_key())}, which is not "
                                            "trusted"):
        deploy_version(settings, targets, V1)


def test_bytes_substituted_on_the_cdn_fail_verify_and_never_reach_a_channel(released, bundles):
    settings, targets = released()
    deploy_version(settings, targets, V1)
    substitute_reranker(Path(settings.cdn_origin) / "models" / V1, bundles[V2][1])  # straight into the storage
    report = verify_version(targets, V1, registry.find_version(registry.connect(settings), V1).tags)
    [shipped] = [f for f in report.findings if f.check == "shipped"]
    assert not shipped.passed and "manifest.sig does not match the manifest's bytes" in shipped.detail
    with pytest.raises(ReleaseError, match="fails verification: shipped: "):
        promote(settings, targets, V1, "stable", 100, "a substituted bundle")
    assert read_channel(targets.cdn, "stable", targets.key) is None


def test_keygen_makes_a_trusted_key_and_never_overwrites_one(tmp_path):
    env = {"EDGEREC_HOME": str(tmp_path / "state"), "EDGEREC_RELEASE_TRUSTED_KEYS": str(tmp_path / "trusted")}
    made = CliRunner().invoke(app, ["release", "keygen", str(tmp_path / "new.pem")], env=env)
    assert made.exit_code == 0, made.output
    key = signing.load_signing_key(tmp_path / "new.pem")
    assert list(signing.trusted_keys(tmp_path / "trusted")) == [signing.key_id(key.public_key())]
    again = CliRunner().invoke(app, ["release", "keygen", str(tmp_path / "new.pem")], env=env)
    assert again.exit_code == 2 and "a signing key is never overwritten" in again.output


def test_two_key_prefixes_on_one_redis_are_two_stores(released, bundles, own_redis):
    settings, targets = released(EDGEREC_KV_URL=f"{own_redis.url}?prefix=blue")
    rows = sum(t["rows"] for t in bundles[V1][0]["embeddings"].values())
    assert deploy_version(settings, targets, V1).rows_written == rows
    green = load_settings({"EDGEREC_HOME": str(settings.home), "EDGEREC_KV_URL": f"{own_redis.url}?prefix=green",
                           "EDGEREC_RELEASE_TRUSTED_KEYS": str(settings.release.trusted_keys)})
    green_targets = open_targets(green)
    result = deploy_version(green, green_targets, V1)  # the journal of blue does not stand for green
    assert (result.rows_written, result.rows_skipped) == (rows, 0) and result.kv.passed
    assert open_kv(f"{own_redis.url}?prefix=green").scan(V1, "brand", 322, 8).present == 322
