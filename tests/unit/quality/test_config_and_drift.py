"""The thresholds file and the drift arithmetic."""

import math

import pytest

from edgerec.errors import ConfigError
from edgerec.quality.config import DEFAULT_PATH, load_quality_config
from edgerec.quality.frames import mean_histogram, psi, relative_change

pytestmark = pytest.mark.unit


def test_the_packaged_thresholds_load():
    config = load_quality_config()
    assert config.features.label_rate.min == 0.005 and config.features.label_rate.level == "block"
    assert config.marts.ctr_change.warn == 0.2 and config.marts.ctr_change.block == 0.5
    assert config.features.label_rate.text() == "in [0.005, 0.5]"


def test_a_bad_threshold_is_named(tmp_path):
    path = tmp_path / "q.yml"
    text = DEFAULT_PATH.read_text()
    path.write_text(text.replace("label_rate: {min: 0.005, max: 0.5", "label_rate: {min: 0.6, max: 0.5"))
    with pytest.raises(ConfigError, match=r"features\.label_rate.*min 0.6 is above max 0.5"):
        load_quality_config(path)
    path.write_text(text.replace("level: warn}", "level: loud}", 1))
    with pytest.raises(ConfigError, match=r"raw\.bad_share\.level = 'loud'"):
        load_quality_config(path)


def test_psi_is_zero_for_the_same_shares_and_grows_with_the_shift():
    assert psi({"1": 50, "2": 50}, {"1": 5, "2": 5}) == 0.0
    # (0.9-0.5)ln(0.9/0.5) + (0.1-0.5)ln(0.1/0.5)
    assert psi({"1": 90, "2": 10}, {"1": 50, "2": 50}) == pytest.approx(0.4 * math.log(1.8) + 0.4 * math.log(5))
    assert psi({"1": 1}, {"2": 1}) == pytest.approx(2 * (1 - 1e-4) * math.log(1e4))  # disjoint: floored


def test_mean_histogram_weighs_every_day_the_same():
    assert mean_histogram([{"1": 10}, {"1": 100, "2": 100}]) == {"1": 0.75, "2": 0.25}


def test_relative_change():
    assert relative_change(150, 100) == 0.5
    assert relative_change(50, 100) == 0.5
    assert relative_change(0, 0) == 0.0
    assert relative_change(1, 0) == math.inf
