"""The closed-loop replay: both arms on the same users, the report's figures, and its files."""

import datetime as dt
import json

import pytest

from edgerec.edge.replay import replay, to_markdown, write
from edgerec.sim.config import load_sim_config

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
