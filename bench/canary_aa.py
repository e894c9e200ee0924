"""How much a canary cohort's difference says: each day of a state directory's marts split by the canary's rollout
hash, whatever the devices ran, and the bucket against the other devices, as the canary analysis compares them. On a
day no device ran a model this is an A/A comparison: what user composition alone gives.

    python bench/canary_aa.py --home STATE [--percent 10]
"""

from __future__ import annotations

import argparse
import os

import duckdb
import numpy as np

from deploy.channels import in_rollout
from edgerec.canary import COLUMNS, relative_difference
from edgerec.config import load_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", default=None, help="state directory [default: EDGEREC_HOME]")
    parser.add_argument("--percent", type=float, default=10.0, help="the canary's rollout percent")
    args = parser.parse_args()
    settings = load_settings(os.environ | ({"EDGEREC_HOME": args.home} if args.home else {}))
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
        rows = con.sql(f"select cast(ds as varchar), device_id, model_version, {', '.join(COLUMNS)} "
                       "from int_device_version_daily order by ds, device_id").fetchall()
    print("| ds | bucket devices | they ran | CTR vs the others | clicks per device vs the others |")
    print("|---|---|---|---|---|")
    for ds in sorted({r[0] for r in rows}):
        day = [r for r in rows if r[0] == ds]
        inside = [r for r in day if in_rollout(r[1], "canary", args.percent)]
        outside = [r for r in day if not in_rollout(r[1], "canary", args.percent)]

        def columns(part: list) -> dict[str, np.ndarray]:
            return {c: np.array([r[3 + i] for r in part], dtype=np.float64) for i, c in enumerate(COLUMNS)}

        cells = []
        for metric in ("CTR", "clicks per device"):
            d = relative_difference(columns(inside), columns(outside), metric)
            cells.append(f"{d['value']:+.1%} [{d['low']:+.1%}, {d['high']:+.1%}]")
        print(f"| {ds} | {len(inside)} | {', '.join(sorted({r[2] for r in inside}))} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
