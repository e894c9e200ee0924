"""The edge runtime: events encoded once as they complete, re-ranks in the cloud's input order from the stored
encodings and the events' ages, the on-device store, diversity, refusal of a damaged bundle, and the closed loop."""

import shutil
import sqlite3

import numpy as np
import pyarrow as pa
import pytest

from edgerec.contracts import signing
from edgerec.contracts.bundle import MANIFEST, BundleError
from edgerec.contracts.policy import RerankContext
from edgerec.edge.onnx_model import BundleModel, Encoded
from edgerec.edge.runtime import EdgeRuntime, ItemCatalog, mmr_order
from edgerec.edge.store import BehaviourStore
from edgerec.errors import ConfigError
from edgerec.features import encode, encode_group
from edgerec.sim.config import load_sim_config
from edgerec.sim.engine import simulate_in_memory
from edgerec.sim.world import build_catalog
from tests.bundles import make_bundle

pytestmark = pytest.mark.unit
ITEMS = pa.table({"item_id": [1, 2, 3, 4, 5], "category": [0, 1, 1, 2, 39], "brand": [0, 8, 9, 16, 319],
                  "gender": [0, 1, 2, 0, 1], "price_level": [0, 1, 2, 3, 4], "age_level": [0, 1, 2, 3, 5],
                  "bc_type": [0, 1, 0, 1, 0], "ctr_score": [0.01, 0.02, 0.03, 0.04, 0.05],
                  "cvr_score": [0.001, 0.002, 0.003, 0.004, 0.005]})


def event(kind: str, ts: int, **fields) -> dict:
    return {"event_id": f"e{ts}", "event_type": kind, "user_id": "u1", "session_id": "s1", "device_id": "d1",
            "ts": ts, "app_version": "10.12.0", "model_version": None, "request_id": "r1"} | fields


PAGE = event("page_request", 0, page_no=0, candidates=[{"item_id": i, "rank": i - 1, "score": 1.0 - i / 10}
                                                       for i in range(1, 6)])


def exposure(ts: int, item: int, duration: int = 800) -> dict:
    return event("exposure", ts, item_id=item, position=0, exposure_duration_ms=duration, scroll_speed=1.5,
                 scroll_duration_ms=300, scroll_count=2)


def ie_codes(spec: dict, catalog: ItemCatalog, item: int, e1, e2, reason: str) -> np.ndarray:
    return encode_group(spec, "ie", catalog.features(np.array([item])) | {
        "e1_duration_ms": [e1], "e2_count": [e2], "e3_max_scroll_speed": [1.5], "e4_max_scroll_duration_ms": [300],
        "e5_scroll_count": [e2 * 2], "e6_delete_reason": [reason], "e7_age_s": [0.0]})


def stored(runtime: EdgeRuntime, behaviour: str):
    return runtime.store.recent("u1", behaviour, runtime.model_version, 0, 10**15, 100)


def test_an_exposure_is_encoded_once_complete_with_its_delete_and_counters(bundle):
    catalog = ItemCatalog(ITEMS)
    runtime, model = EdgeRuntime(bundle, catalog), BundleModel(bundle)
    for e in (PAGE, exposure(1_000, 2)):
        runtime.observe(e)
    assert len(stored(runtime, "ie")[0]) == 0  # its delete may still come
    runtime.observe(event("delete", 2_600, item_id=2, position=0, reason="not_interested"))
    runtime.observe(exposure(3_000, 2, duration=400))
    runtime.observe(event("click", 3_500, item_id=1, position=1))
    ts, item, fused, match_codes = stored(runtime, "ie")
    assert ts.tolist() == [1_000, 3_000]
    first = ie_codes(model.spec, catalog, 2, 800, 1, "not_interested")
    second = ie_codes(model.spec, catalog, 2, 1_200, 2, "none")  # the counters add up per item
    rows = model.rows(first, np.array([2]))
    expected = model.encode("ie", np.concatenate([rows, rows]), np.concatenate([first, second]), np.array([2, 2]))
    np.testing.assert_allclose(item, expected.item, atol=1e-6)
    np.testing.assert_allclose(fused, expected.fused, atol=1e-6)
    assert match_codes.tolist() == [[2, *first[0, [0, 1]].tolist()]] * 2  # item 2's id, category and brand codes


def test_a_page_view_is_stored_at_its_end(bundle):
    runtime = EdgeRuntime(bundle, ItemCatalog(ITEMS))
    actions = {a: a == "cart" for a in ("cart", "buy", "favorite", "comment", "select_sku", "ask",
                                         "customer_service", "detail", "shop", "recommendation")}
    runtime.observe(event("page_view", 5_000, item_id=3, ipv_duration_ms=20_000, actions=actions))
    assert stored(runtime, "ipv")[0].tolist() == [25_000]


