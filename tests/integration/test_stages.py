
import pytest

from edgerec.config import load_settings
from edgerec.errors import ConfigError, MissingInput
from edgerec.raw import BadShareExceeded, simulate_day, validate_raw
from edgerec.reports import RawValidation

pytestmark = pytest.mark.integration
DS = "2026-11-03"


def settings_for(tmp_path, **env):
    return load_settings({"EDGEREC_HOME": str(tmp_path), "EDGEREC_SIM_USERS": "40", **env})


def test_simulate_then_validate_a_clean_day(tmp_path):
    settings = settings_for(tmp_path)
    summary = simulate_day(settings, DS)
    result = validate_raw(settings, DS)
    assert result["good"] == summary["events"] and result["bad"] == 0
    report = RawValidation.read(settings.layout(DS))
    assert report.model_dump() == result
    assert (tmp_path / "quarantine" / "raw" / f"ds={DS}" / "bad_rows.jsonl").read_text() == ""


def test_a_day_above_the_bad_share_fails_naming_the_reasons_and_quarantines_them(tmp_path):
    settings = settings_for(tmp_path, EDGEREC_SIM_CORRUPT_RATE="0.05", EDGEREC_QUALITY_MAX_BAD_SHARE="0.02")
    simulate_day(settings, DS)
    with pytest.raises(BadShareExceeded) as error:
        validate_raw(settings, DS)
    message = str(error.value)
    assert "above the threshold 2.00%" in message and "EDGEREC_QUALITY_MAX_BAD_SHARE" in message
    assert "invalid_json" in message and "duplicate_event_id" in message
    quarantined = (tmp_path / "quarantine" / "raw" / f"ds={DS}" / "bad_rows.jsonl").read_text().splitlines()
    assert len(quarantined) == RawValidation.read(settings.layout(DS)).bad


def test_the_same_corruption_passes_under_a_looser_threshold(tmp_path):
    settings = settings_for(tmp_path, EDGEREC_SIM_CORRUPT_RATE="0.01", EDGEREC_QUALITY_MAX_BAD_SHARE="0.05")
    simulate_day(settings, DS)
    assert 0 < validate_raw(settings, DS)["bad_share"] < 0.05


def test_missing_partition_is_named(tmp_path):
    with pytest.raises(MissingInput, match="no raw events for ds=2026-11-03"):
        validate_raw(settings_for(tmp_path), DS)


def test_settings_errors_name_the_variable(tmp_path):
    with pytest.raises(ConfigError, match="EDGEREC_SIM_USERS = '0'.*>= 1"):
        load_settings({"EDGEREC_SIM_USERS": "0"})
    with pytest.raises(ConfigError, match="EDGEREC_SOURCE = 'kafka'"):
        load_settings({"EDGEREC_SOURCE": "kafka"})
