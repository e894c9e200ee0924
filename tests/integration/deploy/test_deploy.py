"""edgerec deploy: embeddings into the KV and the bundle onto the CDN, verified, resumable, never unblessed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deploy.cdn import ImmutableObjectError, model_key
from deploy.kv import KVError, open_kv
from deploy.push import DeployError, NotReleasable, deploy_version
from deploy.targets import open_targets
from edgerec import registry
from edgerec.contracts.bundle import BundleError
from edgerec.errors import MissingInput
from tests.integration.deploy.conftest import V1, register

pytestmark = pytest.mark.integration


def test_deploy_writes_verifies_and_a_rerun_does_nothing_again(released, bundles):
    settings, targets = released()
    manifest = bundles[V1][0]
    result = deploy_version(settings, targets, V1)
    rows = sum(t["rows"] for t in manifest["embeddings"].values())
    files = len(manifest["files"]) + sum(len(t["shards"]) for t in manifest["embeddings"].values()) + 1
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
