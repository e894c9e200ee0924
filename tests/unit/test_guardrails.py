"""The guardrails' decision on explicit canary analyses: rollback on a confident fall, promote after the policy's
passing days, wait on thin evidence or a fall within noise, nothing while held; and the policy file's errors."""

import pytest

from deploy.guardrails import Policy, decide, load_policy
from edgerec.errors import ConfigError
from edgerec.reports import CanaryAnalysis

pytestmark = pytest.mark.unit
POLICY = Policy(min_devices=10, min_exposures=100, must_not_fall={"CTR": 0.02, "clicks per device": 0.05}, days=2)


def analysis(ctr: tuple[float, float, float], clicks=(0.0, -0.1, 0.1), devices=20, exposures=2000,
             against="canary vs cloud order") -> CanaryAnalysis:
    figures = {"CTR": dict(zip(("value", "low", "high"), ctr, strict=True)),
               "clicks per device": dict(zip(("value", "low", "high"), clicks, strict=True))}
    return CanaryAnalysis(ds="2026-11-03", canary="v2", stable=None,
                          versions={"v2": {"devices": devices, "exposures": exposures}, "cloud order": {}},
                          comparisons={against: figures})


def test_a_confident_fall_beyond_the_allowance_rolls_back():
    d = decide(analysis(ctr=(-0.30, -0.45, -0.12)), POLICY)
    assert d.action == "rollback" and d.canary == "v2" and d.against == "canary vs cloud order"
    assert "CTR -30.00% [-45.00%, -12.00%] (allowed -2%)" in d.reasons[0]
    assert d.evidence["CTR"] == {"value": -0.30, "low": -0.45, "high": -0.12}


def test_a_fall_within_noise_waits_and_a_pass_counts_days_until_promotion():
    assert decide(analysis(ctr=(-0.30, -0.60, +0.05)), POLICY).action == "wait"  # the interval reaches zero
    first = decide(analysis(ctr=(+0.01, -0.2, +0.2)), POLICY)
    assert (first.action, first.passing_days) == ("wait", 1) and "day 1 of 2" in first.reasons[0]
    second = decide(analysis(ctr=(+0.01, -0.2, +0.2)), POLICY, passed_before=first.passing_days)
    assert (second.action, second.passing_days) == ("promote", 2)
    # a fall within the allowance passes
    assert decide(analysis(ctr=(-0.015, -0.2, -0.01)), POLICY, passed_before=1).action == "promote"


def test_thin_evidence_no_comparison_a_hold_and_no_canary_decide_nothing():
    thin = decide(analysis(ctr=(-0.9, -0.95, -0.8), devices=3), POLICY)
    assert thin.action == "wait" and "too little evidence: 3 devices" in thin.reasons[0]
    alone = CanaryAnalysis(ds="2026-11-03", canary="v2", stable=None, versions={}, comparisons={})
    assert decide(alone, POLICY).action == "wait"
    held = decide(analysis(ctr=(-0.9, -0.95, -0.8)), POLICY, hold={"by": "alice", "why": "launch week"})
    assert held.action == "held" and held.reasons == ["automation paused on canary by alice: launch week"]
    none = CanaryAnalysis(ds="2026-11-03", canary=None, stable=None, versions={}, comparisons={})
    assert decide(none, POLICY).action == "none"


def test_the_comparison_with_stable_comes_first():
    both = analysis(ctr=(+0.5, +0.2, +0.8))
    both.comparisons["canary vs stable"] = {"CTR": {"value": -0.3, "low": -0.5, "high": -0.1},
                                            "clicks per device": {"value": 0.0, "low": -0.1, "high": 0.1}}
    assert decide(both, POLICY).against == "canary vs stable" and decide(both, POLICY).action == "rollback"


def test_the_shipped_policy_loads_and_a_bad_one_is_named(tmp_path):
    assert load_policy().must_not_fall == {"CTR": 0.02, "clicks per device": 0.02}
    bad = tmp_path / "guardrails.yml"
    bad.write_text("must_not_fall: {GMV: 0.1}\n")
    with pytest.raises(ConfigError, match=r"(?s)guardrails.yml is not valid: .*unknown metric\(s\) 'GMV'"):
        load_policy(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_policy(tmp_path / "missing.yml")
