"""One shape for every gate: the data-quality gates, the evaluation gate and the servability gate each judge and
return a `GateVerdict`; `settle` is the one place a verdict becomes alerts and the task's outcome.

A refused verdict raises `GateRefused`, after its alerts are sent (so the task-failure alert does not repeat
them). What the refusal does to the day is the verdict's: a data-quality gate's fails the day (`blocks_day`); the
evaluation and servability gates' skip what follows, so nothing unblessed or unservable ships.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgerec.alerts import Alert, AlertedFailure, notifier_from_settings
from edgerec.config import Settings


@dataclass(frozen=True)
class GateVerdict:
    gate: str  # the DAG task that judges: quality_raw, quality_features, quality_marts, evaluation_gate, ...
    ds: str
    passed: bool
    summary: str  # one line: what was judged, the outcome and where to look
    alerts: tuple[Alert, ...] = ()  # every failed check; a passed verdict may carry warnings
    blocks_day: bool = False  # a refusal fails the day rather than skipping what follows


@dataclass(frozen=True)
class Floor:
    """A model gate's rule: a metric at least `floor` and, against a champion, at least its value minus `tolerance`
    (the settings named where the reason cites them)."""

    metric: str  # as the reason names it: "GAUC", "Recall@20"
    floor: float
    tolerance: float
    floor_setting: str
    tolerance_setting: str
    digits: int = 5

    def judge(self, value: float, champion: float | None) -> tuple[bool, str]:
        """(blessed, reason): blessed iff value >= floor and (no champion, or value >= champion - tolerance)."""
        f = f".{self.digits}f"
        if not value >= self.floor:  # also refuses NaN
            return False, f"{self.metric} {value:{f}} is below the floor {self.floor:{f}} ({self.floor_setting})"
        if champion is None:
            return True, (f"{self.metric} {value:{f}} >= floor {self.floor:{f}}; no champion to compare with, judged "
                          "by the floor alone")
        if value < champion - self.tolerance:
            return False, (f"{self.metric} {value:{f}} is below the champion's {champion:{f}} on the same test set "
                           f"minus the tolerance {self.tolerance:{f}} ({self.tolerance_setting})")
        return True, (f"{self.metric} {value:{f}} >= floor {self.floor:{f}} and >= the champion's {champion:{f}} "
                      f"minus {self.tolerance:{f}}")


class GateRefused(AlertedFailure):
    """A gate refused: its alerts have been sent; `verdict` says whether the day stops."""

    def __init__(self, verdict: GateVerdict):
        super().__init__(verdict.summary)
        self.verdict = verdict


def settle(settings: Settings, verdict: GateVerdict, notify: bool = True,
           refusal: type[GateRefused] = GateRefused) -> GateVerdict:
    """Send the verdict's alerts (when `notify`); raise `refusal` for a refused verdict, else return it."""
    if notify and verdict.alerts:
        notifier_from_settings(settings).send(list(verdict.alerts))
    if not verdict.passed:
        raise refusal(verdict)
    return verdict
