"""One shape for every gate: a verdict, and one place (`settle`) that turns it into alerts and the outcome."""

import pytest

from edgerec.alerts import Alert, task_failure_alert
from edgerec.config import load_settings
from edgerec.gates import GateRefused, GateVerdict, settle
from training.pipeline import Verdict
from training.servability import Check, ServabilityReport

pytestmark = pytest.mark.unit
WARN = Alert(level="warn", check="raw.day.events", observed=90, threshold=">= 100", ds="2026-11-03")


def settings_with(tmp_path, url):
    return load_settings({"EDGEREC_HOME": str(tmp_path), "EDGEREC_ALERT_WEBHOOK_URL": url})


def test_a_passed_verdict_sends_its_warnings_and_returns(tmp_path, webhook):
    url, received = webhook
    verdict = GateVerdict("quality_raw", "2026-11-03", True, "passed", (WARN,), blocks_day=True)
    assert settle(settings_with(tmp_path, url), verdict) is verdict
    assert [a["check"] for body in received for a in body["alerts"]] == ["raw.day.events"]


def test_a_refused_verdict_alerts_then_raises_and_the_task_failure_alert_does_not_repeat_it(tmp_path, webhook):
    url, received = webhook
    verdict = GateVerdict("evaluation_gate", "2026-11-03", False, "version 2 (v2) refused: below the floor", (WARN,))
    with pytest.raises(GateRefused, match=r"^version 2 \(v2\) refused: below the floor$") as refused:
        settle(settings_with(tmp_path, url), verdict)
    assert refused.value.verdict is verdict and len(received) == 1
    assert task_failure_alert({"exception": refused.value, "ds": "2026-11-03"}) is None
    with pytest.raises(GateRefused):
        settle(settings_with(tmp_path, url), verdict, notify=False)
    assert len(received) == 1  # not notified the second time


def test_the_evaluation_and_servability_gates_speak_the_same_shape():
    refused = Verdict(ds="2026-11-03", version="3", version_id="v20261103-aa", blessed=False, gauc=0.5, floor=0.55,
                      champion=None, champion_gauc=None, tolerance=0.002, reason="GAUC 0.50000 is below the floor")
    verdict = refused.gate_verdict("2026-11-03")
    assert (verdict.gate, verdict.passed, verdict.blocks_day) == ("evaluation_gate", False, False)
    assert verdict.summary == "version 3 (v20261103-aa) refused: GAUC 0.50000 is below the floor"
    assert [(a.check, a.observed) for a in verdict.alerts] == [
        ("training.evaluation_gate", "version 3 (v20261103-aa) GAUC 0.50000")]
    report = ServabilityReport("b", "v20261103-aa", [Check("bundle bytes", False, 600_000, 524_288, "")])
    verdict = report.gate_verdict("2026-11-03")
    assert (verdict.gate, verdict.passed, len(verdict.alerts)) == ("servability_gate", False, 1)
    assert verdict.summary == "bundle v20261103-aa is not servable: bundle bytes: 600,000 vs budget 524,288"
    blessed = Verdict(ds="2026-11-03", version="3", version_id="v", blessed=True, gauc=0.8, floor=0.55, champion=None,
                      champion_gauc=None, tolerance=0.002, reason="ok").gate_verdict("2026-11-03")
    assert blessed.passed and blessed.alerts == ()
