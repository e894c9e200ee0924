"""The day's reports: the hand-off between its stages, and what `edgerec run` and the runbook read.

Each report is a small typed record that writes itself to its one place under the day's `reports/ds=D/` and
reads itself back: `read` returns None when the stage that writes it has not run for the day. Its file name
appears here and nowhere else; a writer that adds an undeclared field fails (`extra="forbid"`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict

from edgerec.config import DayLayout, read_json, write_json, write_text


class DayReport(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    file: ClassVar[str]  # under the day's reports directory; `{field}` parts come from the report's fields

    @classmethod
    def path(cls, day: DayLayout, **key: str) -> Path:
        return day.reports / cls.file.format(**key)

    def write(self, day: DayLayout) -> Path:
        return write_json(self.path(day, **self.model_dump()), self.model_dump(mode="json"))

    @classmethod
    def read(cls, day: DayLayout, **key: str) -> Self | None:
        data = read_json(cls.path(day, **key))
        return None if data is None else cls.model_validate(data)


class RawValidation(DayReport):
    """Good, bad and quarantined rows of the day's raw logs (`validate_raw`)."""

    file = "raw_validation.json"
    ds: str
    files: int
    rows: int
    good: int
    bad: int
    bad_share: float
    good_by_type: dict[str, int]
    bad_by_reason: dict[str, int]
    quarantine: str
    max_bad_share: float


class SparkSummary(DayReport):
    """Each Spark job's figures and seconds; the requests job's `event_days_read` says which days it saw."""

    file = "spark_summary.json"
    ds: str
    ingest: dict[str, Any] | None = None
    sessionize: dict[str, Any] | None = None
    requests: dict[str, Any] | None = None
    bucketize: dict[str, Any] | None = None

    @classmethod
    def record(cls, day: DayLayout, job: str, figures: dict[str, Any]) -> Self:
        """The day's summary with one job's figures put in (replacing that job's earlier figures)."""
        summary = (cls.read(day) or cls(ds=day.ds)).model_copy(update={job: figures})
        summary.write(day)
        return summary

    @property
    def event_days_read(self) -> list[str]:
        return list((self.requests or {}).get("event_days_read", []))


class DbtBuild(DayReport):
    """Rows per mart, nodes built per kind, and the warehouse (`dbt_build`)."""

    file = "dbt_build.json"
    ds: str
    target: str
    elapsed_s: float
    nodes: dict[str, int]
    database: str
    rows: dict[str, int]


class QualityChecks(DayReport):
    """One data-quality gate's checks of one layer (raw, features, marts)."""

    file = "quality_{layer}.json"
    layer: str
    ds: str
    passed: bool
    checks: int
    failed_block: int
    failed_warn: int
    docs_index: str | None
    skipped: list[str]
    results: list[dict[str, Any]]
    metrics: dict[str, Any]


class TrainingSummary(DayReport):
    """The day's registered version, its MLflow run, and the comparison's files and checks."""

    file = "training/training.json"
    ds: str
    run_id: str
    registered_model: str
    version: str
    version_id: str
    train_requests: int
    test_requests: int
    gauc: float
    comparison: dict[str, str]  # extension -> path
    checks: dict[str, bool]
    warm_start_from: str | None = None  # the version the full model started from (None: random weights)


class EvaluationGate(DayReport):
    """The evaluation gate's verdict on a version, with the figures and the reason."""

    file = "training/evaluation_gate.json"
    ds: str
    version: str
    version_id: str
    blessed: bool
    gauc: float
    floor: float
    champion: str | None
    champion_gauc: float | None
    tolerance: float
    reason: str


class RecallTraining(DayReport):
    """The day's recall comparison and the registered recall version (`training/recall`)."""

    file = "recall/training.json"
    ds: str
    run_id: str
    registered_model: str
    version: str
    version_id: str
    train_clicks: int
    test_clicks: int  # of the registered model's task, the clicks its Recall@20 is computed on
    recall_at_20: float
    comparison: dict[str, str]  # extension -> path
    checks: dict[str, bool]


class RecallGate(DayReport):
    """The recall gate's verdict on a recall version: its Recall@20 against the floor and its champion's."""

    file = "recall/evaluation_gate.json"
    ds: str
    version: str
    version_id: str
    blessed: bool
    recall_at_20: float
    floor: float
    champion: str | None
    champion_recall_at_20: float | None
    tolerance: float
    reason: str


