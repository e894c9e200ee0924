"""The exploration bucket: which devices explore, the shuffle within windows, and the examination curve estimated
from the clicks of explored windows."""

import numpy as np
import pytest

from edgerec.edge.exploration import ExploredExposures, examination, explore, explore_order, in_bucket

pytestmark = pytest.mark.unit


def test_a_stable_share_of_devices_explores():
    devices = [f"dev-{i:07d}" for i in range(20_000)]
    assert not any(in_bucket(d, 0.0) for d in devices[:100]) and all(in_bucket(d, 1.0) for d in devices[:100])
    assert 0.008 < np.mean([in_bucket(d, 0.01) for d in devices]) < 0.012
    assert [in_bucket(d, 0.3) for d in devices[:50]] == [in_bucket(d, 0.3) for d in devices[:50]]


def test_the_shuffle_stays_within_windows_of_display_positions():
    rng = np.random.default_rng(1)
    for shown_before, offset in ((0, 0), (3, 2), (17, 4)):
        order = explore(12, shown_before, 5, offset, rng)
        assert sorted(order.tolist()) == list(range(12))
        window = (shown_before + np.arange(12) - offset) // 5
        assert (window[order] == window).all()  # every candidate stays in the window of its display position
    moved = [explore(12, 0, 5, 0, np.random.default_rng(s)) for s in range(20)]
    assert any((m != np.arange(12)).any() for m in moved)


def test_a_rerank_within_a_window_leaves_the_rest_of_that_window_as_shuffled():
    """Shown so far: positions 0-6 of a page whose windows start at 2, 7, 12 (offset 2, window 5): positions 7-11 are
    a new window, so everything is re-ranked and shuffled; from position 9 on, positions 9-11 (items 20, 21, 22 of the
    order before) stay, and the re-ranker's order of the others is shuffled from 12 on."""
    rng = np.random.default_rng(0)
    ranked = [30, 31, 32, 33, 34, 35]
    at_boundary = explore_order([1, 2, 3, 4, 5, 6], ranked, 7, 5, 2, rng)
    assert sorted(at_boundary) == ranked
    previous = [20, 21, 22, 23, 24, 25]
    within = explore_order(previous, [25, 24, 23, 22, 21, 20], 9, 5, 2, rng)
    assert within[:3] == [20, 21, 22] and sorted(within[3:]) == [23, 24, 25]
    # a candidate the re-ranker left out (a rule removed it) is left out of the kept part too
    assert explore_order(previous, [25, 24, 23, 21, 20], 9, 5, 2, rng)[:2] == [20, 21]
    # nothing shown yet: no window has begun, the first one is shuffled too
    firsts = {tuple(explore_order(previous, previous, 0, 5, 2, np.random.default_rng(s))[:2]) for s in range(20)}
    assert len(firsts) > 1


def test_examination_from_explored_windows():
    """Windows over positions {0, 1}: 6 clicks at 0, 3 at 1 (e1 / e0 = 0.5); over {1, 2}: 4 at 1, 1 at 2 (e2 / e1 =
    0.25). A window without a click and a position exposed only there say nothing."""
    windows, positions, clicks = [], [], []
    for w, clicked in enumerate([0] * 6 + [1] * 3):
        windows += [w, w]
        positions += [0, 1]
        clicks += [clicked == 0, clicked == 1]
    for w, clicked in enumerate([1] * 4 + [2] * 1, start=100):
        windows += [w, w]
        positions += [1, 2]
        clicks += [clicked == 1, clicked == 2]
    windows += [200, 200, 200]
    positions += [0, 1, 3]
    clicks += [0, 0, 0]
    e = examination(np.array(windows), np.array(positions), np.array(clicks, dtype=float), 5)
    assert np.allclose(e[:3], [1.0, 0.5, 0.125]) and np.isnan(e[3:]).all()
    # a bootstrap weight counts a window that many times: twice the windows over {1, 2} change nothing
    weights = np.where(np.array(windows) >= 100, 2.0, 1.0)
    assert np.allclose(examination(np.array(windows), np.array(positions), np.array(clicks, dtype=float), 5,
                                   weights=weights)[:3], [1.0, 0.5, 0.125])
    # counting the windows over {0, 1} with a click at 1 three times: e1 / e0 = 9 / 6
    weights = np.where((np.array(windows) >= 6) & (np.array(windows) < 9), 3.0, 1.0)
    assert np.allclose(examination(np.array(windows), np.array(positions), np.array(clicks, dtype=float), 5,
                                   weights=weights)[:3], [1.0, 1.5, 0.375])