def test_rerank_scores_the_unexposed_candidates_in_cloud_order(bundle):
    catalog = ItemCatalog(ITEMS)
    runtime, model = EdgeRuntime(bundle, catalog), BundleModel(bundle)
    runtime.observe(PAGE)
    runtime.rerank(RerankContext("u1", "d1", "s1", "r1", 0, "page", np.arange(1, 6), np.zeros(5), []))
    runtime.observe(exposure(1_000, 2))
    current = np.array([5, 3, 4, 1])  # the unexposed candidates as the page shows them now
    perm = runtime.rerank(RerankContext("u1", "d1", "s1", "r1", 5_000, "exposed_k", current,
                                        np.zeros(4), []))
    assert sorted(perm.tolist()) == [0, 1, 2, 3]
    # by hand: the cloud's order of the four (by rank) is items 1, 3, 4, 5; the exposure of item 2 is 4 s old
    cloud = np.array([3, 1, 2, 0])
    ids = current[cloud]
    codes = encode_group(model.spec, "candidate", catalog.features(ids) | {"cloud_score": 1.0 - ids / 10})
    e = ie_codes(model.spec, catalog, 2, 800, 1, "none")
    encoded = {"ie": model.encode("ie", model.rows(e, np.array([2])), e, np.array([2])),
               "ipv": Encoded.empty(hidden=8)}
    ages = {"ie": encode(model.spec["features"]["e7_age_s"], [4.0]), "ipv": np.zeros(0, np.int64)}
    scores = model.rerank(model.rows(codes, ids), codes, ids, encoded, ages)
    assert perm.tolist() == cloud[np.argsort(-scores, kind="stable")].tolist()
    assert runtime.stats.reranks == 2 and runtime.stats.first_use_delay_ms == [4_000]


def test_a_rank_only_list_is_scored_with_the_cloud_score_missing(bundle):
    """The contract makes a candidate's score optional (lists that carry ranks only): the runtime encodes it as
    missing, the padding code, as training does, instead of failing."""
    catalog = ItemCatalog(ITEMS)
    runtime, model = EdgeRuntime(bundle, catalog), BundleModel(bundle)
    runtime.observe(event("page_request", 0, page_no=0, candidates=[{"item_id": i, "rank": i - 1}
                                                                    for i in range(1, 6)]))
    perm = runtime.rerank(RerankContext("u1", "d1", "s1", "r1", 0, "page", np.arange(1, 6), np.zeros(5), []))
    ids = np.arange(1, 6)
    codes = encode_group(model.spec, "candidate", catalog.features(ids) | {"cloud_score": [None] * 5})
    assert (codes[:, list(model.spec["groups"]["candidate"]).index("cloud_score")] == 0).all()
    empty = {b: Encoded.empty(hidden=8) for b in ("ie", "ipv")}
    scores = model.rerank(model.rows(codes, ids), codes, ids, empty, {b: np.zeros(0, np.int64) for b in empty})
    assert perm.tolist() == np.argsort(-scores, kind="stable").tolist()


def test_mmr_trades_relevance_for_diversity():
    relevance = np.array([0.9, 0.85, 0.5])
    attributes = np.array([[1, 7], [1, 7], [2, 8]])  # the first two are alike
    assert mmr_order(relevance, attributes, 1.0).tolist() == [0, 1, 2]
    assert mmr_order(relevance, attributes, 0.5).tolist() == [0, 2, 1]
    with pytest.raises(ConfigError, match="diversity lambda must be within"):
        EdgeRuntime.__init__(object.__new__(EdgeRuntime), None, None, diversity=1.5)


