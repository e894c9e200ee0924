"""The cloud paging API: candidates with their rows for the client's version, 409 for a version not served."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from deploy.channels import channel_key
from deploy.push import deploy_version
from deploy.release import ReleaseError, gc, promote, repair
from deploy.serving.api import SimulatedCloud, create_app
from deploy.serving.auth import DeviceTokens
from deploy.serving.loadtest import LoopbackServer, load_test
from edgerec.contracts.bundle import item_rows, load_table, verify_bundle
from edgerec.features import encode_group
from edgerec.sim.config import load_sim_config
from tests.integration.deploy.conftest import V1, V2, V3

pytestmark = pytest.mark.integration


@pytest.fixture
def served(released):
    settings, targets = released()
    deploy_version(settings, targets, V1)
    promote(settings, targets, V1, "stable", 100, "first")
    cloud = SimulatedCloud(load_sim_config(users=20, seed=3))
    return settings, targets, cloud, create_app(targets, cloud, cloud.catalog, pointer_ttl_s=0)


def test_a_page_carries_each_candidates_rows_for_the_clients_version(served, bundles):
    settings, targets, cloud, app = served
    client = TestClient(app)
    answer = client.post("/v1/page", json={"user_id": "u0000003", "device_id": "dev-3", "model_version": V1})
    assert answer.status_code == 200
    body = answer.json()
    ids = np.array([c["item_id"] for c in body["candidates"]])
    assert len(ids) == 100 and [c["rank"] for c in body["candidates"]] == list(range(100))
    scores = np.array([c["score"] for c in body["candidates"]])
    assert np.all(np.diff(scores) <= 1e-6)  # best first
    # the rows are exactly the bundle's rows of each candidate's item tables (what the runtime reads in-process)
    root = bundles[V1][1]
    manifest = verify_bundle(root)
    features = cloud.catalog.features(ids)
    codes = encode_group(json.loads((root / "feature_spec.json").read_text()),
                         "candidate", {**features, "cloud_score": scores})
    expected = item_rows(manifest, {n: load_table(root, manifest, n) for n in manifest["embeddings"]}, codes, ids)
    got = np.stack([np.frombuffer(base64.b64decode(r), dtype=body["rows"]["dtype"]) for r in body["rows"]["base64"]])
    assert got.shape == (100, body["rows"]["dim"]) and np.array_equal(got.astype(np.float32), expected)
    plain = client.post("/v1/page", json={"user_id": "u0000003", "device_id": "dev-3"}).json()
    assert "rows" not in plain and len(plain["candidates"]) == 100


def test_a_version_not_served_gets_409_naming_the_one_to_fetch(served):
    settings, targets, cloud, app = served
    client = TestClient(app)
    answer = client.post("/v1/page", json={"user_id": "u0000001", "device_id": "dev-1", "model_version": V2})
    assert answer.status_code == 409
    assert answer.json() == {"error": f"model version {V2} is not served (unknown or collected)", "fetch": V1,
                             "manifest": f"models/{V1}/manifest.json"}
    assert client.get("/v1/model", params={"device_id": "dev-1"}).json()["version"] == V1
    assert client.get("/healthz").json() == {"status": "ok", "versions_in_kv": 1, "broken": {},
                                             "channels": {"canary": None, "stable": V1}}
    assert client.post("/v1/page", json={"user_id": "nobody", "device_id": "d"}).status_code == 422


def test_a_collected_version_stops_being_served(served):
    import datetime as dt

    settings, targets, cloud, app = served
    client = TestClient(app)
    page = {"user_id": "u0000002", "device_id": "dev-2", "model_version": V1}
    assert client.post("/v1/page", json=page).status_code == 200
    for v in (V2, V3):
        deploy_version(settings, targets, v)
        promote(settings, targets, v, "stable", 100, "next")  # then V1 is held neither as current nor previous
    assert [v.version for v in gc(settings, targets, 7, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=8))] == [V1]
    answer = client.post("/v1/page", json=page)
    assert answer.status_code == 409 and answer.json()["fetch"] == V3


def test_loopback_load_test_reports_latency_and_throughput(served):
    settings, targets, cloud, app = served
    with LoopbackServer(app) as server:
        figures = load_test(server.url, V1, requests=40, concurrency=2, users=20)
    assert figures["requests"] == 40 and 0 < figures["p50_ms"] <= figures["p99_ms"] and figures["requests_per_s"] > 0


def test_a_broken_canary_leaves_its_devices_on_stable_and_a_broken_stable_answers_503(served):
    settings, targets, cloud, app = served
    client = TestClient(app)
    deploy_version(settings, targets, V2)
    stable_v1 = targets.cdn.get_bytes(channel_key("stable"))
    promote(settings, targets, V2, "canary", 100, "everyone on canary")
    assert client.get("/v1/model", params={"device_id": "dev-1"}).json()["version"] == V2
    targets.cdn.put_bytes(channel_key("canary"), b"{not json")
    assert client.get("/v1/model", params={"device_id": "dev-1"}).json()["version"] == V1  # stable's
    health = client.get("/healthz").json()
    assert health["status"] == "degraded" and "canary.json is not a channel pointer" in health["broken"]["canary"]
    with pytest.raises(ReleaseError, match="canary.json is not a channel pointer .*`edgerec release repair`"):
        promote(settings, targets, V2, "stable", 100, "day 2")  # no release over a broken channel
    repair(settings, targets, "a damaged canary pointer")
    promote(settings, targets, V2, "stable", 100, "day 2")
    assert client.get("/v1/model", params={"device_id": "dev-1"}).json()["version"] == V2
    targets.cdn.put_bytes(channel_key("stable"), stable_v1)  # an older signed stable pointer put back
    for answer in (client.get("/healthz"), client.get("/v1/model", params={"device_id": "dev-1"})):
        assert answer.status_code == 503
        assert "the stable channel is not followed: the stable pointer has sequence 1 after 2 was served: an " \
               "older pointer put back" in answer.json()["detail"]
    assert client.post("/v1/page", json={"user_id": "u0000001", "device_id": "dev-1"}).status_code == 200  # the
    # cloud's order needs no channel


@pytest.mark.parametrize("field, value", [("model_version", "v" * 300), ("model_version", "v2026\x00"),
                                          ("model_version", "../../etc"), ("user_id", "1" * 4300),
                                          ("device_id", "dev 1"), ("page_no", 10**9)])
def test_an_out_of_bounds_request_field_is_a_422_naming_it(served, field, value):
    _, _, _, app = served
    body = {"user_id": "u0000001", "device_id": "dev-1", field: value}
    answer = TestClient(app).post("/v1/page", json=body)
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["body", field]


def test_a_device_id_out_of_bounds_is_a_422_on_model_too(served):
    answer = TestClient(served[3]).get("/v1/model", params={"device_id": "x" * 200})
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["query", "device_id"]


def test_with_device_tokens_only_the_tokens_device_is_answered(served):
    settings, targets, cloud, _ = served
    tokens = DeviceTokens(b"t" * 32)
    client = TestClient(create_app(targets, cloud, cloud.catalog, pointer_ttl_s=0, tokens=tokens))
    mine = {"Authorization": f"Bearer {tokens.issue('dev-1')}"}
    body = {"user_id": "u0000001", "device_id": "dev-1"}
    assert client.post("/v1/page", json=body, headers=mine).status_code == 200
    assert client.get("/v1/model", params={"device_id": "dev-1"}, headers=mine).json()["version"] == V1
    missing = client.post("/v1/page", json=body)
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
    other = client.post("/v1/page", json={**body, "device_id": "dev-2"}, headers=mine)
    assert other.status_code == 403 and other.json()["detail"] == "the device token was issued to another device"
    assert client.get("/v1/model", params={"device_id": "dev-2"}, headers=mine).status_code == 403
    assert client.get("/healthz").status_code == 200  # health needs no token


class AskedFor:
    """A candidate source that records which recall version each page asked for; it serves `served` only."""

    def __init__(self, cloud: SimulatedCloud, served: str):
        self.cloud, self.served_version, self.asked = cloud, served, []

    def candidates(self, user_id, page_no, ts_ms, recall_version=None):
        self.asked.append(recall_version)
        return self.cloud.candidates(user_id, page_no, ts_ms)

    def served(self, recall_version):
        return recall_version == self.served_version


def test_a_client_gets_the_candidates_of_the_recall_its_model_was_trained_beside_while_it_is_served(served):
    settings, targets, cloud, _ = served
    manifest_file = targets.cdn.root / "models" / V1 / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    for recorded, expected in (("v20261031-0000a11c", "v20261031-0000a11c"), ("v20261030-00000010", None),
                               (None, None)):
        manifest_file.write_text(json.dumps({**manifest, "recall_version": recorded}))  # as the export records it
        source = AskedFor(cloud, served="v20261031-0000a11c")
        client = TestClient(create_app(targets, source, cloud.catalog, pointer_ttl_s=0))
        page = {"user_id": "u0000003", "device_id": "dev-3", "model_version": V1}
        assert client.post("/v1/page", json=page).status_code == 200
        assert client.post("/v1/page", json={**page, "recall_version": "v20261029-0000beef"}).status_code == 200
        assert client.post("/v1/page", json={**page, "model_version": None}).status_code == 200
        # the pair while its recall is served, else the channel's (None); an explicit one wins; no model: no pair
        assert source.asked == [expected, "v20261029-0000beef", None], recorded
