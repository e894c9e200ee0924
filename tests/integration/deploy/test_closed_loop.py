"""The loop closed end to end on a small world: a deliberately harmful version (the cloud's order reversed) on
canary is rolled back by the next day's analysis with the figures, and a version that keeps the order is promoted.
Each day: the devices run what the channels serve (simulate) -> Spark -> dbt -> canary analysis -> guardrails."""

from __future__ import annotations

import pytest

from deploy import audit
from deploy.channels import read_channel
from deploy.push import deploy_version
from deploy.release import promote
from edgerec.reports import CanaryAnalysis, ReleaseDecision
from pipeline import stages
from spark_jobs.jobs import JOBS, run_jobs
from tests.integration.deploy.conftest import KEEPS, KEEPS_TOO, REVERSES, add_versions

pytestmark = pytest.mark.integration
BEFORE, HARMFUL_DAY, GOOD_DAY = "2026-11-01", "2026-11-02", "2026-11-03"


def run_day(settings, ds: str, spark) -> ReleaseDecision:
    """The daily DAG's tasks from simulate to the release decision, for ds."""
    stages.simulate(settings, ds)
    run_jobs(settings, ds, list(JOBS), spark=spark)
    stages.marts(settings, ds)
    stages.canary_analysis(settings, ds)
    return stages.release_decision(settings, ds)


@pytest.fixture
def loop(released, ordered_bundles, spark):
    settings, targets = released(EDGEREC_SIM_USERS="60", EDGEREC_SIM_CORRUPT_RATE="0",
                                 EDGEREC_SPARK_SHUFFLE_PARTITIONS="2")
    add_versions(settings, ordered_bundles)
    for v in (KEEPS, REVERSES, KEEPS_TOO):
        deploy_version(settings, targets, v)
    assert run_day(settings, BEFORE, spark).action == "none"  # no canary yet: every device on the cloud order
    yield settings, targets
    targets.close()


def test_a_harmful_canary_is_rolled_back_and_a_good_one_promoted(loop, spark, caplog):
    settings, targets = loop
    promote(settings, targets, KEEPS, "stable", 100, "first release")
    promote(settings, targets, REVERSES, "canary", 50, "daily retrain")

    harmful = run_day(settings, HARMFUL_DAY, spark)
    analysis = CanaryAnalysis.read(settings.layout(HARMFUL_DAY))
    assert set(analysis.versions) == {KEEPS, REVERSES} and analysis.canary == REVERSES
    assert harmful.action == "rollback" and harmful.against == "canary vs stable"
    ctr = harmful.evidence["CTR"]
    assert ctr["high"] < -0.02 and harmful.evidence["clicks per device"]["high"] < -0.02  # both fell, with confidence
    assert harmful.reasons[0].startswith("canary vs stable: CTR -") and "clicks per device -" in harmful.reasons[0]
    assert read_channel(targets.cdn, "canary", targets.key).rollout_percent == 0  # served to no device
    assert read_channel(targets.cdn, "stable", targets.key).version == KEEPS
    assert "[BLOCK] edgerec ds=2026-11-02: release.canary_guardrails" in caplog.text  # alerted with the figures
    decision = [r for r in audit.entries(targets.audit_log) if r["action"] == "decision"][-1]
    assert (decision["decision"], decision["version"], decision["ds"]) == ("rollback", REVERSES, HARMFUL_DAY)
    assert decision["evidence"]["CTR"] == ctr

    promote(settings, targets, KEEPS_TOO, "canary", 50, "daily retrain")
    good = run_day(settings, GOOD_DAY, spark)
    assert good.action == "promote" and good.canary == KEEPS_TOO, good.reasons
    assert good.done == f"stable -> {KEEPS_TOO} (100%)"
    assert read_channel(targets.cdn, "stable", targets.key).version == KEEPS_TOO
