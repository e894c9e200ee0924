"""The configuration reference is generated from the settings themselves and kept current."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgerec.config import (
    CONFIGURATION_DOC,
    ConfigError,
    configuration_reference,
    load_settings,
    variable,
    variables,
)
from pipeline.cli import app

pytestmark = pytest.mark.unit


def test_the_docs_are_the_generated_reference():
    assert CONFIGURATION_DOC.read_text() == configuration_reference(), (
        "docs/configuration.md is stale: run `.venv/bin/edgerec config docs --write`")


def test_every_setting_is_documented_once_under_its_sections_heading():
    reference = configuration_reference()
    for v in variables():
        assert reference.count(f"| `{v.name}` |") == 1 and len(v.info.description) > 10
    assert variable("EDGEREC_SIM_USERS").heading == "Simulated world"
    assert variable("EDGEREC_MARTS_TRAIN_DAYS").heading == "Marts" and variable("EDGEREC_HOME").section is None
    assert "## Simulated world\n\n| variable | default | meaning |\n|---|---|---|\n| `EDGEREC_SIM_USERS` | `300` | " \
           "users of the simulated world of the daily DAG (allowed: >= 1 and <= 100000000) |" in reference


def test_a_changed_description_makes_the_docs_stale(monkeypatch):
    monkeypatch.setattr(variable("EDGEREC_RELEASE_CANARY_PERCENT").info, "description", "devices the canary reaches")
    assert CONFIGURATION_DOC.read_text() != configuration_reference()


def test_each_section_reads_its_own_variables():
    settings = load_settings({"EDGEREC_HOME": "/srv/edgerec", "EDGEREC_SIM_USERS": "20", "EDGEREC_TRAIN_EPOCHS": "3",
                              "EDGEREC_FEATURES_IE_LENGTH": "8", "EDGEREC_DBT_SPARK_PORT": "10001"})
    assert (settings.home, settings.sim.users, settings.sim.seed, settings.train.epochs) == \
        (Path("/srv/edgerec"), 20, 7, 3)
    assert (settings.features.ie_length, settings.features.ipv_length, settings.dbt.spark_port) == (8, 30, 10001)
    changed = settings.replace(train={"models": "dlcm"}, home=Path("/tmp/x"))
    assert (changed.train.models, changed.train.epochs, changed.home, settings.train.models) == \
        ("dlcm", 3, Path("/tmp/x"), "all")


def test_a_bad_value_is_named_by_its_variable():
    with pytest.raises(ConfigError, match=r"EDGEREC_FEATURES_IE_LENGTH = '0': .* \(allowed: >= 1 and <= 1000\)"):
        load_settings({"EDGEREC_FEATURES_IE_LENGTH": "0"})


def test_an_unknown_variable_is_refused_with_the_closest_names():
    with pytest.raises(ConfigError, match=r"unknown setting: EDGEREC_IE_LENGTH \(did you mean "
                                          r"EDGEREC_FEATURES_IE_LENGTH"):
        load_settings({"EDGEREC_IE_LENGTH": "8"})
    with pytest.raises(ConfigError, match=r"unknown setting: EDGEREC_ZZZ; docs/configuration.md"):
        load_settings({"EDGEREC_ZZZ": "1"})


def test_settings_that_may_carry_a_credential_are_shown_without_it():
    def shown(name, value):
        return variable(name).shown(value)

    assert shown("EDGEREC_KV_URL", "redis://:s3cret@cache.internal:6379/0") == "redis://:***@cache.internal:6379/0"
    assert shown("EDGEREC_ALERT_WEBHOOK_URL", "https://hooks.example.com/services/T0/B0/tok3n") == \
        "https://hooks.example.com/***"
    assert shown("EDGEREC_RELEASE_KEY", "k3y") == "***" and shown("EDGEREC_RELEASE_KEY", None) == "None"
    assert shown("EDGEREC_CDN_URL", "/srv/cdn") == "/srv/cdn"  # a directory holds no credential
    assert shown("EDGEREC_MLFLOW_TRACKING_URI", "http://ml:5000") == "http://ml:5000"
    assert shown("EDGEREC_SIM_USERS", 300) == "300"


def test_config_show_prints_every_setting_and_no_secret(tmp_path):
    env = {"EDGEREC_HOME": str(tmp_path), "EDGEREC_KV_URL": "redis://:s3cret@cache.internal:6379/0",
           "EDGEREC_ALERT_WEBHOOK_URL": "https://hooks.example.com/services/T0/B0/tok3n",
           "EDGEREC_RELEASE_KEY": "k3y"}
    result = CliRunner().invoke(app, ["config", "show"], env=env)
    assert result.exit_code == 0
    assert "s3cret" not in result.output and "tok3n" not in result.output and "k3y" not in result.output
    assert len(result.output.splitlines()) == len(variables()) == 74
    assert "EDGEREC_KV_URL" in result.output and "redis://:***@cache.internal:6379/0" in result.output
