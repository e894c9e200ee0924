"""bench/spark_jobs.py's reading of Spark's event log: jobs, stages run and shuffles per pipeline stage."""

import json

import pytest

from tests.benches import load_bench

pytestmark = pytest.mark.unit


def job(job_id, description, stages):
    return {"Event": "SparkListenerJobStart", "Job ID": job_id, "Stage IDs": stages,
            "Properties": {"spark.job.description": description}}


def stage(stage_id, written):
    accumulables = [{"Name": "internal.metrics.shuffle.write.bytesWritten", "Value": str(written)}] if written else []
    return {"Event": "SparkListenerStageCompleted", "Stage Info": {"Stage ID": stage_id, "Accumulables": accumulables}}


def test_jobs_stages_and_shuffles_are_counted_per_pipeline_stage(tmp_path):
    events = [
        job(0, "ingest ds=2026-11-01", [0, 1]), stage(0, 2_000_000), stage(1, 0),
        job(1, "ingest ds=2026-11-01", [2, 3]), stage(3, 0),  # stage 2's shuffle output was reused: it never ran
        job(2, "requests ds=2026-11-01", [4]), stage(4, 500_000),
        {"Event": "SparkListenerTaskEnd"},
    ]
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "events_1_app").write_text("\n".join(json.dumps(e) for e in events))
    figures = load_bench("spark_jobs").spark_figures(tmp_path)
    assert dict(figures) == {
        "ingest": {"jobs": 2, "stages": 3, "shuffles": 1, "shuffle_mb": 2.0},
        "requests": {"jobs": 1, "stages": 1, "shuffles": 1, "shuffle_mb": 0.5},
    }