class Servability(DayReport):
    """The servability gate's verdict on a bundle: its checks, counted costs and estimates, and host timing as
    information; a Markdown rendering sits beside it."""

    file = "export/servability.json"
    ds: str
    bundle: str
    version: str
    passed: bool
    checks: list[dict[str, Any]]
    device: str
    costs: dict[str, Any]
    estimated_ms: dict[str, Any]
    host_timing: str
    latency_ms: dict[str, Any]

    @classmethod
    def markdown_path(cls, day: DayLayout) -> Path:
        return cls.path(day).with_suffix(".md")

    def write_with(self, day: DayLayout, markdown: str) -> Path:
        write_text(self.markdown_path(day), markdown + "\n")
        return self.write(day)


class ReplayGate(DayReport):
    """The replay gate's verdict on the day's bundle: the simulated users replayed with the cloud's order and with
    the bundle on the device (`edgerec.edge.replay`); its Markdown and CTR-by-position plot sit beside it."""

    file = "export/replay.json"
    ds: str
    version: str
    passed: bool
    reason: str
    replay: dict[str, Any] | None = None  # edgerec.edge.replay's result (None: nothing replayed)

    @classmethod
    def markdown_path(cls, day: DayLayout) -> Path:
        return cls.path(day).with_suffix(".md")

    @classmethod
    def plot_path(cls, day: DayLayout) -> Path:
        return cls.path(day).with_name("replay_ctr_by_position.png")


class CanaryAnalysis(DayReport):
    """What each model version the devices ran did on the day's logs, and the canary against the stable version and
    the cloud's order (`edgerec.canary`); a Markdown rendering sits beside it."""

    file = "canary_analysis.json"
    ds: str
    canary: str | None
    stable: str | None
    versions: dict[str, dict[str, float]]  # version ('cloud order': none) -> devices, totals and metrics
    comparisons: dict[str, dict[str, dict[str, float]]]  # "canary vs stable" -> metric -> {value, low, high}
    ctr_by_position: dict[str, list[float | None]] = {}  # version -> CTR at each display position (None: not shown)

    # the table's columns: (heading, field of `versions`, format)
    TABLE: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("devices", "devices", ",.0f"), ("exposures", "exposures", ",.0f"), ("clicks", "clicks", ",.0f"),
        ("CTR", "CTR", ".2%"), ("page views", "page_views", ",.0f"), ("carts", "carts", ",.0f"),
        ("purchases", "purchases", ",.0f"), ("GMV (price levels)", "gmv_price_levels", ",.0f"),
        ("re-ranks per session", "re-ranks per session", ".2f"))

    def to_markdown(self) -> str:
        lines = [f"# Canary analysis, ds={self.ds}", "",
                 f"canary: {self.canary or 'not set'}; stable: {self.stable or 'not set'}", "",
                 "| version | " + " | ".join(h for h, _, _ in self.TABLE) + " |", "|---" * (len(self.TABLE) + 1) + "|"]
        lines += [f"| {v} | " + " | ".join(format(row[f], spec) for _, f, spec in self.TABLE) + " |"
                  for v, row in self.versions.items()]
        halves = sorted({k for row in self.versions.values() for k in row if k.startswith("CTR, positions")},
                        key=lambda k: int(k.split()[-1].split("-")[0]))
        if halves:
            lines += ["", "| version | " + " | ".join(halves) + " |", "|---" * (len(halves) + 1) + "|"]
            lines += [f"| {v} | " + " | ".join(format(row.get(h, float("nan")), ".2%") for h in halves) + " |"
                      for v, row in self.versions.items()]
        for name, metrics in self.comparisons.items():
            lines += ["", f"## {name} (relative difference, 95% bootstrap interval over devices)", "",
                      "| metric | difference | interval |", "|---|---|---|"]
            lines += [f"| {m} | {d['value']:+.2%} | [{d['low']:+.2%}, {d['high']:+.2%}] |" for m, d in metrics.items()]
        if not self.comparisons:
            lines += ["", "No comparison: no device ran the canary beside another cohort this day."]
        return "\n".join(lines)

    @classmethod
    def markdown_path(cls, day: DayLayout) -> Path:
        return cls.path(day).with_suffix(".md")

    def write(self, day: DayLayout) -> Path:
        write_text(self.markdown_path(day), self.to_markdown() + "\n")
        return super().write(day)


class ReleaseDecision(DayReport):
    """The guardrails' decision on the day's canary and its evidence (`deploy.guardrails`)."""

    file = "release_decision.json"
    ds: str
    action: str  # none | held | wait | promote | rollback
    canary: str | None
    against: str | None
    reasons: list[str]
    passing_days: int
    evidence: dict[str, dict[str, float]]
    done: str | None = None  # what the release action did ("stable -> v... (100%)"), when one ran
