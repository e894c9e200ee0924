"""Business rules on the device: the rule set's contract, each rule on explicit lists, the rules a bundle's signed
manifest carries applied by the runtime after scoring, and a simulated day in which they fire."""

import json

import numpy as np
import pytest

from edgerec.contracts.bundle import BASE_RUNTIME_VERSION, MANIFEST, RUNTIME_VERSION, BundleError, verify_bundle
from edgerec.contracts.policy import RerankContext
from edgerec.contracts.rules import BusinessRules, CategoryCap, manifest_rules
from edgerec.edge.rules import RuleCounts, apply_after_order, capped, demoted
from edgerec.edge.runtime import EdgeRuntime, ItemCatalog
from edgerec.errors import ConfigError, json_config
from tests.bundles import order_bundle
from tests.unit.edge.test_runtime import ITEMS, event

pytestmark = pytest.mark.unit

# items 1..5 in the cloud's order; categories 0, 1, 1, 2, 39 (ITEMS); item 2 out of stock, item 4 without an image
FLAGGED_PAGE = event("page_request", 0, page_no=0, candidates=[
    {"item_id": 1, "rank": 0, "score": 0.9}, {"item_id": 2, "rank": 1, "score": 0.8, "out_of_stock": True},
    {"item_id": 3, "rank": 2, "score": 0.7}, {"item_id": 4, "rank": 3, "score": 0.6, "no_image": True},
    {"item_id": 5, "rank": 4, "score": 0.5}])


def test_the_rule_set_refuses_what_cannot_work():
    assert not BusinessRules().active and BusinessRules().describe() == "none"
    rules = BusinessRules(remove_out_of_stock=True, demote_no_image=0.5,
                          category_cap=CategoryCap(max_items=2, window=5))
    assert rules.active
    assert rules.describe() == "remove out of stock, demote no image x0.5, at most 2 of a category in any 5"
    with pytest.raises(ValueError, match="must be below window"):
        CategoryCap(max_items=3, window=3)
    with pytest.raises(ValueError, match="greater than 0"):
        BusinessRules(demote_no_image=0.0)
    with pytest.raises(ValueError, match="Extra inputs"):
        BusinessRules(remove_sold_out=True)
    for max_items, window in ((0, 5), (1, 1), (1, 101)):
        with pytest.raises(ValueError, match="max_items|window"):
            CategoryCap(max_items=max_items, window=window)
    assert manifest_rules({}) == manifest_rules({"rules": None}) == BusinessRules()  # a bundle from before the rules
    with pytest.raises(ValueError, match="valid dictionary"):
        manifest_rules({"rules": []})
    active = {"remove_out_of_stock": True}
    assert manifest_rules({"rules": active, "min_runtime_version": 5}).remove_out_of_stock
    with pytest.raises(ValueError, match="in a bundle for runtime version 4; they need 5"):
        manifest_rules({"rules": active, "min_runtime_version": 4})  # an older runtime would serve it without them


def test_a_rules_file_that_is_wrong_names_the_setting(tmp_path):
    path = tmp_path / "rules.json"
    path.write_text('{"demote_no_image": 2}')
    with pytest.raises(ConfigError, match=r"rules_config.demote_no_image = 2: .*less than or equal to 1"):
        json_config(BusinessRules, path, "EDGEREC_RULES_CONFIG")
    path.write_text("[1]")
    with pytest.raises(ConfigError, match=f"EDGEREC_RULES_CONFIG={path} holds a list, not a JSON object"):
        json_config(BusinessRules, path, "EDGEREC_RULES_CONFIG")
    path.write_text('{"remove_out_of_stock": true}')
    assert json_config(BusinessRules, path, "EDGEREC_RULES_CONFIG") == BusinessRules(remove_out_of_stock=True)
    assert json_config(BusinessRules, None, "EDGEREC_RULES_CONFIG") == BusinessRules()


def test_the_cap_keeps_the_order_as_far_as_the_windows_allow():
    # categories of a list best first; at most 1 of a category in any 2 consecutive places
    order, unmet = capped(np.array([7, 7, 7, 8, 9]), CategoryCap(max_items=1, window=2))
    assert order.tolist() == [0, 3, 1, 4, 2] and unmet == 0
    # at most 2 in any 3: the third 7 waits for one place
    order, unmet = capped(np.array([7, 7, 7, 8, 7]), CategoryCap(max_items=2, window=3))
    assert order.tolist() == [0, 1, 3, 2, 4] and unmet == 0
    # nothing else left: the best is placed and the place counted as unmet
    order, unmet = capped(np.array([7, 7, 7]), CategoryCap(max_items=1, window=2))
    assert order.tolist() == [0, 1, 2] and unmet == 2


def test_demotion_scales_the_click_probability():
    log_p = demoted(np.array([0.0, 0.0, 2.0]), np.array([False, True, True]), 0.5)
    assert np.allclose(np.exp(log_p), [0.5, 0.25, 0.5 / (1 + np.exp(-2.0))])


def test_removal_and_the_cap_after_the_order_and_what_they_count():
    counts = RuleCounts()
    rules = BusinessRules(remove_out_of_stock=True, category_cap=CategoryCap(max_items=1, window=2))
    shown = apply_after_order(np.array([4, 0, 1, 2, 3]), np.array([False, True, False, False, False]),
                              np.array([5, 5, 6, 6, 5]), rules, counts)
    # candidate 1 leaves: 4, 0, 2, 3 of categories 5, 5, 6, 6; 0 cannot follow 4, so 2 comes first
    assert shown.tolist() == [4, 2, 0, 3]
    assert counts.removed_out_of_stock == 1 and counts.moved_by_cap == 1 and counts.cap_unmet == 0


