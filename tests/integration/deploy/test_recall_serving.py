"""The recall from its export to the paging API, on the tiny world's marts: deployed (batch user vectors into the
KV, bundle onto the CDN, both verified), the `recall` channel pointed at it, candidates served from the user's
vector (batch, then near-real-time from a Redis stream) or popularity, and what is refused on the way."""

import json
import shutil
import uuid

import numpy as np
import pytest
from fastapi.testclient import TestClient

from deploy.cdn import recall_key
from deploy.channels import RECALL_CHANNEL, channel_key, read_channel
from deploy.nrt import EventStream, consume, health
from deploy.pipeline import deploy_recall_day
from deploy.recall import fetch_recall, verify_recall
from deploy.release import ReleaseError, promote, rollback, withdraw
from deploy.serving.app import embedded_app
from deploy.targets import open_targets
from edgerec import registry
from edgerec.contracts.bundle import MANIFEST, BundleError
from edgerec.recall import RecallRuntime, histories_by_user
from tests.integration.conftest import DAYS
from training.recall.pipeline import export_recall_day, gate_recall_day, train_recall_day

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served(marts, tmp_path_factory):
    home = tmp_path_factory.mktemp("recall-serving")  # a registry, KV and CDN of its own; the marts' database copied
    settings = marts[0].replace(home=home, recall={"epochs": 1, "models": "pwprec_ls", "min_recall_at_20": 0.0,
                                                   "tolerance": 1.0})
    settings.duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(marts[0].duckdb_path, settings.duckdb_path)
    trained = train_recall_day(settings, DAYS[1])
    gate_recall_day(settings, DAYS[1])
    export_recall_day(settings, DAYS[1])
    assert deploy_recall_day(settings, DAYS[1]) == trained.version_id
    return settings, trained.version_id


@pytest.fixture
def targets(served):
    found = open_targets(served[0])
    yield found
    found.close()


def page(client, **request) -> dict:
    answer = client.post("/v1/page", json={"device_id": "dev-1", **request})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_daily_deploy_verifies_the_version_and_points_the_recall_channel_at_it(served, targets):
    settings, version = served
    client = registry.connect(settings)
    found = registry.find_version(client, version, registry.RECALL_MODEL)
    report = verify_recall(targets, version, found.tags)
    assert report.passed, report.failures
    assert [f.check for f in report.findings] == ["cdn.manifest", "cdn.files", "shipped", "kv.users"]
    assert read_channel(targets.cdn, RECALL_CHANNEL, targets.key).version == version
    assert str(client.get_model_version_by_alias(registry.RECALL_MODEL, RECALL_CHANNEL).version) == found.number
    assert registry.DEPLOYED in found.tags and registry.BUNDLE_SHA in found.tags


def test_the_paging_api_serves_the_users_nearest_items_then_popularity_and_409s_an_unknown_recall(served, targets):
    settings, version = served
    runtime = RecallRuntime(settings.recall_bundles_dir / version)
    user, history = sorted(histories_by_user(settings.duckdb_path).items())[0]
    client = TestClient(embedded_app(settings, users=30))

    body = page(client, user_id=user)
    assert body["candidates_from"] == {"source": "batch", "recall_version": version}
    vector, _ = runtime.embed([history])
    expected, scores = runtime.search(vector, 100)
    assert [c["item_id"] for c in body["candidates"]] == expected[0].tolist()
    assert [c["score"] for c in body["candidates"]] == pytest.approx(scores[0].tolist(), abs=1e-5)

    stranger = page(client, user_id="u9999999")  # no history: popularity, and the response says so
    assert stranger["candidates_from"] == {"source": "popularity", "recall_version": version}
    assert [c["item_id"] for c in stranger["candidates"]] == runtime.popular_items(100).tolist()

    gone = client.post("/v1/page", json={"user_id": user, "device_id": "dev-1", "recall_version": "v20990101-0badf00d"})
    assert gone.status_code == 409 and gone.json() == {
        "error": "recall version v20990101-0badf00d is not served (unknown or collected)", "use": version}


