"""The data-quality thresholds, read from one YAML file (thresholds.yml beside this module by default)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from edgerec.errors import ConfigError, build_config

DEFAULT_PATH = Path(__file__).with_name("thresholds.yml")
Level = Literal["block", "warn"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Bound(_Strict):
    """A value must lie in [min, max]; `level` says what a violation does."""

    min: float | None = None
    max: float | None = None
    level: Level = "block"

    @model_validator(mode="after")
    def _some_bound(self):
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self

    def text(self) -> str:
        if self.max is None:
            return f">= {self.min:g}"
        return f"<= {self.max:g}" if self.min is None else f"in [{self.min:g}, {self.max:g}]"


class DriftBound(_Strict):
    """A change against the baseline above `warn` alerts; above `block` stops the day."""

    warn: float | None = Field(None, ge=0)
    block: float | None = Field(None, ge=0)


class RawChecks(_Strict):
    events: Bound
    bad_share: Bound
    event_volume_change: DriftBound


class FeatureChecks(_Strict):
    requests: Bound
    label_rate: Bound
    labelled_share: Bound
    histogram_psi: DriftBound
    histogram_max_codes: int = Field(32, ge=2)
    histogram_min_count: int = Field(500, ge=1)


class MartChecks(_Strict):
    train_requests: Bound
    test_requests: Bound
    test_label_rate: Bound
    request_volume_change: DriftBound
    ctr_change: DriftBound
    mean_ie_length_change: DriftBound


class QualityConfig(_Strict):
    baseline_days: int = Field(7, ge=1, le=365)
    raw: RawChecks
    features: FeatureChecks
    marts: MartChecks


def load_quality_config(path: Path | None = None) -> QualityConfig:
    path = Path(path or DEFAULT_PATH)
    try:
        values = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"quality config {path}: {error}") from error
    if not isinstance(values, dict):
        raise ConfigError(f"quality config {path}: expected a mapping at the top level")
    return build_config(QualityConfig, values, prefix=f"{path}: ")