def test_examination_recovers_a_known_curve_whatever_the_order_brings():
    """Items ranked by appeal (the better first, as a cloud ranks), shuffled within windows, clicked with probability
    examination x appeal: the curve comes back, though the raw click-through rate by position also falls with the
    appeal of what is ranked there."""
    rng = np.random.default_rng(0)
    true = np.array([1.0, 0.8, 0.6, 0.5, 0.4, 0.3])
    windows, positions, clicks = [], [], []
    for page in range(40_000):
        appeal = np.sort(rng.uniform(0.05, 0.5, 6))[::-1]
        offset = int(rng.integers(3))
        order = explore(6, 0, 3, offset, rng)
        shown = np.arange(6)
        windows += (page * 10 + (shown - offset) // 3 + 1).tolist()
        positions += shown.tolist()
        clicks += (rng.random(6) < true * appeal[order]).tolist()
    e = examination(np.array(windows), np.array(positions), np.array(clicks, dtype=float), 6)
    assert np.allclose(e, true, rtol=0.06)
    raw = np.bincount(positions, weights=clicks) / np.bincount(positions)
    assert raw[-1] / raw[0] < 0.8 * true[-1]  # the naive curve confounds position with rank


def test_the_explored_exposures_of_a_log():
    """Two pages, one explored (window 3, offset 1: windows {0}, {1, 2, 3}, {4, 5, 6}); a click on position 2."""
    def event(kind, request, **fields):
        return {"event_type": kind, "request_id": request, "event_id": f"{request}-{kind}", "user_id": "u1"} | fields

    events = [event("rerank", "r1", exploration={"window": 3, "offset": 1}),
              *(event("exposure", "r1", position=p) for p in range(5)),
              event("click", "r1", position=2),
              event("rerank", "r2"), event("exposure", "r2", position=0), event("click", "r2", position=0)]
    windows, positions, clicks, _ = ExploredExposures.of(events).arrays()
    assert positions.tolist() == [0, 1, 2, 3, 4] and clicks.tolist() == [0, 0, 1, 0, 0]
    assert windows.tolist() == [0, 1, 1, 1, 2]


def test_the_positions_command_reads_the_bucket_from_a_raw_log(tmp_path):
    """`edgerec logs positions`: the curve by band from the explored re-ranks of a simulated log written to disk; a
    log without any names what is missing."""
    import json

    from typer.testing import CliRunner

    from edgerec.sim.config import load_sim_config
    from edgerec.sim.writer import simulate
    from pipeline.cli import app

    explored = tmp_path / "explored"
    simulate(load_sim_config(users=40, seed=3, client={"exploration_share": 1.0}), explored)
    result = CliRunner().invoke(app, ["logs", "positions", str(explored / "events"), "--rounds", "2", "--json"])
    assert result.exit_code == 0, result.output
    curve = json.loads(result.output)
    assert curve["explored_exposures"] > 1000 and curve["clicks"] > 0 and len(curve["bands"]) == 10
    first = curve["bands"][0]
    assert first["positions"] == "0-4" and first["estimate"] == 1.0 and first["raw_ctr_ratio"] == 1.0
    assert sum(b["exposures"] for b in curve["bands"]) == curve["explored_exposures"]
    table = CliRunner().invoke(app, ["logs", "positions", str(explored / "events"), "--rounds", "0"]).output
    assert "| positions | examination (95% interval) |" in table and "| 45-49 |" in table

    plain = tmp_path / "plain"
    simulate(load_sim_config(users=5, seed=3), plain)
    refused = CliRunner().invoke(app, ["logs", "positions", str(plain / "events")])
    assert refused.exit_code == 1 and "no exposure under an explored re-rank" in refused.output
