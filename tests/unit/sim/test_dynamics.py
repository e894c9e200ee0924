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
