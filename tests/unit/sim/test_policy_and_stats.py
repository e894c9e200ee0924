import numpy as np
import pytest

from edgerec.contracts.policy import CloudOrder
from edgerec.sim.config import load_sim_config
from edgerec.sim.engine import Simulator, simulate_in_memory
from edgerec.sim.stats import compute_stats
from edgerec.sim.world import long_term_utility

pytestmark = pytest.mark.unit


class Reverse:
    """A policy that reverses the order and records what it saw."""

    model_version = "v-test"

    def __init__(self):
        self.observed, self.calls = [], []

    def observe(self, event):
        self.observed.append(event["event_id"])

    def rerank(self, ctx):
        self.calls.append((ctx.trigger, ctx.item_ids.copy(), len(ctx.history)))
        return np.arange(len(ctx.item_ids))[::-1]


def test_policy_hook_reorders_exposures_and_sees_every_event():
    policy = Reverse()
    _, events = simulate_in_memory(load_sim_config(users=15, seed=2), policy)
    assert policy.observed == [ev["event_id"] for ev in events]
    assert all(ev["model_version"] == "v-test" for ev in events)
    reranks = [ev for ev in events if ev["event_type"] == "rerank"]
    assert len(reranks) == len(policy.calls)
    for ev, (trigger, before, seen) in zip(reranks, policy.calls, strict=True):
        assert ev["trigger"] == trigger
        assert ev["order"] == before[::-1].tolist()  # logged order is the policy's order
        assert seen > 0
    # the item exposed after a re-rank is the head of the logged order
    for a, b in zip(events, events[1:], strict=False):
        if a["event_type"] == "rerank" and b["event_type"] == "exposure":
            assert b["item_id"] == a["order"][0]


def test_each_device_runs_its_own_policy_and_the_others_are_untouched():
    cfg = load_sim_config(users=6, seed=2)
    _, alone = simulate_in_memory(cfg)
    policy = Reverse()
    sim = Simulator(cfg, policy_of=lambda device: policy if device == "dev-0000001" else CloudOrder())
    events = []
    for day in cfg.dates:
        sim.simulate_day(day, events.append)
    on_model = [e for e in events if e["device_id"] == "dev-0000001"]
    assert on_model and policy.observed == [e["event_id"] for e in on_model]  # it sees its own device's events only
    assert {e["model_version"] for e in on_model} == {"v-test"}
    assert {e["model_version"] for e in events if e not in on_model} == {None}
    # the other devices' days are the cloud order's, event for event
    assert [e for e in events if e not in on_model] == [e for e in alone if e["device_id"] != "dev-0000001"]


def test_a_policy_returning_no_permutation_is_refused():
    class Broken(Reverse):
        def rerank(self, ctx):
            return np.zeros(len(ctx.item_ids), dtype=int)

    with pytest.raises(ValueError, match="no permutation"):
        simulate_in_memory(load_sim_config(users=3, seed=2), Broken())


def ev(kind, ts, item, **extra):
    return {"event_type": kind, "ts": ts, "event_id": f"e{ts}", "user_id": "u", "session_id": "s",
            "request_id": "r", "item_id": item, **extra}


def test_stats_on_a_hand_built_session():
    category = {1: 10, 2: 10, 3: 20, 4: 10}
    events = [
        ev("exposure", 1, 1, position=0, exposure_duration_ms=500),   # cat 10, first, skipped
        ev("exposure", 2, 2, position=1, exposure_duration_ms=2000),  # cat 10, second, clicked
        ev("click", 3, 2, position=1),
        ev("exposure", 4, 3, position=2, exposure_duration_ms=400),   # cat 20, skipped
        ev("exposure", 5, 4, position=6, exposure_duration_ms=1800),  # cat 10 after click, clicked
        ev("click", 6, 4, position=6),
    ]
    s = compute_stats(events, category)
    assert (s.users, s.sessions, s.ctr.hits, s.ctr.total) == (1, 1, 2, 4)
    assert {k: (r.hits, r.total) for k, r in s.ctr_by_position.items()} == {0: (1, 3), 5: (1, 1)}
    assert {k: (r.hits, r.total) for k, r in s.ctr_by_reexposure.items()} == {0: (1, 3), 1: (1, 1)}
    assert (s.next_click_match.hits, s.next_click_match.total) == (1, 1)
    assert s.next_click_base == [0.5]  # exposures between the clicks: cat 20, cat 10
    assert (s.ctr_long_exposure.hits, s.ctr_long_exposure.total) == (2, 2)
    assert (s.ctr_fast_scroll.hits, s.ctr_fast_scroll.total) == (0, 2)
    assert s.duration_clicked == [2000, 1800]


def _record_appeal(cfg):
    calls = []
    sim = Simulator(cfg, oracle=calls.append)
    events = []
    for day in cfg.dates:
        sim.simulate_day(day, events.append)
    return sim, events, calls


# every in-session effect off but the return to viewed items: appeal = long-term utility + the revisit boost
_REVISIT_ONLY = {"click_boost_category": 0.0, "click_boost_brand": 0.0, "deep_action_boost": 0.0,
                 "fatigue_per_exposure": 0.0, "delete_penalty": 0.0, "revisit_boost": 6.0,
                 "short_term_half_life_s": 900.0}


def test_the_oracle_sees_every_rerank_and_changes_no_event():
    cfg = load_sim_config(users=20, seed=5)
    _, plain = simulate_in_memory(cfg)
    _, events, calls = _record_appeal(cfg)
    assert events == plain  # recording the appeal draws nothing random
    reranks = [e for e in events if e["event_type"] == "rerank"]
    assert len(calls) == len(reranks) > 50
    for call, event in zip(calls, reranks, strict=True):
        assert (call.request_id, call.ts, call.items) == (event["request_id"], event["ts"], event["order"])
        assert len(call.appeal) == len(call.utility) == len(call.cloud_score) == len(call.items)
        if event["trigger"] == "page":  # the page as the cloud ranked it, nothing exposed yet
            assert call.cloud_score == sorted(call.cloud_score, reverse=True) and call.exposed_before == 0
        else:
            assert call.exposed_before > 0


def test_the_appeal_is_the_utility_plus_the_boost_of_an_earlier_view():
    cfg = load_sim_config(users=30, seed=3, preset="revisit", behaviour=_REVISIT_ONLY)
    sim, events, calls = _record_appeal(cfg)
    viewed: dict[str, dict[int, int]] = {}  # session -> item -> ts of its latest page view
    sessions = {e["request_id"]: e["session_id"] for e in events if e["event_type"] == "page_request"}
    users = {e["session_id"]: int(e["user_id"].removeprefix("u")) for e in events}
    views = sorted((e["ts"], e["session_id"], e["item_id"]) for e in events if e["event_type"] == "page_view")
    boosted = plain = 0
    for request_id, ts, items, appeal, told_utility, _, _ in calls:
        session = sessions[request_id]
        for t, s, item in views:
            if s == session and t <= ts:
                viewed.setdefault(session, {})[item] = t
        user = sim.user(users[session])
        utility = long_term_utility(cfg.world, sim.catalog, user, sim.catalog.row_of(np.array(items)))
        assert told_utility == pytest.approx(utility.tolist())
        for item, u, a in zip(items, utility.tolist(), appeal, strict=True):
            seen = viewed.get(session, {}).get(item)
            if seen is None:
                assert a == pytest.approx(u)
                plain += 1
            else:
                assert a > u + 0.5  # the boost of 6, decayed over at most a few half-lives
                boosted += 1
    assert boosted > 20 and plain > 1000
