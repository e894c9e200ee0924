"""The CLI's one error handler: a problem the user can act on is one line and an exit code; a bug keeps its
traceback."""

import pytest
from typer.testing import CliRunner

from edgerec.errors import ConfigError, ContractError, EdgeRecError, MissingInput
from pipeline.cli import app

pytestmark = pytest.mark.unit


def test_every_error_a_user_can_act_on_shares_one_base_and_says_its_exit_code():
    assert issubclass(ConfigError, EdgeRecError) and ConfigError.exit_code == 2
    assert issubclass(MissingInput, EdgeRecError) and MissingInput.exit_code == 1
    assert issubclass(ContractError, EdgeRecError) and ContractError.exit_code == 1


def test_a_missing_input_is_one_line_naming_it_and_exit_code_1(tmp_path):
    result = CliRunner().invoke(app, ["logs", "validate", str(tmp_path / "nowhere.jsonl")])
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == f"error: no such log file or directory: {tmp_path / 'nowhere.jsonl'}"
    assert "Traceback" not in result.output


def test_a_bad_setting_is_exit_code_2_naming_the_variable(tmp_path):
    result = CliRunner().invoke(app, ["release", "status"], env={"EDGEREC_HOME": str(tmp_path),
                                                                 "EDGEREC_RELEASE_CANARY_PERCENT": "250"})
    assert result.exit_code == 2
    assert result.output.startswith("error: invalid configuration:\n  EDGEREC_RELEASE_CANARY_PERCENT = '250'")
    assert "Traceback" not in result.output


def test_anything_else_is_a_bug_and_keeps_its_traceback(tmp_path, monkeypatch):
    import edgerec.contracts.validate as validate

    def broken(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(validate, "find_catalog", broken)
    result = CliRunner().invoke(app, ["logs", "validate", str(tmp_path)])
    assert result.exit_code == 1 and isinstance(result.exception, KeyError)


def test_an_error_says_where_it_happened_when_it_carries_a_note(tmp_path, monkeypatch):
    def missing(settings, ds, names):
        error = MissingInput("no input: events ds=2026-11-01; run the upstream job for this ds first")
        error.add_note("in the Spark job sessionize for ds=2026-11-01")
        raise error

    monkeypatch.setattr("spark_jobs.jobs.run_jobs", missing)
    result = CliRunner().invoke(app, ["spark", "run", "sessionize", "--ds", "2026-11-01"],
                                env={"EDGEREC_HOME": str(tmp_path)})
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == ("error: no input: events ds=2026-11-01; run the upstream job for this "
                                              "ds first (in the Spark job sessionize for ds=2026-11-01)")