@pytest.fixture(scope="module")
def kept_order(tmp_path_factory):
    """A bundle that keeps the cloud's order (score = -rank), with the rules in its manifest."""
    def make(rules: BusinessRules | None):
        root = tmp_path_factory.mktemp("rules") / "v20261104-0000cafe"
        order_bundle(root, reverse=False, rules=rules)
        return root
    return make


def rerank(runtime: EdgeRuntime) -> list[int]:
    runtime.observe(FLAGGED_PAGE)
    return runtime.rerank(RerankContext("u1", "d1", "s1", "r1", 0, "page", np.arange(1, 6), np.zeros(5), [])).tolist()


@pytest.mark.parametrize("rules, shown, fired", [
    (BusinessRules(), [0, 1, 2, 3, 4], None),
    (BusinessRules(remove_out_of_stock=True), [0, 2, 3, 4], {"removed_out_of_stock": 1}),
    # item 4's probability sigmoid(-3) * 0.01 falls below item 5's sigmoid(-4)
    (BusinessRules(demote_no_image=0.01), [0, 1, 2, 4, 3], {"demoted_no_image": 1}),
    (BusinessRules(demote_no_image=0.9), [0, 1, 2, 3, 4], {"demoted_no_image": 1, "reranks_changed": 0}),
    # categories 0, 1, 1, 2, 39: the second of category 1 waits one place
    (BusinessRules(category_cap=CategoryCap(max_items=1, window=2)), [0, 1, 3, 2, 4], {"moved_by_cap": 1}),
    (BusinessRules(remove_out_of_stock=True, category_cap=CategoryCap(max_items=1, window=2)), [0, 2, 3, 4],
     {"removed_out_of_stock": 1, "moved_by_cap": 0, "reranks_changed": 1}),
])
def test_the_runtime_applies_the_manifests_rules_after_scoring(kept_order, rules, shown, fired):
    root = kept_order(rules)
    manifest = json.loads((root / MANIFEST).read_text())
    assert manifest["rules"] == rules.model_dump()
    assert manifest["min_runtime_version"] == (RUNTIME_VERSION if rules.active else BASE_RUNTIME_VERSION)
    runtime = EdgeRuntime(root, ItemCatalog(ITEMS))
    assert runtime.rules == rules
    assert rerank(runtime) == shown
    counts = runtime.stats.rules.as_dict()
    if fired is None:
        assert counts == RuleCounts().as_dict()  # inactive rules count nothing
    else:
        assert counts["reranks"] == 1
        expected = {"reranks_changed": 1} | fired
        assert {k: counts[k] for k in expected} == expected


def test_a_lone_candidate_out_of_stock_is_not_shown(kept_order):
    runtime = EdgeRuntime(kept_order(BusinessRules(remove_out_of_stock=True)), ItemCatalog(ITEMS))
    runtime.observe(FLAGGED_PAGE)
    lone = runtime.rerank(RerankContext("u1", "d1", "s1", "r1", 0, "exposed_k", np.array([2]), np.zeros(1), []))
    assert lone.tolist() == [] and runtime.stats.rules.removed_out_of_stock == 1
    assert runtime.rerank(RerankContext("u1", "d1", "s1", "r1", 0, "exposed_k", np.array([3]), np.zeros(1),
                                        [])) is None


def test_on_a_simulated_day_nothing_out_of_stock_is_shown(bundle):
    from edgerec.sim.config import load_sim_config
    from edgerec.sim.engine import Simulator
    from edgerec.sim.world import build_catalog

    cfg = load_sim_config(users=5, seed=3, world={"out_of_stock_share": 0.3})
    runtime = EdgeRuntime(bundle, ItemCatalog(build_catalog(cfg.world, cfg.seed).to_arrow()),
                          rules=BusinessRules(remove_out_of_stock=True))
    events = []
    Simulator(cfg, runtime).simulate_day(cfg.start_date, events.append)
    flagged = {(e["request_id"], c["item_id"]) for e in events if e["event_type"] == "page_request"
               for c in e["candidates"] if c.get("out_of_stock")}
    shown = {(e["request_id"], e["item_id"]) for e in events if e["event_type"] == "exposure"}
    assert flagged and shown and not flagged & shown
    assert runtime.stats.rules.removed_out_of_stock > 0


def test_rules_given_to_the_runtime_replace_the_manifests(kept_order):
    runtime = EdgeRuntime(kept_order(BusinessRules(remove_out_of_stock=True)), ItemCatalog(ITEMS),
                          rules=BusinessRules(demote_no_image=0.01))
    assert rerank(runtime) == [0, 1, 2, 4, 3]
    # no rules at all instead of the manifest's: item 2, out of stock, is shown
    assert rerank(EdgeRuntime(kept_order(BusinessRules(remove_out_of_stock=True)), ItemCatalog(ITEMS),
                              rules=BusinessRules())) == [0, 1, 2, 3, 4]


def test_a_manifest_with_rules_the_runtime_cannot_apply_is_refused(kept_order):
    root = kept_order(BusinessRules(remove_out_of_stock=True))
    manifest = json.loads((root / MANIFEST).read_text())
    manifest["rules"]["demote_no_image"] = 0
    (root / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="cannot apply: demote_no_image = 0: Input should be greater than 0$"):
        verify_bundle(root)
    manifest["rules"] = {"remove_out_of_stock": True}
    manifest["min_runtime_version"] = BASE_RUNTIME_VERSION
    (root / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="has rules \\(remove out of stock\\) in a bundle for runtime version 4"):
        verify_bundle(root)
    manifest["min_runtime_version"] = RUNTIME_VERSION + 1
    (root / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=f"needs runtime version {RUNTIME_VERSION + 1}"):
        verify_bundle(root)
