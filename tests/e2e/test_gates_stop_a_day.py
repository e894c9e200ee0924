"""A day the gates stop, end to end: a blocking quality check before the marts, a corrupted raw day at validation."""

from pathlib import Path

import pytest

from edgerec.reports import DbtBuild, QualityChecks
from tests.e2e.runs import DS, alerts_of, day_of, run

pytestmark = pytest.mark.e2e


def test_a_blocking_check_stops_the_day_before_the_marts(tmp_path, webhook):
    url, received = webhook
    strict = tmp_path / "quality.yml"
    strict.write_text(Path("edgerec/quality/thresholds.yml").read_text().replace(
        "requests: {min: 100, level: block}", "requests: {min: 1000000, level: block}"))
    result = run(tmp_path, EDGEREC_QUALITY_CONFIG=str(strict), EDGEREC_ALERT_WEBHOOK_URL=url)
    assert result.returncode != 0
    day = day_of(tmp_path / "state", DS)
    assert QualityChecks.read(day, layer="features").passed is False
    assert DbtBuild.read(day) is None and QualityChecks.read(day, layer="marts") is None
    blocking = [a for a in alerts_of(received) if a["level"] == "block"]
    assert [(a["check"], a["threshold"], a["ds"]) for a in blocking] == [
        ("features.day.requests", ">= 1e+06", DS)]
    assert not [a for a in alerts_of(received) if a["level"] == "error"]  # the gate alerted; no second alert


def test_run_fails_on_a_corrupted_day_says_why_and_alerts(tmp_path, webhook):
    url, received = webhook
    result = run(tmp_path, EDGEREC_SIM_CORRUPT_RATE="0.2", EDGEREC_ALERT_WEBHOOK_URL=url)
    assert result.returncode != 0
    assert "above the threshold 1.00%" in result.stdout + result.stderr
    assert f"the daily DAG failed for ds={DS}" in result.stderr
    [alert] = alerts_of(received)  # the DAG's failure notifier
    assert alert["level"] == "error" and alert["check"] == "task edgerec_daily_retrain.validate_raw failed"
    assert alert["ds"] == DS and "above the threshold 1.00%" in alert["observed"]
    assert QualityChecks.read(day_of(tmp_path / "state", DS), layer="features") is None