def test_stream_events_update_the_users_vector_and_hide_deleted_items(served, targets, redis_url):
    settings, version = served
    runtime = RecallRuntime(settings.recall_bundles_dir / version)
    user, history = sorted(histories_by_user(settings.duckdb_path).items())[1]
    api = TestClient(embedded_app(settings, users=30))
    first = page(api, user_id=user)["candidates"]
    clicked, deleted = first[5]["item_id"], first[0]["item_id"]

    stream = EventStream(f"{redis_url}?key=edgerec-test-{uuid.uuid4().hex[:8]}", consumer="test")
    base = {"user_id": user, "session_id": "s-test", "ts": 1_800_000_000_000}
    stream.publish([{**base, "event_id": "e1", "event_type": "click", "item_id": clicked, "request_id": "r1"},
                    b"{not an event",
                    {**base, "event_id": "e2", "event_type": "delete", "item_id": deleted}])
    counts = consume(stream, targets.kv, lambda: runtime, until=lambda c: c.messages >= 3, block_ms=50)
    assert (counts.messages, counts.invalid, counts.interactions, counts.embedded) == (3, 1, 1, 1)
    assert stream.lag() == 0
    alive, lines = health(stream)
    assert alive and lines[0].startswith(f"test: recall {version}, 3 messages (1 invalid), 1 embeddings")
    stream.client.delete(stream.key)
    stream.close()

    body = page(api, user_id=user)
    assert body["candidates_from"]["source"] == "nrt"
    vector, _ = runtime.embed([[*history, clicked][-runtime.width:]])
    expected, _ = runtime.search(vector, 101)
    assert [c["item_id"] for c in body["candidates"]] == [i for i in expected[0] if i != deleted][:100]


def test_a_recall_file_altered_on_the_cdn_is_refused_by_verify_the_api_and_a_release(served, targets, tmp_path):
    settings, version = served
    index = targets.cdn.root / "recall" / version / "index.faiss"
    original = index.read_bytes()
    index.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    try:
        found = registry.find_version(registry.connect(settings), version, registry.RECALL_MODEL)
        report = verify_recall(targets, version, found.tags)
        assert [f.check for f in report.findings if not f.passed] == ["cdn.files"]
        assert report.failures[0].startswith("cdn.files: index.faiss has sha256 ")
        with pytest.raises(BundleError, match=r"index.faiss has sha256 .*, the manifest says"):
            fetch_recall(targets, version, tmp_path / "cache")
        assert list((tmp_path / "cache").iterdir()) == []  # nothing kept that did not verify
        with pytest.raises(ReleaseError, match="fails verification: cdn.files: index.faiss"):
            promote(settings, targets, version, RECALL_CHANNEL, 100.0, "test")
    finally:
        index.write_bytes(original)
    assert fetch_recall(targets, version, tmp_path / "cache").version == version  # the same cache, once repaired
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [version]


def test_a_manifest_that_is_not_one_fails_verification_without_an_error(served, targets):
    settings, version = served
    key = recall_key(version, MANIFEST)
    original = targets.cdn.get_bytes(key)
    found = registry.find_version(registry.connect(settings), version, registry.RECALL_MODEL)
    try:
        for broken in (b"not json", b'{"files": ["index.faiss"]}'):
            targets.cdn.put_bytes(key, broken)
            report = verify_recall(targets, version, found.tags)
            assert [f.check for f in report.findings if not f.passed] == ["cdn.files", "shipped"]
            assert report.failures[0] == "cdn.files: manifest.json is not a recall manifest (JSON with its files)"
    finally:
        targets.cdn.put_bytes(key, original)


def test_a_recall_pointer_that_is_not_one_answers_503_naming_the_channel(served, targets):
    settings, version = served
    key = channel_key(RECALL_CHANNEL)
    original = targets.cdn.get_bytes(key)
    targets.cdn.put_bytes(key, b'{"version": "v20990101-0badf00d"}')
    try:
        answer = TestClient(embedded_app(settings, users=30)).post(
            "/v1/page", json={"user_id": "u0000001", "device_id": "dev-1"})
        assert answer.status_code == 503
        assert answer.json()["detail"].startswith("the recall channel is not followed: ")
    finally:
        targets.cdn.put_bytes(key, original)


def test_the_recall_channel_serves_everyone_and_is_never_withdrawn(served, targets):
    settings, version = served
    with pytest.raises(ReleaseError, match="serves every user: its rollout is 100%, not 50"):
        promote(settings, targets, version, RECALL_CHANNEL, 50.0, "test")
    with pytest.raises(ReleaseError, match="cannot be withdrawn"):
        withdraw(settings, targets, RECALL_CHANNEL, "test")
    with pytest.raises(ReleaseError, match="has no previous version to roll back to"):
        rollback(settings, targets, RECALL_CHANNEL, "test")
    assert json.loads(targets.cdn.get_bytes("channels/recall.json"))["version"] == version
    assert np.isfinite(RecallRuntime(settings.recall_bundles_dir / version).vectors).all()
