"""The day's layout owns the path of every report the stages hand each other."""

import pytest

from edgerec.config import load_settings, read_json, write_json

pytestmark = pytest.mark.unit


def test_every_report_of_a_day_has_its_own_path_under_the_days_reports(tmp_path):
    day = load_settings({"EDGEREC_HOME": str(tmp_path)}).layout("2026-11-03")
    reports = tmp_path / "reports" / "ds=2026-11-03"
    paths = {
        day.raw_validation_report: reports / "raw_validation.json",
        day.spark_summary: reports / "spark_summary.json",
        day.dbt_build_report: reports / "dbt_build.json",
        day.quality_report("marts"): reports / "quality_marts.json",
        day.training_summary: reports / "training" / "training.json",
        day.comparison("png"): reports / "training" / "comparison.png",
        day.evaluation_gate_report: reports / "training" / "evaluation_gate.json",
        day.servability_report(): reports / "export" / "servability.json",
        day.servability_report("md"): reports / "export" / "servability.md",
    }
    assert list(paths) == list(paths.values())


def test_a_report_is_written_with_its_directories_and_a_missing_one_reads_as_none(tmp_path):
    day = load_settings({"EDGEREC_HOME": str(tmp_path)}).layout("2026-11-03")
    assert read_json(day.training_summary) is None
    written = write_json(day.training_summary, {"gauc": 0.8, "window": ["2026-11-01", "2026-11-02"]})
    assert written == day.training_summary
    assert read_json(day.training_summary) == {"gauc": 0.8, "window": ["2026-11-01", "2026-11-02"]}
    assert day.training_summary.read_text().endswith("}\n")
