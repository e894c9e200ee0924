"""The closed-loop replay: both arms on the same users, the report's figures, and its files."""

import datetime as dt
import json

import numpy as np
import pytest

from edgerec.edge.replay import replay, to_markdown, write
from edgerec.sim.config import load_sim_config
from edgerec.sim.engine import Simulator
from tests.bundles import make_bundle, order_bundle

pytestmark = pytest.mark.unit


def test_replay_compares_both_arms_and_writes_the_report(bundle, tmp_path):
    cfg = load_sim_config(users=5, seed=3)
    seen = []
    result = replay(cfg, bundle, dt.date(2026, 11, 5), progress=lambda arm, done: seen.append((arm, done)))
    cloud, edge = result["arms"]["cloud order"], result["arms"]["EdgeRec"]
    assert seen[-1] == ("EdgeRec", 5) and ("cloud order", 5) in seen
    assert result["version"] == bundle.name and cloud["sessions"] == edge["sessions"] > 0  # the same users
    for arm in (cloud, edge):
        assert arm["ctr"] == pytest.approx(arm["clicks"] / arm["exposures"])
        # each buy sold at its item's price: level + 1, from 1 to the world's number of levels
        assert arm["buys"] <= arm["gmv"] <= arm["buys"] * cfg.world.n_price_levels
        assert len(arm["ctr_by_position"]) == cfg.client.page_size
        assert sum(arm["exposures_by_position"]) == arm["exposures"]
    assert cloud["reranks_per_session"] == pytest.approx(cloud["page_requests"] / cloud["sessions"])
    assert edge["reranks_per_session"] > cloud["reranks_per_session"]  # every trigger, not only page requests
    assert edge["rerank_ms"]["n"] > 0 and edge["rerank_ms"]["p99"] >= edge["rerank_ms"]["p50"]
    assert result["gain"]["clicks"] == pytest.approx(edge["clicks"] / cloud["clicks"] - 1)
    paths = write(result, tmp_path / "replay")
    assert json.loads(paths["json"].read_text())["users"] == 5
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"
    table = to_markdown(result)
    assert "| clicks |" in table and "| re-rankings per session |" in table and "CTR at positions 25-49" in table


def test_diversity_runs_through_the_replay(bundle):
    result = replay(load_sim_config(users=5, seed=3), bundle, dt.date(2026, 11, 5), diversity=0.7)
    assert result["diversity"] == 0.7 and result["arms"]["EdgeRec"]["exposures"] > 0


def test_paired_gains_resample_the_same_units_in_both_arms():
    from edgerec.edge.replay import paired_gains

    # exposures, clicks, page views, buys, GMV per user-day
    cloud = np.array([[10, 1, 1, 0, 0], [100, 10, 8, 2, 5], [50, 5, 5, 1, 3]], dtype=float)
    doubled = paired_gains(cloud, cloud * [1, 2, 2, 3, 4])
    assert doubled["clicks"] == {"value": 1.0, "low": 1.0, "high": 1.0}  # every unit doubled: no width
    assert doubled["CTR"]["value"] == pytest.approx(1.0) and doubled["exposures (PV)"]["value"] == 0.0
    assert doubled["buys"]["value"] == pytest.approx(2.0) and doubled["GMV"]["value"] == pytest.approx(3.0)
    # users differ tenfold, yet a paired +10% on each stays narrow: what a user brings cancels
    assert paired_gains(cloud, cloud * [1, 1.1, 1, 1, 1])["clicks"]["low"] == pytest.approx(0.1)
    mixed = paired_gains(cloud, np.array([[10, 2, 1, 0, 0], [100, 9, 8, 2, 5], [50, 5, 5, 1, 3]], dtype=float))
    assert mixed["clicks"]["low"] < mixed["clicks"]["value"] < mixed["clicks"]["high"]
    # a draw without buys in the base arm has no ratio: left out of the interval, never an infinite bound
    some = paired_gains(cloud, cloud + [0, 0, 0, 1, 2])
    assert np.isfinite([some["buys"]["low"], some["buys"]["high"]]).all() and some["buys"]["value"] == 1.0
    assert some["GMV"]["value"] == pytest.approx(0.75)  # (8 + 3 x 2) / 8 - 1
    nobody = paired_gains(np.zeros((0, 5)), np.zeros((0, 5)))  # no user had a session: no gain, not a crash
    assert np.isnan([nobody["clicks"]["value"], nobody["clicks"]["low"], nobody["clicks"]["high"]]).all()


