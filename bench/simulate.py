"""Simulator throughput and memory: events/s on one core and peak RSS, for the default world and 4x the days.

    python bench/simulate.py [--users N] [--days D]

Each run is a fresh child process, so its peak RSS is its own. Target: >= 100k events/s; peak RSS flat in days.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def child(users: int, days: int) -> None:
    from edgerec.sim.config import load_sim_config
    from edgerec.sim.writer import simulate

    cfg = load_sim_config(users=users, days=days)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        summary = simulate(cfg, Path(out))
        seconds = time.perf_counter() - start
    events = sum(d["events"] for d in summary["days"].values())
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"users": users, "days": days, "events": events, "seconds": seconds, "rss_mb": rss_mb}))


def measure(users: int, days: int) -> dict:
    cmd = [sys.executable, __file__, "--child", "--users", str(users), "--days", str(days)]
    # taskset keeps the simulator on one core, as the target is stated
    out = subprocess.run(["taskset", "-c", "0", *cmd], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1000, help="users of the world (default: the default world)")
    parser.add_argument("--days", type=int, default=1, help="days of the base run; the second run has 4x")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.users, args.days)
    print(f"{'users':>7} {'days':>5} {'events':>11} {'seconds':>8} {'events/s':>10} {'peak RSS MB':>12}")
    rows = [measure(args.users, args.days), measure(args.users, 4 * args.days)]
    for r in rows:
        print(f"{r['users']:>7} {r['days']:>5} {r['events']:>11,} {r['seconds']:>8.2f} "
              f"{r['events'] / r['seconds']:>10,.0f} {r['rss_mb']:>12.1f}")
    print(f"peak RSS ratio 4x days / 1x: {rows[1]['rss_mb'] / rows[0]['rss_mb']:.2f} (flat = 1.00); "
          f"target >= 100,000 events/s on one core")


if __name__ == "__main__":
    main()
