"""The guardrails carried out on real channels: a confident fall withdraws the canary and alerts, a pass promotes it
to stable, a hold stops both; every decision in the audit log with its evidence, and the day's report."""

from __future__ import annotations

import pytest

from deploy import audit
from deploy.channels import read_channel
from deploy.guardrails import load_policy, run_guardrails
from deploy.push import deploy_version
from deploy.release import hold, promote
from edgerec.reports import CanaryAnalysis, ReleaseDecision
from tests.integration.deploy.conftest import V1, V2

pytestmark = pytest.mark.integration
DS = "2026-11-03"


def analysis(canary: str, ctr: float, high: float) -> CanaryAnalysis:
    figures = {"CTR": {"value": ctr, "low": ctr - 0.1, "high": high},
               "clicks per device": {"value": ctr, "low": ctr - 0.1, "high": high}}
    return CanaryAnalysis(ds=DS, canary=canary, stable=None,
                          versions={canary: {"devices": 30, "exposures": 3000}, "cloud order": {"devices": 270}},
                          comparisons={"canary vs cloud order": figures})


@pytest.fixture
def channels(released):
    settings, targets = released()
    for v in (V1, V2):
        deploy_version(settings, targets, v)
    promote(settings, targets, V1, "stable", 100, "first release")
    promote(settings, targets, V2, "canary", 10, "daily")
    yield settings, targets
    targets.close()


def decisions(targets) -> list[dict]:
    return [r for r in audit.entries(targets.audit_log) if r["action"] == "decision"]


def test_a_confident_fall_withdraws_the_canary_and_records_why(channels):
    settings, targets = channels
    report = run_guardrails(settings, targets, DS, analysis(V2, -0.4, -0.2), load_policy())
    assert report.action == "rollback" and report.done == f"canary {V2} withdrawn (0% of devices)"
    canary = read_channel(targets.cdn, "canary", targets.key)
    assert (canary.version, canary.rollout_percent) == (V2, 0.0)  # its devices are back on stable
    assert read_channel(targets.cdn, "stable", targets.key).version == V1
    moves = [(r["action"], r.get("phase"), r.get("percent")) for r in audit.entries(targets.audit_log)][-3:]
    assert moves == [("rollback", "intent", 0.0), ("rollback", "done", 0.0), ("decision", None, None)]
    assert decisions(targets)[-1]["evidence"]["CTR"] == {"value": -0.4, "low": -0.5, "high": -0.2}
    assert ReleaseDecision.read(settings.layout(DS)) == report


def test_a_pass_promotes_the_canary_to_stable_and_a_hold_stops_it(channels):
    settings, targets = channels
    hold(targets, "canary", "launch week")
    held = run_guardrails(settings, targets, DS, analysis(V2, +0.05, +0.2), load_policy())
    assert held.action == "held" and read_channel(targets.cdn, "stable", targets.key).version == V1
    hold(targets, "canary", "launch week over", on=False)
    report = run_guardrails(settings, targets, DS, analysis(V2, +0.05, +0.2), load_policy())
    assert report.action == "promote" and report.done == f"stable -> {V2} (100%)"
    stable = read_channel(targets.cdn, "stable", targets.key)
    assert (stable.version, stable.rollout_percent, stable.previous) == (V2, 100.0, V1)
    assert [d["decision"] for d in decisions(targets)] == ["held", "promote"]
