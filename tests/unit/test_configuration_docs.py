"""The configuration reference is generated from the settings themselves and kept current."""

import pytest

from edgerec.config import CONCERNS, CONFIGURATION_DOC, Settings, concern_of, configuration_reference

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
