"""A team's own client logs from 2019, backfilled through `edgerec run` from an external raw zone."""

import os
import subprocess

import pytest

from edgerec.reports import TrainingSummary
from tests import past_logs
from tests.e2e.runs import EDGEREC, RUN_TIMEOUT_S, day_of

pytestmark = pytest.mark.e2e


def test_logs_from_a_team_s_past_run_every_task_of_their_day(tmp_path):
    """Client logs from 2019 (long before any default date) in an external raw zone: a three-day backfill runs every
    task of each day in order instead of silently doing nothing, and leaves each day's marts, reports and (from the
    second day, the first with a train day) its model version."""
    raw, state, days = tmp_path / "raw", tmp_path / "state", past_logs.DAYS
    past_logs.write_logs(raw)
    result = subprocess.run([EDGEREC, "run", "--date", days[-1], "--days", "3"], capture_output=True, text=True,
                            timeout=RUN_TIMEOUT_S,
                            env={**os.environ, "EDGEREC_HOME": str(state), "EDGEREC_SOURCE": "external",
                                 "EDGEREC_RAW_DIR": str(raw), **past_logs.lenient_env(tmp_path)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = result.stdout[result.stdout.index("== 3 days of edgerec_daily_retrain =="):].splitlines()
    rows = [line.split() for line in table[2:5]]
    assert [row[0] for row in rows] == days
    assert rows[0][3:] == ["0", "no", "version", "trained"]
    for ds, row in zip(days[1:], rows[1:], strict=True):
        vid = TrainingSummary.read(day_of(state, ds)).version_id
        assert vid.startswith(f"v{ds.replace('-', '')}-") and row[3] == "0" and row[4] == vid, row
        assert int(row[1]) >= 14 and row[2] == "1"  # every task ran but simulate_raw, skipped and saying why
    for ds in days:
        past_logs.assert_day_done(day_of(state, ds))
    assert "EDGEREC_SOURCE=external: client logs arrive in the raw zone" in result.stdout
