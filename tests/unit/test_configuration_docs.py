"""The configuration reference is generated from the settings themselves and kept current."""

import pytest
from typer.testing import CliRunner

from edgerec.config import CONCERNS, CONFIGURATION_DOC, Settings, concern_of, configuration_reference, shown
from pipeline.cli import app

pytestmark = pytest.mark.unit


def test_the_docs_are_the_generated_reference():
    assert CONFIGURATION_DOC.read_text() == configuration_reference(), (
        "docs/configuration.md is stale: run `.venv/bin/edgerec config docs --write`")


def test_every_setting_is_documented_once_in_its_concerns_section():
    reference = configuration_reference()
    for name, field in Settings.model_fields.items():
        assert reference.count(f"| `EDGEREC_{name.upper()}` |") == 1 and len(field.description) > 10
    assert concern_of("sim_users") == "Simulated world" and concern_of("train_days") == "Marts (dbt)"
    assert concern_of("train_epochs") == "Training" and set(CONCERNS) >= {concern_of(n) for n in Settings.model_fields}
    assert "| `EDGEREC_SIM_USERS` | `300` | users of the simulated world of the daily DAG (allowed: >= 1 and <= " \
           "100000000) |" in reference


def test_a_changed_description_makes_the_docs_stale(monkeypatch):
    field = Settings.model_fields["canary_percent"]
    monkeypatch.setattr(field, "description", "devices the canary reaches, in tenths")
    assert CONFIGURATION_DOC.read_text() != configuration_reference()


def test_settings_that_may_carry_a_credential_are_shown_without_it():
    assert shown("kv_url", "redis://:s3cret@cache.internal:6379/0") == "redis://cache.internal:6379/***"
    assert shown("alert_webhook_url", "https://hooks.example.com/services/T0/B0/tok3n") == \
        "https://hooks.example.com/***"
    assert shown("release_key", "k3y") == "***" and shown("release_key", None) == "None"
    assert shown("cdn_url", "/srv/cdn") == "/srv/cdn"  # a directory holds no credential
    assert shown("sim_users", 300) == "300"


def test_config_show_prints_every_setting_and_no_secret(tmp_path):
    env = {"EDGEREC_HOME": str(tmp_path), "EDGEREC_KV_URL": "redis://:s3cret@cache.internal:6379/0",
           "EDGEREC_ALERT_WEBHOOK_URL": "https://hooks.example.com/services/T0/B0/tok3n",
           "EDGEREC_RELEASE_KEY": "k3y"}
    result = CliRunner().invoke(app, ["config", "show"], env=env)
    assert result.exit_code == 0
    assert "s3cret" not in result.output and "tok3n" not in result.output and "k3y" not in result.output
    assert len(result.output.splitlines()) == len(Settings.model_fields)
    assert "EDGEREC_KV_URL" in result.output and "redis://cache.internal:6379/***" in result.output