def test_catalog_and_store_basics(tmp_path):
    catalog = ItemCatalog(ITEMS)
    got = catalog.features(np.array([2, 99]))
    assert got["brand"][0] == 8 and np.isnan(got["brand"][1])  # unknown item: missing, the padding code
    store = BehaviourStore(tmp_path / "device.sqlite")
    assert store.count_exposure("u", 7, 100, 2.0, 50, 1) == (100, 1, 2.0, 50, 1)
    assert store.count_exposure("u", 7, 300, 1.0, 80, 2) == (400, 2, 2.0, 80, 3)
    for ts in (10, 20, 30):
        store.append("u", "ie", "v1", ts, 7, np.full(2, ts, np.float32), np.zeros(4, np.float32),
                     np.array([ts // 10, 9]), np.zeros(3, np.float32), keep_after_ts=15)
    ts, item, _, match_codes = store.recent("u", "ie", "v1", 0, 30, limit=5)
    assert ts.tolist() == [20, 30] and item[:, 0].tolist() == [20.0, 30.0]  # 10 is older than the lookback
    assert match_codes.tolist() == [[2, 9], [3, 9]]
    assert store.recent("u", "ie", "v1", 0, 29, limit=5)[0].tolist() == [20]
    assert store.recent("u", "ie", "v2", 0, 30, limit=5)[0].tolist() == []  # another version's history


def test_a_store_of_the_previous_runtime_drops_its_encodings_and_keeps_the_rest(tmp_path):
    path = tmp_path / "device.sqlite"
    with sqlite3.connect(path) as db:  # runtime 2's encodings table, without match codes
        db.execute("create table encodings (user_id text not null, behaviour text not null, version text not null, "
                   "ts integer not null, item_id integer not null, item blob not null, fused blob not null)")
        db.execute("insert into encodings values ('u', 'ie', 'v1', 10, 7, x'00', x'00')")
    store = BehaviourStore(path)
    store.count_exposure("u", 7, 100, 2.0, 50, 1)
    assert store.recent("u", "ie", "v1", 0, 30, limit=5)[0].tolist() == []
    store.append("u", "ie", "v3", 20, 7, np.zeros(2, np.float32), np.zeros(4, np.float32), np.array([1, 2]),
                 np.zeros(3, np.float32), keep_after_ts=0)
    store.close()
    reopened = BehaviourStore(path)  # a current store is kept as it is
    assert reopened.recent("u", "ie", "v3", 0, 30, limit=5)[3].tolist() == [[1, 2]]
    assert reopened.count_exposure("u", 7, 100, 2.0, 50, 1)[1] == 2


def test_a_damaged_bundle_is_refused_and_the_runtime_keeps_its_own(bundle, tmp_path):
    runtime = EdgeRuntime(bundle, ItemCatalog(ITEMS))
    bad = tmp_path / "v20261105-bad"
    shutil.copytree(bundle, bad)
    (bad / "embeddings" / "brand" / "shard-00000.npy").write_bytes(b"x")
    with pytest.raises(BundleError, match="embeddings/brand/shard-00000.npy has 1 bytes"):
        runtime.load(bad)
    assert runtime.model_version == bundle.name
    runtime.observe(PAGE)
    assert runtime.rerank(RerankContext("u1", "d1", "s1", "r1", 10, "page", np.array([1, 2]), np.zeros(2), [])) \
        is not None


def test_the_device_runs_only_a_bundle_signed_by_a_key_it_trusts(tmp_path):
    key, other = (signing.load_signing_key(tmp_path / f"{n}.pem", create=True) for n in ("release", "other"))
    trusted = {signing.key_id(key.public_key()): key.public_key()}
    signed = tmp_path / "v20261105-0000aaaa"
    make_bundle(signed, signer=key)
    runtime = EdgeRuntime(signed, ItemCatalog(ITEMS), trusted=trusted)
    assert runtime.model_version == signed.name
    for name, damage in (("unsigned", lambda root: (root / signing.SIGNATURE).unlink()),
                         ("other key", lambda root: (root / signing.SIGNATURE).write_bytes(
                             signing.sign((root / MANIFEST).read_bytes(), other))),
                         ("edited manifest", lambda root: (root / MANIFEST).write_text(
                             (root / MANIFEST).read_text().replace('"hidden": ', '"hidden":  ')))):
        copy = tmp_path / f"v20261105-{name.replace(' ', '-')}"
        shutil.copytree(signed, copy)
        damage(copy)
        with pytest.raises(BundleError, match={"unsigned": "manifest.sig is missing",
                                               "other key": "which is not trusted",
                                               "edited manifest": "does not match the manifest's bytes"}[name]):
            runtime.load(copy)
    assert runtime.model_version == signed.name  # it keeps the one it has


def test_closed_loop_in_the_simulator(bundle):
    cfg = load_sim_config(users=4, seed=5)
    runtime = EdgeRuntime(bundle, ItemCatalog(build_catalog(cfg.world, cfg.seed).to_arrow()))
    _, events = simulate_in_memory(cfg, runtime)  # the simulator checks every order is a permutation
    reranks = [e for e in events if e["event_type"] == "rerank"]
    assert reranks and all(e["model_version"] == bundle.name for e in reranks)
    assert runtime.stats.reranks > 0 and len(runtime.stats.rerank_ms) == runtime.stats.reranks
    exposures = sum(e["event_type"] == "exposure" for e in events)
    views = sum(e["event_type"] == "page_view" for e in events)
    assert exposures - 4 <= runtime.stats.events_encoded - views <= exposures  # a session's last may be pending
