"""A team's client logs from 2019, long before any default date: three days of 25 simulated users written as an
external raw zone, the settings that let such a tiny world through every gate, and what each backfilled day must
leave behind. Both backfills use them: `edgerec run` (tests/e2e) and Airflow's own (tests/integration/stack)."""

import subprocess
import sys
from pathlib import Path

from edgerec.config import DayLayout
from edgerec.reports import DbtBuild, QualityChecks, RawValidation, SparkSummary

DAYS = ["2019-02-27", "2019-02-28", "2019-03-01"]
DRIFT_BLOCKS = "ctr_change: {warn: 0.2, block: 0.5}"
EDGEREC = str(Path(sys.executable).with_name("edgerec"))


def write_logs(raw: Path) -> None:
    """DAYS into the raw zone at `raw`, beside whatever days it holds already."""
    done = subprocess.run([EDGEREC, "simulate", "--out", str(raw), "--users", "25", "--days", str(len(DAYS)),
                           "--start-date", DAYS[0]], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr


def lenient_env(directory: Path) -> dict[str, str]:
    """The pipeline's settings under which 25 users' days pass every gate (each gate's judgement is tested on its
    own): the CTR drift only warns (it moves by half from one day to the next here, 0.019 -> 0.030), and every
    version is blessed (a recall version of the third day has Recall@20 0.02)."""
    defaults = (Path(__file__).parents[1] / "edgerec" / "quality" / "thresholds.yml").read_text()
    assert DRIFT_BLOCKS in defaults
    quality = directory / "quality.yml"
    quality.write_text(defaults.replace(DRIFT_BLOCKS, "ctr_change: {warn: 0.2, block: 100.0}"))
    return {"EDGEREC_QUALITY_CONFIG": str(quality),
            **dict.fromkeys(("EDGEREC_GATE_MIN_GAUC", "EDGEREC_RECALL_MIN_RECALL_AT_20"), "0.0"),
            **dict.fromkeys(("EDGEREC_GATE_TOLERANCE", "EDGEREC_RECALL_TOLERANCE"), "1.0")}


def assert_day_done(layout: DayLayout) -> None:
    """The day's reports, in the order its tasks write them: raw validation, the Spark jobs, the marts (a train
    split from the second day on) and the three quality layers, all passed."""
    ds = layout.ds
    assert RawValidation.read(layout).good > 100 and SparkSummary.read(layout).requests["requests"] > 10, ds
    marts = DbtBuild.read(layout)
    assert marts.ds == ds and marts.rows["fct_test_requests"] > 10, ds
    assert (marts.rows["fct_train_requests"] > 10) == (ds != DAYS[0]), ds  # the first day has no train day
    assert all(QualityChecks.read(layout, layer=layer).passed for layer in ("raw", "features", "marts")), ds