def test_arms_without_any_user_day_compare_to_no_gain_instead_of_crashing():
    from edgerec.edge.replay import RECALL_ARMS, Arm, compare_sources, paired

    arms = [Arm(name, page_size=4, cloud_delay_ms=0, prices={}) for name in ("cloud order", "EdgeRec", *RECALL_ARMS)]
    units, gains = paired(arms[0], arms[1])
    assert units == 0 and np.isnan(gains["GMV"]["value"])
    sources = compare_sources(arms, "r1")
    assert sources["units"] == 0 and np.isnan(sources["gains"]["PWPRec recall vs cloud ranker"]["clicks"]["value"])


def test_an_arm_counts_what_the_buys_sold_at_the_items_prices():
    from edgerec.edge.replay import Arm

    arm = Arm("EdgeRec", page_size=4, cloud_delay_ms=0, prices={7: 3, 8: 1})
    base = {"user_id": "u1", "session_id": "s1", "ts": 86_400_000 + 5}
    for item, actions in ((7, {"buy": True}), (8, {"cart": True, "buy": True}), (7, {})):
        arm(base | {"event_type": "page_view", "item_id": item, "actions": actions})
    arm({"user_id": "u2", "session_id": "s2", "ts": 5, "event_type": "page_view", "item_id": 7,
         "actions": {"buy": True}})
    summary = arm.summary()
    assert (summary["item_page_views"], summary["carts"], summary["buys"], summary["gmv"]) == (4, 1, 3, 7)
    assert arm.by_unit == {("u1", 1): [0, 0, 3, 2, 4], ("u2", 0): [0, 0, 1, 1, 3]}


