"""The simulated world shows the paper's in-session effects, by direction and margin."""

from collections import defaultdict

import numpy as np
import pytest

from edgerec.sim.config import load_sim_config
from edgerec.sim.engine import simulate_in_memory
from edgerec.sim.stats import compute_stats

pytestmark = pytest.mark.unit


def run_in_memory(**overrides):
    return simulate_in_memory(load_sim_config(**overrides))


def stats_of(sim, events):
    return compute_stats(events, dict(zip(sim.catalog.item_id.tolist(), sim.catalog.category.tolist(), strict=True)))


@pytest.fixture(scope="module")
def stats(world_events):
    return stats_of(*world_events)


def test_world_is_big_enough_and_plausible(stats):
    assert stats.sessions >= 2500
    assert 0.02 < stats.ctr.value < 0.12  # a feed's CTR, not a toy's


def test_fatigue_third_unclicked_exposure_of_a_category_is_clicked_less(stats):
    first, third = stats.ctr_by_reexposure[0], stats.ctr_by_reexposure[2]
    assert third.total > 1000
    assert third.value < 0.75 * first.value


def test_sudden_preference_next_click_matches_the_clicked_category(stats):
    assert stats.next_click_match.total > 500
    assert stats.next_click_match.value > stats.next_click_base_rate + 0.08


def test_sudden_preference_is_caused_by_the_click_boost():
    sim, events = run_in_memory(users=1200, seed=11, behaviour={"click_boost_category": 0.0,
                                                                "click_boost_brand": 0.0,
                                                                "deep_action_boost": 0.0})
    ablated = stats_of(sim, events)
    sim, events = run_in_memory(users=1200, seed=11)
    default = stats_of(sim, events)
    lift = default.next_click_match.value - default.next_click_base_rate
    ablated_lift = ablated.next_click_match.value - ablated.next_click_base_rate
    assert lift > ablated_lift + 0.05


def test_long_exposures_precede_clicks_more_than_fast_scrolls(stats):
    assert stats.ctr_long_exposure.value > 3 * stats.ctr_fast_scroll.value
    assert np.median(stats.duration_clicked) > 1.5 * np.median(stats.duration_skipped)


def test_position_bias(stats):
    assert stats.ctr_by_position[45].value < 0.5 * stats.ctr_by_position[0].value


def test_page_protocol_and_triggers(world_events):
    sim, events = world_events
    exposures_per_request = defaultdict(int)
    for ev in events:
        if ev["event_type"] == "page_request":
            assert 50 <= len(ev["candidates"]) <= 100
            assert [c["rank"] for c in ev["candidates"]] == list(range(len(ev["candidates"])))
            scores = [c["score"] for c in ev["candidates"]]
            assert scores == sorted(scores, reverse=True)
        elif ev["event_type"] == "exposure":
            exposures_per_request[ev["request_id"]] += 1
    assert max(exposures_per_request.values()) == 50
    # every click is followed by its page view, then a click-triggered re-rank unless the user left
    for a, b in zip(events, events[1:], strict=False):
        if a["event_type"] == "click":
            assert b["event_type"] == "page_view" and b["item_id"] == a["item_id"]
    triggers = {ev["trigger"] for ev in events if ev["event_type"] == "rerank"}
    assert triggers == {"page", "click", "delete", "exposed_k"}
    deletes = [ev for ev in events if ev["event_type"] == "delete"]
    assert {d["reason"] for d in deletes} <= {"not_interested", "seen_before", "low_quality"}


def test_exposed_k_triggers_after_k_unclicked_exposures_since_the_last_rerank():
    _, events = run_in_memory(users=30, seed=3, client={"trigger_k": 3})
    since, checked = 0, 0
    for ev in events:
        if ev["event_type"] == "exposure":
            since += 1
        elif ev["event_type"] == "rerank":
            if ev["trigger"] == "exposed_k":
                assert since == 3
                checked += 1
            since = 0
    assert checked > 100


