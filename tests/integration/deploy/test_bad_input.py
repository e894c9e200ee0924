"""Bad input to the release tools gets a clear error naming it, never a traceback or a silent acceptance."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from deploy.channels import load_key
from edgerec import registry
from edgerec.config import load_settings
from edgerec.errors import ConfigError, MissingInput
from pipeline.cli import app
from training.pipeline import servability_budgets

pytestmark = pytest.mark.integration


def test_an_unknown_version_or_a_malformed_reference_is_named(released):
    settings, targets = released()
    client = registry.connect(settings)
    with pytest.raises(MissingInput, match="edgerec-reranker has no version 99$"):
        registry.find_version(client, "99")
    for ref in ("x' or name = 'y", "../v20261101-0000aaaa", "v" * 300):
        with pytest.raises(ConfigError, match="is neither a registry number nor a version id like v20261103-"):
            registry.find_version(client, ref)
    result = CliRunner().invoke(app, ["release", "verify", "99"], env={"EDGEREC_HOME": str(settings.home)})
    assert result.exit_code == 1 and result.output == "error: edgerec-reranker has no version 99\n"


def test_a_short_release_key_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="EDGEREC_RELEASE_KEY is 1 bytes: a signing key needs at least 32"):
        load_key("a", tmp_path / "release.key")
    assert len(load_key("k" * 32, tmp_path / "release.key")) == 32


def test_gc_refuses_a_negative_retention(tmp_path):
    result = CliRunner().invoke(app, ["release", "gc", "--retention-days", "-5"],
                                env={"EDGEREC_HOME": str(tmp_path), "COLUMNS": "200"})
    assert result.exit_code == 2
    assert "Invalid value for '--retention-days': Input should be greater than or equal to 0" in result.output


def test_a_servability_config_that_is_not_json_is_named(tmp_path):
    path = tmp_path / "budgets.json"
    path.write_text("rerank_macs: 1")
    settings = load_settings({"EDGEREC_HOME": str(tmp_path), "EDGEREC_SERVABILITY_CONFIG": str(path)})
    with pytest.raises(ConfigError, match=f"EDGEREC_SERVABILITY_CONFIG={path} is not a readable JSON file"):
        servability_budgets(settings)
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="holds a list, not a JSON object"):
        servability_budgets(settings)
