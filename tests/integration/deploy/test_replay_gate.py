"""The replay gate: the day's bundle on the next day's simulated users against the cloud's order, refusing one that
loses clicks with confidence; its verdict on the version, in the day's report, and honoured by deploy."""

from __future__ import annotations

import pytest

from deploy.push import NotReleasable, deploy_version
from edgerec import registry
from edgerec.gates import GateRefused
from edgerec.reports import ReplayGate
from pipeline import stages
from tests.integration.deploy.conftest import KEEPS, REVERSES, add_versions

pytestmark = pytest.mark.integration
DS = "2026-11-02"


@pytest.fixture
def state(released, ordered_bundles):
    def make(**env):
        settings, targets = released(EDGEREC_REPLAY_USERS="20", **env)
        add_versions(settings, ordered_bundles)
        return settings, targets

    opened = []
    yield lambda **env: opened.append(make(**env)) or opened[-1]
    for _, targets in opened:
        targets.close()


def version(settings, ref: str) -> registry.ModelVersion:
    return registry.find_version(registry.connect(settings), ref)


def test_a_version_that_reverses_the_cloud_order_is_refused_and_never_deployed(state, caplog):
    settings, targets = state()
    with pytest.raises(GateRefused) as refused:
        stages.replay_gate(settings, DS, version(settings, REVERSES))
    assert refused.value.verdict.gate == "replay_gate" and not refused.value.verdict.passed
    assert "clicks -" in str(refused.value) and "against the cloud order over" in str(refused.value)
    assert "[WARN] edgerec ds=2026-11-02: export.replay_gate" in caplog.text  # alerted with the figures
    report = ReplayGate.read(settings.layout(DS))
    assert (report.version, report.passed) == (REVERSES, False)
    clicks = report.replay["intervals"]["clicks"]
    assert clicks["high"] < 0 and report.replay["day"] == "2026-11-03" and report.replay["users"] == 20
    assert version(settings, REVERSES).replayed is registry.Blessing.REFUSED
    assert "REFUSED" in ReplayGate.markdown_path(settings.layout(DS)).read_text()
    assert ReplayGate.plot_path(settings.layout(DS)).read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(NotReleasable, match="refused by the replay gate"):
        deploy_version(settings, targets, REVERSES)


def test_a_version_that_keeps_the_cloud_order_passes_and_deploys(state):
    settings, targets = state()
    verdict = stages.replay_gate(settings, DS, version(settings, KEEPS))
    assert verdict.passed and verdict.reason.startswith("clicks +0.00% [+0.00%, +0.00%] against the cloud order")
    assert version(settings, KEEPS).replayed is registry.Blessing.PASSED
    assert deploy_version(settings, targets, KEEPS).version == KEEPS


def test_external_logs_are_not_judged_and_the_version_stays_pending(state):
    settings, targets = state(EDGEREC_SOURCE="external")
    verdict = stages.replay_gate(settings, DS, version(settings, REVERSES))
    assert verdict.passed and verdict.replay is None
    assert verdict.reason == "not judged: EDGEREC_SOURCE=external: no simulated world to replay"
    assert version(settings, REVERSES).replayed is registry.Blessing.PENDING
    assert deploy_version(settings, targets, REVERSES).version == REVERSES  # pending does not block