def test_cloud_sees_in_session_clicks_only_after_the_delay():
    sim, _ = run_in_memory(users=1)
    user, t = sim.user(0), 1_800_000_000_000
    cat = int(user.interest_cats[0])
    rng = lambda: np.random.default_rng(5)  # noqa: E731
    unseen = np.zeros(len(sim.catalog), dtype=bool)
    none, _, _ = sim._cloud_page(user, rng(), t, unseen, [])
    recent, _, _ = sim._cloud_page(user, rng(), t, unseen, [(t - 30_000, cat, 0, 1.0)])
    older, _, _ = sim._cloud_page(user, rng(), t, unseen, [(t - 90_000, cat, 0, 1.0)])
    assert np.array_equal(none, recent)  # 30 s ago: not yet visible to the cloud
    assert not np.array_equal(none, older)  # 90 s ago: visible, the page changes
    share = lambda rows: np.mean(sim.catalog.category[rows] == cat)  # noqa: E731
    assert share(older) >= share(none)


@pytest.fixture(scope="module")
def revisit_world():
    return simulate_in_memory(load_sim_config(preset="revisit", users=80, seed=3))


def test_the_revisit_world_has_what_public_session_logs_have(revisit_world):
    sim, events = revisit_world
    stats = stats_of(sim, events)
    assert 0.3 < stats.click_on_viewed.value < 0.5  # about 40% of clicks return to an item viewed before
    pages = [e for e in events if e["event_type"] == "page_request"]
    assert {20, 30} <= {len(p["candidates"]) for p in pages} <= set(range(20, 31))  # lists of 20-30 items
    assert all("score" not in c for p in pages for c in p["candidates"])  # the rank alone
    assert len(sim.catalog) == 100_000 and np.array_equal(sim.catalog.brand, np.arange(100_000))  # brand = item
    exposures = [(e["request_id"], e["item_id"]) for e in events if e["event_type"] == "exposure"]
    assert len(exposures) == len(set(exposures))  # one exposure per shown item


def test_the_default_world_never_shows_an_exposed_item_again(world_events):
    sim, events = world_events
    assert stats_of(sim, events).click_on_viewed.value == 0.0


def test_an_unknown_world_and_inverted_list_lengths_are_refused():
    from edgerec.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown simulated world 'revisitt'; known: default, revisit"):
        load_sim_config(preset="revisitt")
    with pytest.raises(ConfigError, match=r"client.min_candidates_per_request \(40\) is above "
                                          r"client.candidates_per_request \(30\)"):
        load_sim_config(client={"candidates_per_request": 30, "min_candidates_per_request": 40})


def test_flagged_items_are_flagged_on_the_page_and_behave_so():
    """Out of stock: flagged, never carted or bought; without an image: flagged, clicked less (the cloud ranks them
    as any other). The default world flags nothing, so its logs are as before the flags."""
    flags = {"world": {"out_of_stock_share": 0.5, "no_image_share": 0.5}, "behaviour": {"no_image_penalty": 3.0}}
    sim, events = run_in_memory(users=60, seed=3, **flags)
    assert 0.45 < sim.catalog.out_of_stock.mean() < 0.55 and 0.45 < sim.catalog.no_image.mean() < 0.55
    flagged = {c["item_id"]: c for e in events if e["event_type"] == "page_request" for c in e["candidates"]}
    rows = sim.catalog.row_of(np.array(list(flagged)))
    assert [c.get("out_of_stock", False) for c in flagged.values()] == sim.catalog.out_of_stock[rows].tolist()
    assert [c.get("no_image", False) for c in flagged.values()] == sim.catalog.no_image[rows].tolist()
    out_of_stock = {i for i, c in flagged.items() if c.get("out_of_stock")}
    views = [e for e in events if e["event_type"] == "page_view"]
    assert any(e["item_id"] in out_of_stock for e in views)
    assert not any(e["actions"]["cart"] or e["actions"]["buy"] for e in views if e["item_id"] in out_of_stock)
    assert any(e["actions"]["buy"] for e in views if e["item_id"] not in out_of_stock)
    exposed, clicked = defaultdict(int), defaultdict(int)
    for e in events:
        if e["event_type"] in ("exposure", "click"):
            (exposed if e["event_type"] == "exposure" else clicked)[flagged[e["item_id"]].get("no_image", False)] += 1
    assert clicked[True] / exposed[True] < 0.5 * clicked[False] / exposed[False]
    _, plain = run_in_memory(users=20, seed=3)
    assert not any(set(c) - {"item_id", "rank", "score"} for e in plain if e["event_type"] == "page_request"
                   for c in e["candidates"])


