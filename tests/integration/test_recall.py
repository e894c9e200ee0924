"""The recall models on the tiny world's marts: the comparison, the registered version of edgerec-recall, the recall
gate blessing on the floor, comparing with its champion and refusing below it, and the export of a blessed one."""

import numpy as np
import pytest

from edgerec import registry
from edgerec.contracts.bundle import BundleError
from edgerec.contracts.recall_bundle import verify_recall_bundle
from edgerec.contracts.signing import trusted_keys
from edgerec.errors import NotBlessed
from edgerec.reports import RecallGate
from tests.integration.conftest import DAYS
from training.recall.pipeline import export_recall_day, gate_recall_day, train_recall_day

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def recall(marts):
    settings = marts[0].replace(recall={"epochs": 1, "models": "pwprec_ls,gru4rec"})
    return settings, train_recall_day(settings, DAYS[1])


def test_training_compares_the_models_with_the_rules_and_registers_pwprec_ls(recall):
    settings, summary = recall
    text = (settings.layout(DAYS[1]).reports / "recall" / "comparison.md").read_text()
    table, whole = text.split("### Candidate generation over the whole catalog")
    for row in ("| PWPRec(LS) |", "| GRU4Rec-Enhanced |", "| rule: most popular |",
                "| rule: interacted before, latest first |"):
        assert table.count(row) == 2, row  # one row on each task
    assert "PWPRec(LS) over GRU4Rec-Enhanced, recall_at_1" in table and "SASRec" not in table
    for row in ("| PWPRec(LS) |", "| rule: most popular |", "| simulator's cloud ranker |"):
        assert whole.count(row) == 1, row
    assert "user: PWPRec(LS) > simulator's cloud ranker on catalog recall_at_100" in summary.checks
    assert summary.comparison["png"].endswith(".png") and set(summary.checks) >= {
        "user: PWPRec(LS) > GRU4Rec-Enhanced on recall_at_10",
        "session: PWPRec(LS) > rule: most popular on recall_at_20"}

    client = registry.connect(settings)
    version = registry.get_version(client, summary.version, registry.RECALL_MODEL)
    assert version.id == summary.version_id and version.tags["ds"] == DAYS[1]
    assert version.tags["model"] == "pwprec_ls" and version.tags["task"] == "user"
    assert float(version.tags["recall_at_20"]) == pytest.approx(summary.recall_at_20, abs=1e-6)
    assert version.blessing is registry.Blessing.PENDING
    assert registry.version_of_day(client, DAYS[1]) is None or \
        registry.version_of_day(client, DAYS[1]).id != version.id  # the re-ranker's registry is another model


def test_the_gate_blesses_on_the_floor_then_judges_against_the_champion(recall):
    settings, summary = recall
    first = gate_recall_day(settings.replace(recall={"min_recall_at_20": 0.0}), DAYS[1])
    assert first.blessed and first.champion is None
    assert first.recall_at_20 == pytest.approx(summary.recall_at_20, abs=1e-9)  # the registered checkpoint scores alike
    client = registry.connect(settings)
    assert registry.champion(client, registry.RECALL_MODEL).id == summary.version_id

    second = train_recall_day(settings, DAYS[1])  # the same day again: a new version, judged against the first
    judged = gate_recall_day(settings.replace(recall={"min_recall_at_20": 0.0, "tolerance": 0.0}), DAYS[1])
    assert judged.version_id == second.version_id and judged.champion == summary.version_id
    assert judged.champion_recall_at_20 == pytest.approx(first.recall_at_20, abs=1e-9)
    assert second.recall_at_20 == summary.recall_at_20 and judged.blessed  # deterministic for a seed

    refused = gate_recall_day(settings.replace(recall={"min_recall_at_20": 1.0}), DAYS[1])
    assert not refused.blessed and "below the floor" in refused.reason
    assert RecallGate.read(settings.layout(DAYS[1])).blessed is False
    assert registry.get_version(client, second.version, registry.RECALL_MODEL).blessing is registry.Blessing.REFUSED


def test_only_a_blessed_version_is_exported_and_its_bundle_is_signed_and_reused(recall):
    settings, _ = recall
    gate_recall_day(settings.replace(recall={"min_recall_at_20": 1.0}), DAYS[1])
    with pytest.raises(NotBlessed, match=r"no blessed version of edgerec-recall for ds=2026-11-02 \(.* is false\)"):
        export_recall_day(settings, DAYS[1])
    blessed = gate_recall_day(settings.replace(recall={"min_recall_at_20": 0.0, "tolerance": 1.0}), DAYS[1])
    root = export_recall_day(settings, DAYS[1])
    assert root == settings.recall_bundles_dir / blessed.version_id
    manifest = verify_recall_bundle(root, trusted=trusted_keys(settings.trusted_keys_dir))
    assert manifest["version"] == blessed.version_id and manifest["mlflow"]["version"] == blessed.version
    assert manifest["index"]["type"] == "IVFFlat" and manifest["items"] == len(np.load(root / "item_ids.npy"))
    written = (root / "index.faiss").stat().st_mtime_ns
    assert export_recall_day(settings, DAYS[1]) == root and (root / "index.faiss").stat().st_mtime_ns == written
    (root / "item_ids.npy").write_bytes(b"not an array")
    with pytest.raises(BundleError, match="the recall bundle of .* is damaged: delete"):
        export_recall_day(settings, DAYS[1])
