"""The main job end to end, as `make run` runs it, on a tiny world in a private state directory."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
EDGEREC = str(Path(sys.executable).with_name("edgerec"))
DS = "2026-11-05"


def run(tmp_path, **env):
    environ = dict(os.environ, EDGEREC_HOME=str(tmp_path / "state"), EDGEREC_SIM_USERS="25", **env)
    return subprocess.run([EDGEREC, "run", "--date", DS], env=environ, capture_output=True, text=True,
                          timeout=600)


def test_run_simulates_validates_and_reports(tmp_path):
    result = run(tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"edgerec_daily_retrain ds={DS} succeeded" in result.stdout
    assert "CTR by display position" in result.stdout
    state = tmp_path / "state"
    assert (state / "raw" / "events" / f"ds={DS}" / "part-00000.jsonl.gz").exists()
    assert (state / "raw" / "items" / f"ds={DS}" / "items.parquet").exists()
    report = json.loads((state / "reports" / f"ds={DS}" / "raw_validation.json").read_text())
    assert report["good"] > 1000 and report["bad"] == 0
    assert (state / "airflow" / "airflow.db").exists()
    for dataset in ("events", "sessionized_events", "sessions", "requests", "features", "items"):
        assert (state / "warehouse" / dataset / f"ds={DS}").is_dir(), dataset
    spec = json.loads((state / "warehouse" / "feature_spec" / f"ds={DS}" / "feature_spec.json").read_text())
    assert spec["sequence_lengths"] == {"ie": 50, "ipv": 30, "candidates": 100}
    summary = json.loads((state / "reports" / f"ds={DS}" / "spark_summary.json").read_text())
    assert summary["ingest"]["rows_out"] == report["good"]
    assert summary["ingest"]["quarantined_by_reason"] == {}  # a clean day: nothing quarantined
    assert summary["requests"]["requests"] > 100
    assert "re-ranking requests" in result.stdout


def test_run_fails_on_a_corrupted_day_and_says_why(tmp_path):
    result = run(tmp_path, EDGEREC_SIM_CORRUPT_RATE="0.2")
    assert result.returncode != 0
    assert "above the threshold 1.00%" in result.stdout + result.stderr
    assert f"the daily DAG failed for ds={DS}" in result.stderr


def test_external_source_skips_simulation_and_validates_what_arrived(tmp_path):
    result = run(tmp_path, EDGEREC_SOURCE="external")
    assert result.returncode != 0  # nothing arrived in the raw zone
    assert f"no raw events for ds={DS}" in result.stdout + result.stderr