def test_a_policy_may_leave_candidates_out_and_they_are_not_shown():
    """A policy returning a subset (a business rule removed the rest): those candidates are never exposed and the
    rerank event lists what is shown; a repeated index is refused."""
    from edgerec.sim.engine import Simulator

    class EveryOther:
        model_version = "v-test"

        def observe(self, event):
            pass

        def rerank(self, ctx):
            return np.arange(0, len(ctx.item_ids), 2)

    events = []
    Simulator(load_sim_config(users=5, seed=3), EveryOther()).simulate_day(load_sim_config().start_date,
                                                                           events.append)
    pages = {e["request_id"]: [c["item_id"] for c in e["candidates"]] for e in events
             if e["event_type"] == "page_request"}
    first = {e["request_id"]: e["order"] for e in events if e["event_type"] == "rerank" and e["trigger"] == "page"}
    assert first and all(order == pages[r][::2] for r, order in first.items())
    left_out = {(r, i) for r, items in pages.items() for i in items[1::2]}  # on that page (a later one may show it)
    assert not left_out & {(e["request_id"], e["item_id"]) for e in events if e["event_type"] == "exposure"}

    class Repeats(EveryOther):
        def rerank(self, ctx):
            return np.zeros(len(ctx.item_ids), dtype=np.int64)

    class OutOfRange(EveryOther):
        def rerank(self, ctx):
            return np.array([len(ctx.item_ids)])

    for bad in (Repeats(), OutOfRange()):
        with pytest.raises(ValueError, match=r"no permutation of \(a subset of\)"):
            Simulator(load_sim_config(users=1, seed=3), bad).simulate_day(load_sim_config().start_date, lambda e: None)


def test_devices_of_the_exploration_bucket_shuffle_within_windows_and_say_so():
    """Every re-rank of an exploring device is logged with its window and the page's offset; the first one shuffles
    the cloud's order within the windows (each item stays in the window of its rank). The default world explores
    nothing."""
    sim, events = run_in_memory(users=30, seed=3, client={"exploration_share": 1.0, "exploration_window": 4})
    pages = {e["request_id"]: [c["item_id"] for c in e["candidates"]] for e in events
             if e["event_type"] == "page_request"}
    reranks = [e for e in events if e["event_type"] == "rerank"]
    assert reranks and all(e["exploration"]["window"] == 4 for e in reranks)
    offsets = {}
    for e in reranks:
        assert offsets.setdefault(e["request_id"], e["exploration"]["offset"]) == e["exploration"]["offset"]
    shuffled = 0
    for e in (e for e in reranks if e["trigger"] == "page"):
        rank = {item: r for r, item in enumerate(pages[e["request_id"]])}
        offset = e["exploration"]["offset"]
        assert all((rank[item] - offset) // 4 == (p - offset) // 4 for p, item in enumerate(e["order"]))
        shuffled += e["order"] != pages[e["request_id"]]
    assert shuffled > 0
    _, plain = run_in_memory(users=10, seed=3)
    assert not any("exploration" in e for e in plain if e["event_type"] == "rerank")
