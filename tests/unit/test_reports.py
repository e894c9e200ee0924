"""The day's reports: each a typed record at its one place under the day's reports, written and read by itself."""

import pytest
from pydantic import ValidationError

from edgerec.config import load_settings, write_json
from edgerec.reports import (
    DbtBuild,
    EvaluationGate,
    QualityChecks,
    RawValidation,
    Servability,
    SparkSummary,
    TrainingSummary,
)

pytestmark = pytest.mark.unit


@pytest.fixture
def day(tmp_path):
    return load_settings({"EDGEREC_HOME": str(tmp_path)}).layout("2026-11-03")


def test_every_report_of_a_day_has_its_own_path_under_the_days_reports(day, tmp_path):
    reports = tmp_path / "reports" / "ds=2026-11-03"
    paths = {
        RawValidation.path(day): reports / "raw_validation.json",
        SparkSummary.path(day): reports / "spark_summary.json",
        DbtBuild.path(day): reports / "dbt_build.json",
        QualityChecks.path(day, layer="marts"): reports / "quality_marts.json",
        TrainingSummary.path(day): reports / "training" / "training.json",
        day.comparison("png"): reports / "training" / "comparison.png",
        EvaluationGate.path(day): reports / "training" / "evaluation_gate.json",
        Servability.path(day): reports / "export" / "servability.json",
        Servability.markdown_path(day): reports / "export" / "servability.md",
    }
    assert list(paths) == list(paths.values())


def test_a_report_writes_itself_with_its_directories_and_reads_back_equal(day):
    assert EvaluationGate.read(day) is None  # the gate has not run for the day
    verdict = EvaluationGate(ds="2026-11-03", version="2", version_id="v20261103-ab", blessed=False, gauc=0.79,
                             floor=0.55, champion="1", champion_gauc=0.81, tolerance=0.002, reason="below")
    written = verdict.write(day)
    assert written == EvaluationGate.path(day) and written.read_text().endswith("}\n")
    assert EvaluationGate.read(day) == verdict


def test_a_quality_report_is_placed_by_its_layer(day):
    marts = QualityChecks(layer="marts", ds="2026-11-03", passed=True, checks=3, failed_block=0, failed_warn=1,
                          docs_index=None, skipped=[], results=[], metrics={"requests": 7})
    assert marts.write(day).name == "quality_marts.json"
    assert QualityChecks.read(day, layer="marts").metrics == {"requests": 7}
    assert QualityChecks.read(day, layer="raw") is None


def test_each_spark_job_puts_its_figures_into_the_days_summary(day):
    SparkSummary.record(day, "ingest", {"rows_out": 10})
    SparkSummary.record(day, "requests", {"requests": 4, "event_days_read": ["2026-11-02", "2026-11-03"]})
    SparkSummary.record(day, "ingest", {"rows_out": 12})  # a re-run replaces its own figures only
    summary = SparkSummary.read(day)
    assert (summary.ingest, summary.requests["requests"], summary.sessionize) == ({"rows_out": 12}, 4, None)
    assert summary.event_days_read == ["2026-11-02", "2026-11-03"]
    assert SparkSummary(ds="2026-11-03").event_days_read == []


def test_a_report_of_another_shape_is_refused_naming_the_field(day):
    with pytest.raises(ValidationError, match="unexpected"):
        DbtBuild(ds="2026-11-03", target="duckdb", elapsed_s=1.0, nodes={}, database="w.duckdb", rows={},
                 unexpected=1)
    write_json(TrainingSummary.path(day), {"ds": "2026-11-03", "gauc": 0.8})
    with pytest.raises(ValidationError, match="version_id"):
        TrainingSummary.read(day)
