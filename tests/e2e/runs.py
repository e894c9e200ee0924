"""What the end-to-end tests share: `edgerec run` on a tiny world in a private state directory, and reading its
outputs. Each test module holds what one worker of `make test` runs (`--dist loadfile`)."""

import os
import subprocess
import sys
from pathlib import Path

from edgerec.config import DayLayout, load_settings

EDGEREC = str(Path(sys.executable).with_name("edgerec"))
DS = "2026-11-05"
FIRST = "2026-11-04"
# a bound on a hung run, not a check of speed: a three-day run took 904 s on a slow 2-core host beside the other
# worker's tests, against about 330 s alone (a hang costs CI up to this much, inside its 90-minute limit)
RUN_TIMEOUT_S = 2400


def run(tmp_path, *args, **env):
    environ = {**os.environ, "EDGEREC_HOME": str(tmp_path / "state"), "EDGEREC_SIM_USERS": "25", **env}
    return subprocess.run([EDGEREC, "run", "--date", DS, "--days", "1", *args], env=environ, capture_output=True,
                          text=True, timeout=RUN_TIMEOUT_S)


def day_of(state: Path, ds: str) -> DayLayout:
    return load_settings({"EDGEREC_HOME": str(state)}).layout(ds)


def alerts_of(received) -> list[dict]:
    return [alert for body in received for alert in body["alerts"]]
