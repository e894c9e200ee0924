"""Export and the servability gate on the tiny world: only a blessed version is exported, its bundle is reused
rather than rewritten, and the gate's verdict lands on the MLflow version and in the day's reports."""

import json
import shutil

import pytest

from edgerec import registry
from edgerec.errors import ConfigError, NotBlessed
from edgerec.reports import Servability
from tests.integration.conftest import DAYS
from training.pipeline import export_day, gate_day, servability_day, train_day

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def trained(marts, tmp_path_factory):
    """A version trained on the world's marts in a state directory of its own: its registry and champion stay
    apart from the other modules' (the marts and the feature spec are copied in)."""
    shared, home = marts[0], tmp_path_factory.mktemp("export-state")
    shutil.copy(shared.duckdb_path, home / shared.duckdb_path.name)
    shutil.copytree(shared.warehouse / "feature_spec", home / "warehouse" / "feature_spec")
    budgets = home / "budgets.json"
    budgets.write_text(json.dumps({"step_p99_ms": 1e6, "rerank_p99_ms": 1e6, "timing_runs": 10}))  # no timing
    settings = shared.replace(home=home, train={"epochs": 1, "models": "crban_hubsm_ie_ipv"}, gate={"min_gauc": 0.0},
                              servability={"config": budgets})
    return settings, train_day(settings, DAYS[1])


def test_only_a_blessed_version_is_exported_and_its_bundle_is_immutable(trained, tmp_path):
    settings, summary = trained
    with pytest.raises(NotBlessed, match=f"version {summary['version']} .* is not blessed"):
        export_day(settings, DAYS[1])
    gate_day(settings, DAYS[1])
    root = export_day(settings, DAYS[1])
    assert root == settings.bundles_dir / summary["version_id"]
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["version"] == summary["version_id"] and manifest["mlflow"]["version"] == summary["version"]
    assert manifest["feature_spec_sha256"] == json.loads((root / "feature_spec.json").read_text())["sha256"]
    written = (root / "manifest.json").stat().st_mtime_ns
    assert export_day(settings, DAYS[1], version=summary["version_id"]) == root  # by id: reused as it is
    assert (root / "manifest.json").stat().st_mtime_ns == written
    assert manifest["rules"]["remove_out_of_stock"] is False and manifest["min_runtime_version"] == 4  # no rules
    rules = tmp_path / "rules.json"
    rules.write_text('{"remove_out_of_stock": true}')
    with pytest.raises(ConfigError, match="exported with the rules 'none', EDGEREC_RULES_CONFIG says 'remove out of "
                                          "stock': a version's rules do not change"):
        export_day(settings.replace(rules={"config": rules}), DAYS[1])
    assert (root / "manifest.json").stat().st_mtime_ns == written
    shutil.rmtree(root)  # the remedy the message names: export it again, now with the rules
    ruled = json.loads((export_day(settings.replace(rules={"config": rules}), DAYS[1]) / "manifest.json").read_text())
    assert ruled["rules"]["remove_out_of_stock"] is True and ruled["min_runtime_version"] == 5


def test_servability_gate_tags_the_version_and_writes_the_report(trained):
    settings, summary = trained
    report = servability_day(settings, DAYS[1])
    assert report.passed, report.failures
    replayed = next(c for c in report.checks if c.name == "test requests replayed").figure
    assert 0 < replayed <= 1000
    client = registry.connect(settings)
    version = registry.get_version(client, summary["version"])
    assert version.tags[registry.SERVABLE] == "true"
    assert json.loads(version.tags[registry.SERVABILITY])["failures"] == []
    assert len(version.tags[registry.BUNDLE_SHA]) == 64
    day = settings.layout(DAYS[1])
    assert Servability.read(day).passed is True
    assert "servability of " + summary["version_id"] + ": PASSED" in Servability.markdown_path(day).read_text()

    (settings.bundles_dir / summary["version_id"] / "reranker.onnx").write_bytes(b"not a model")
    broken = servability_day(settings, DAYS[1])
    assert not broken.passed and broken.failures[0].startswith("integrity: bundle")
    assert registry.get_version(client, summary["version"]).tags[registry.SERVABLE] == "false"
