"""Guardrails: the release decision a day's canary analysis gives, and carrying it out.

One decision a day, on the version the canary channel served while the day's logs were made (`edgerec.canary`):
- **rollback** when a guarded metric falls by more than allowed with its whole interval below zero: the canary is
  served to no device (`deploy.release.withdraw`) and an alert carries the figures;
- **promote** once it has passed `days` days in a row: the version goes to `stable` for every device;
- **wait** on too little evidence, or a fall within noise: nothing moves;
- **held** when a release manager paused automation on the channel (`edgerec release hold`).
Every decision but "no canary" lands in the audit log with its evidence.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from deploy.channels import read_channel
from deploy.release import holding, promote, withdraw
from deploy.targets import Targets
from edgerec.alerts import Alert, notifier_from_settings
from edgerec.canary import METRICS
from edgerec.config import Settings
from edgerec.errors import ConfigError
from edgerec.reports import CanaryAnalysis, ReleaseDecision

DEFAULT_POLICY = Path(__file__).with_name("guardrails.yml")
Action = Literal["none", "held", "wait", "promote", "rollback"]


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min_devices: int = Field(10, ge=1, description="canary devices with at least one event that day")
    min_exposures: int = Field(1000, ge=0, description="items shown on the canary's devices that day")
    must_not_fall: dict[str, float] = Field(description="metric -> the largest relative fall allowed")
    days: int = Field(1, ge=1, le=30, description="consecutive passing days before promoting to stable")

    @field_validator("must_not_fall")
    @classmethod
    def known_metrics(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(METRICS))
        if unknown:
            raise ValueError(f"unknown metric(s) {', '.join(map(repr, unknown))}; the analysis has "
                             f"{', '.join(METRICS)}")
        if any(not 0 <= v < 1 for v in value.values()):
            raise ValueError("each allowed fall is a share in [0, 1)")
        return value


def load_policy(path: Path | None = None) -> Policy:
    """The guardrails policy (default: deploy/guardrails.yml); ConfigError naming the file and the problem."""
    path = Path(path or DEFAULT_POLICY)
    try:
        return Policy(**(yaml.safe_load(path.read_text()) or {}))
    except FileNotFoundError:
        raise ConfigError(f"guardrails policy {path} does not exist") from None
    except (yaml.YAMLError, TypeError, ValueError) as e:
        raise ConfigError(f"guardrails policy {path} is not valid: {e}") from None


@dataclass(frozen=True)
class Decision:
    action: Action
    canary: str | None
    against: str | None  # the comparison the figures come from ("canary vs stable" or "canary vs cloud order")
    reasons: list[str]
    passing_days: int = 0  # consecutive days the version has passed, this one included
    evidence: dict = field(default_factory=dict)  # metric -> {value, low, high} of the comparison

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        return f"{self.action}{f' {self.canary}' if self.canary else ''}: {'; '.join(self.reasons)}"


def decide(analysis: CanaryAnalysis, policy: Policy, passed_before: int = 0, hold: dict | None = None) -> Decision:
    """The decision on the day's canary. `passed_before`: the days in a row the same version passed before this one;
    `hold`: the audit record of a hold on the canary channel (None: automation runs)."""
    canary = analysis.canary
    if canary is None:
        return Decision("none", None, None, ["no canary"])
    if hold is not None:
        return Decision("held", canary, None, [f"automation paused on canary by {hold.get('by')}: {hold.get('why')}"])
    against = next((n for n in ("canary vs stable", "canary vs cloud order") if n in analysis.comparisons), None)
    if against is None:
        return Decision("wait", canary, None, ["the canary ran on no device beside another cohort this day"])
    cohort = analysis.versions[canary]
    if cohort["devices"] < policy.min_devices or cohort["exposures"] < policy.min_exposures:
        return Decision("wait", canary, against, [
            f"too little evidence: {int(cohort['devices'])} devices and {int(cohort['exposures']):,} exposures on the "
            f"canary (the policy asks {policy.min_devices} and {policy.min_exposures:,})"])
    figures = analysis.comparisons[against]
    evidence = {m: figures[m] for m in policy.must_not_fall}
    falls = {m: d for m, d in evidence.items() if d["value"] < -policy.must_not_fall[m]}
    confident = {m: d for m, d in falls.items() if d["high"] < 0}

    def said(items: dict) -> str:
        return ", ".join(f"{m} {d['value']:+.2%} [{d['low']:+.2%}, {d['high']:+.2%}] (allowed -"
                         f"{policy.must_not_fall[m]:.0%})" for m, d in items.items())

    if confident:
        return Decision("rollback", canary, against, [f"{against}: {said(confident)}"], 0, evidence)
    if falls:
        return Decision("wait", canary, against, [f"{against}: {said(falls)}, within noise"], 0, evidence)
    days = passed_before + 1
    passed = f"{against}: passed ({said(evidence)}), day {days} of {policy.days}"
    return Decision("promote" if days >= policy.days else "wait", canary, against, [passed], days, evidence)


def run_guardrails(settings: Settings, targets: Targets, ds: str, analysis: CanaryAnalysis,
                   policy: Policy) -> ReleaseDecision:
    """Decide on the day's canary and carry the decision out: promote it to stable, or withdraw it and alert; record
    the decision with its evidence in the audit log and in the day's report."""
    day_before = str(dt.date.fromisoformat(ds) - dt.timedelta(days=1))
    before = ReleaseDecision.read(settings.layout(day_before))
    passed_before = before.passing_days if before and before.canary == analysis.canary else 0
    decision = decide(analysis, policy, passed_before, holding(targets, "canary"))
    done = None
    if decision.action == "promote":
        pointer = promote(settings, targets, decision.canary, "stable", 100.0, f"guardrails: {decision.line()}")
        done = f"stable -> {pointer.version} ({pointer.rollout_percent:g}%)"
    elif decision.action == "rollback":
        current = read_channel(targets.cdn, "canary", targets.key)
        if current is not None and current.version == decision.canary and current.rollout_percent > 0:
            withdraw(settings, targets, "canary", f"guardrails: {decision.line()}")
            done = f"canary {decision.canary} withdrawn (0% of devices)"
        else:
            done = f"canary no longer serves {decision.canary}: nothing to withdraw"
        evidence = str(CanaryAnalysis.markdown_path(settings.layout(ds)))
        notifier_from_settings(settings).send([Alert("block", "release.canary_guardrails", "; ".join(decision.reasons),
                                                     "no guarded metric falls by more than allowed", ds, evidence)])
    if decision.action != "none":
        targets.audit("decision", channel="canary", ds=ds, decision=decision.action, version=decision.canary,
                      why=decision.reasons, evidence=decision.evidence, done=done)
    report = ReleaseDecision(ds=ds, **decision.to_dict(), done=done)
    report.write(settings.layout(ds))
    return report
