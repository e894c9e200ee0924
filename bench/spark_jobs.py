"""Spark jobs end to end: events/s including JVM start, seconds per stage, and the time ratio at 4x the data.

    python bench/spark_jobs.py [--events 1000000] [--scale 4] [--work DIR]

Simulates one day of about N events (not timed), then runs ingest, sessionize, requests and bucketize in a
fresh process with a fresh JVM, as the daily DAG does. Targets on a 2-core machine: >= 25k events/s end to end
at 1M events; 4x the data in <= 4.4x the time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# this file's name is the package's: keep bench/ off the import path so `spark_jobs` is the package
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
DS = "2026-11-01"
EVENTS_PER_USER_DAY = 102  # of the default world, measured with `edgerec simulate`
STAGES = ("ingest", "sessionize", "requests", "bucketize")


def prepare(work: Path, events: int) -> tuple[Path, int]:
    from edgerec.config import load_settings
    from edgerec.raw import simulate_day

    users = max(1, round(events / EVENTS_PER_USER_DAY))
    home = work / f"users-{users}"
    summary_file = home / "simulated.json"
    if not summary_file.exists():
        settings = load_settings({"EDGEREC_HOME": str(home), "EDGEREC_SIM_USERS": str(users)})
        summary_file.parent.mkdir(parents=True, exist_ok=True)
        summary_file.write_text(json.dumps(simulate_day(settings, DS)))
    return home, json.loads(summary_file.read_text())["lines"]


def child(home: str) -> None:
    started = time.perf_counter()
    from edgerec.config import load_settings
    from spark_jobs.jobs import run_jobs

    result = run_jobs(load_settings({**os.environ, "EDGEREC_HOME": home}), DS, list(STAGES))
    result["total_s"] = time.perf_counter() - started
    print(json.dumps(result))


def measure(home: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", str(home)], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"spark jobs failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="events of the base run")
    parser.add_argument("--scale", type=int, default=4, help="the second run has this many times the data (0: skip)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgerec-bench-spark",
                        help="where simulated worlds are kept between runs")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child)
    sizes = [args.events] + ([args.events * args.scale] if args.scale else [])
    rows = []
    for size in sizes:
        home, lines = prepare(args.work, size)
        r = measure(home)
        rows.append((lines, r))
        stages = "  ".join(f"{s} {r[f'{s}_s']:.1f}s ({lines / r[f'{s}_s']:,.0f}/s)" for s in STAGES)
        print(f"{lines:>10,} events  total {r['total_s']:.1f}s  {lines / r['total_s']:>9,.0f} events/s end to end  "
              f"(JVM+session {r['session_s']:.1f}s; {stages}; requests {r['requests']['requests']:,})", flush=True)
    if len(rows) == 2:
        (n1, r1), (n2, r2) = rows
        print(f"data x{n2 / n1:.2f} -> time x{r2['total_s'] / r1['total_s']:.2f} (target <= 4.4 for 4x)")
    print("target: >= 25,000 events/s end to end at 1M events")


if __name__ == "__main__":
    main()