def test_several_days_give_intervals_over_user_days(bundle):
    cfg, first = load_sim_config(users=4, seed=3), dt.date(2026, 11, 5)
    result = replay(cfg, bundle, first, days=2)
    events = []
    sim = Simulator(cfg)
    for d in range(2):
        sim.simulate_day(first + dt.timedelta(days=d), events.append)
    active = {(e["user_id"], e["ts"] // 86_400_000) for e in events if e["event_type"] == "exposure"}
    assert {d for _, d in active} == {20762, 20763}  # both days, not only the first
    assert result["days"] == 2 and result["units"] == len(active)  # the user-days with a session, both arms alike
    gains = result["intervals"]
    assert set(gains) == {"exposures (PV)", "clicks", "CTR", "item page views", "buys", "GMV"}
    assert gains["clicks"]["value"] == pytest.approx(result["gain"]["clicks"])
    assert gains["clicks"]["low"] <= gains["clicks"]["value"] <= gains["clicks"]["high"]
    assert "the paper, online" in to_markdown(result) and "| clicks |" in to_markdown(result)


def test_seeds_draw_further_users_of_the_same_world(bundle):
    cfg, day = load_sim_config(users=3, seed=3), dt.date(2026, 11, 5)
    result = replay(cfg, bundle, day, seeds=2)
    events = []
    Simulator(cfg).simulate_day(day, events.append, users=range(6))
    sessions = {e["session_id"] for e in events}
    assert result["users"] == 6 and result["seeds"] == 2
    assert result["arms"]["cloud order"]["sessions"] == len(sessions)  # users 0..5: draw 1 is users 3..5
    # the premise that makes the count above tell the draws apart: draw 1's users (3..5) have sessions that day
    assert {e["user_id"] for e in events} & {"u0000003", "u0000004", "u0000005"}
    assert "2 draws of users" in to_markdown(result)


def test_lost_clicks_only_with_the_whole_interval_below_zero():
    from edgerec.edge.replay import lost_clicks

    def result(low, value, high):
        return {"units": 1200, "intervals": {"clicks": {"value": value, "low": low, "high": high}}}

    assert lost_clicks(result(-0.30, -0.20, -0.10)) == ("clicks -20.00% [-30.00%, -10.00%] against the cloud order "
                                                       "over 1,200 user-days")
    assert lost_clicks(result(-0.30, -0.20, 0.01)) is None  # a fall within noise is not a loss
    assert lost_clicks(result(0.01, 0.05, 0.09)) is None
    assert lost_clicks(result(float("nan"), float("nan"), float("nan"))) is None  # no clicks at all: nothing said


class FirstItems:
    """A candidate hook that answers every page with the catalog's first items, best first."""

    def __init__(self, cfg):
        from types import SimpleNamespace

        from edgerec.sim.world import build_catalog

        self.items = build_catalog(cfg.world, cfg.seed).item_id
        self.runtime = SimpleNamespace(version="v20261104-0000abcd")
        self.asked: list[int] = []

    def __call__(self, user_id, t, session, k):
        self.asked.append(k)
        return self.items[:k], np.linspace(1.0, 0.0, k, endpoint=False)


def test_a_candidate_hook_replaces_the_cloud_ranker_less_what_the_session_has_shown():
    cfg = load_sim_config(users=20, seed=3)
    hook, events = FirstItems(cfg), []
    Simulator(cfg, candidates=hook).simulate_day(dt.date(2026, 11, 5), events.append)
    pages = [e for e in events if e["event_type"] == "page_request"]
    want = cfg.client.candidates_per_request
    assert [c["item_id"] for c in pages[0]["candidates"]] == hook.items[:want].tolist()
    later = next(p for p in pages if p["page_no"] == 1)  # a session's second page
    shown = {e["item_id"] for e in events if e["event_type"] == "exposure" and e["session_id"] == later["session_id"]
             and e["ts"] < later["ts"]}
    second = [c["item_id"] for c in later["candidates"]]
    assert shown and not shown & set(second)  # what the session showed is not sent again
    assert second == [i for i in hook.items[:want + len(shown)].tolist() if i not in shown][:want]
    assert hook.asked[0] == want


def test_with_a_recall_the_replay_compares_four_arms(bundle):
    cfg = load_sim_config(users=4, seed=3)
    result = replay(cfg, bundle, dt.date(2026, 11, 5), recall=FirstItems(cfg))
    sources = result["recall"]
    assert list(sources["arms"]) == ["cloud order", "EdgeRec", "PWPRec recall", "PWPRec recall + EdgeRec"]
    cloud = result["arms"]["cloud order"]
    assert sources["arms"]["cloud order"] == {k: cloud[k] for k in sources["arms"]["cloud order"]}
    assert sources["version"] == "v20261104-0000abcd" and sources["units"] > 0
    gains = sources["gains"]["PWPRec recall vs cloud ranker"]["clicks"]
    recall, cloud = sources["arms"]["PWPRec recall"]["clicks"], sources["arms"]["cloud order"]["clicks"]
    assert gains["value"] == pytest.approx(recall / cloud - 1) and gains["low"] <= gains["high"]
    table = to_markdown(result)
    assert "| PWPRec recall + EdgeRec |" in table and "| EdgeRec on the recall's candidates |" in table


def test_other_rules_run_as_an_arm_of_their_own(bundle):
    """--rules: the same bundle under other rules on the same users; the report counts what each rule did."""
    from edgerec.contracts.rules import BusinessRules, CategoryCap
    from edgerec.edge.replay import RULES_ARM

    cfg = load_sim_config(users=5, seed=3, world={"out_of_stock_share": 0.2, "no_image_share": 0.2})
    rules = BusinessRules(remove_out_of_stock=True, demote_no_image=0.5, category_cap=CategoryCap(max_items=2,
                                                                                                  window=4))
    result = replay(cfg, bundle, dt.date(2026, 11, 5), rules=rules)
    own, other = result["arms"]["EdgeRec"]["rules"], result["rules"]
    assert own["describe"] == "none" and own["fired"]["reranks"] == 0
    fired = other["fired"]
    assert fired["reranks"] >= fired["reranks_changed"] > 0
    assert fired["removed_out_of_stock"] > 0 and fired["demoted_no_image"] > 0 and fired["moved_by_cap"] > 0
    assert other["arm"]["sessions"] == result["arms"]["EdgeRec"]["sessions"]
    assert set(other["gains"]) == {"exposures (PV)", "clicks", "CTR", "item page views", "buys", "GMV"}
    table = to_markdown(result)
    assert f"| {RULES_ARM} |" in table and "Business rules of the bundle: none." in table
    assert "removed out of stock" in table


def test_another_bundle_runs_as_an_arm_compared_with_the_first(bundle, tmp_path):
    """--against: a second bundle on the device for the same users. Against itself it gains exactly nothing (the
    arms are the same users and seed); a bundle that turns the cloud's list upside down differs, and is named."""
    from edgerec.edge.replay import AGAINST_ARM

    cfg = load_sim_config(users=5, seed=3)
    itself = replay(cfg, bundle, dt.date(2026, 11, 5), against=bundle)["against"]
    assert itself["version"] == bundle.name and itself["units"] > 0
    # (buys and GMV too, where 5 users bought anything at all)
    assert {m: g["value"] for m, g in itself["gains"].items() if m not in ("buys", "GMV")} == {
        "exposures (PV)": 0.0, "clicks": 0.0, "CTR": 0.0, "item page views": 0.0}
    reversed_ = tmp_path / "v20261104-0000dead"
    order_bundle(reversed_, reverse=True)
    result = replay(cfg, bundle, dt.date(2026, 11, 5), against=reversed_)
    other, edge = result["against"], result["arms"]["EdgeRec"]
    assert other["version"] == reversed_.name and other["arm"]["sessions"] == edge["sessions"]
    assert other["arm"]["clicks"] != edge["clicks"]
    assert other["gains"]["clicks"]["value"] == pytest.approx(other["arm"]["clicks"] / edge["clicks"] - 1)
    assert "gmv" in other["arm"] and set(other["gains"]) >= {"buys", "GMV"}
    assert other["describe"] == "none"  # the other bundle's own rules (its manifest has none)
    # each arm its own device: the EdgeRec arm's re-rank count is its own, the same as without the other arm
    alone = replay(cfg, bundle, dt.date(2026, 11, 5))
    assert edge["rerank_ms"]["n"] == alone["arms"]["EdgeRec"]["rerank_ms"]["n"] and edge["clicks"] == alone[
        "arms"]["EdgeRec"]["clicks"]
    section = to_markdown(result).split("Against another bundle")[1]
    assert f"| {AGAINST_ARM} ({reversed_.name}) |" in section and "| GMV |" in section
    assert section.startswith(f": {reversed_.name} on the device, the same users (its business rules: none):")


def test_the_replay_command_runs_a_challenger_and_names_a_missing_bundle(tmp_path):
    from typer.testing import CliRunner

    from edgerec.contracts.signing import exporter_key
    from pipeline.cli import app

    home = tmp_path / "home"
    env = {"EDGEREC_HOME": str(home)}
    bundle = tmp_path / "v20261104-0000beef"  # signed with the home's key, as an export signs it
    make_bundle(bundle, signer=exporter_key(home / "release" / "signing" / "ed25519.pem", home / "release" / "trusted",
                                            embedded=True))
    missing = tmp_path / "nowhere"
    refused = CliRunner().invoke(app, ["replay", "--bundle", str(bundle), "--against", str(missing)], env=env)
    assert refused.exit_code == 2 and f"no bundle at {missing}" in refused.output
    result = CliRunner().invoke(app, ["replay", "--bundle", str(bundle), "--against", str(bundle), "--users", "5",
                                      "--date", "2026-11-05"], env=env)
    assert result.exit_code == 0, result.output
    assert f"Against another bundle: {bundle.name} on the device" in result.output
    out = home / "reports" / "replay" / f"{bundle.name}-vs-{bundle.name}"  # not the plain replay's directory
    against = json.loads((out / "replay.json").read_text())["against"]
    assert against["version"] == bundle.name and against["units"] > 0
    assert against["gains"]["exposures (PV)"]["value"] == 0.0  # the same bundle on the same users


def test_the_other_bundle_s_own_rules_are_reported_with_its_arm(bundle, tmp_path):
    from edgerec.contracts.rules import BusinessRules

    ruled = tmp_path / "v20261104-0000cafe"
    order_bundle(ruled, reverse=False, rules=BusinessRules(remove_out_of_stock=True))
    cfg = load_sim_config(users=5, seed=3, world={"out_of_stock_share": 0.2})
    result = replay(cfg, bundle, dt.date(2026, 11, 5), against=ruled)
    other = result["against"]
    assert other["describe"] != "none" and other["fired"]["removed_out_of_stock"] > 0
    assert result["arms"]["EdgeRec"]["rules"]["fired"]["removed_out_of_stock"] == 0  # the first bundle has none
    assert "removed out of stock" in to_markdown(result).split("Against another bundle")[1]
