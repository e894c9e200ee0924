"""Spark jobs end to end: events/s including JVM start; per stage its seconds, Spark jobs and stages, shuffles, bytes.

    python bench/spark_jobs.py [--events 1000000] [--scale 4] [--work DIR]

Simulates one day of about N events (not timed), then runs ingest, sessionize, requests and bucketize in a
fresh process with a fresh JVM, as the daily DAG does. Shuffles are counted from Spark's event log: each stage that
writes shuffle output is one shuffle. Targets on a 2-core machine: >= 25k events/s end to end at 1M events; 4x the
data in <= 4.4x the time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
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


def spark_figures(event_log_dir: Path) -> dict[str, dict]:
    """Per stage of the pipeline (the Spark job description run_jobs sets): Spark jobs and stages run (the fixed cost
    a small day pays), shuffles and bytes written."""
    stage_of_job: dict[int, str] = {}
    figures: dict[str, dict] = defaultdict(lambda: {"jobs": 0, "stages": 0, "shuffles": 0, "shuffle_mb": 0.0})
    for log in event_log_dir.rglob("events_*"):
        for line in log.read_text().splitlines():
            event = json.loads(line)
            if event["Event"] == "SparkListenerJobStart":
                name = (event.get("Properties") or {}).get("spark.job.description", "").split(" ")[0]
                stage_of_job.update({stage: name for stage in event["Stage IDs"]})
                figures[name]["jobs"] += 1
            elif event["Event"] == "SparkListenerStageCompleted":
                info = event["Stage Info"]
                stage = figures[stage_of_job.get(info["Stage ID"], "")]
                stage["stages"] += 1  # run ones only: a stage whose shuffle output is reused never completes
                written = sum(int(a.get("Value", 0)) for a in info.get("Accumulables", [])
                              if a.get("Name") == "internal.metrics.shuffle.write.bytesWritten")
                if written:
                    stage["shuffles"] += 1
                    stage["shuffle_mb"] += written / 1e6
    return figures


def measure(home: Path, keep: Path | None = None, java_options: str | None = None) -> dict:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    with contextlib.nullcontext(str(keep)) if keep else tempfile.TemporaryDirectory() as event_log:
        conf = {"spark.eventLog.enabled": "true", "spark.eventLog.dir": event_log, "spark.eventLog.compress": "false",
                "spark.eventLog.rolling.enabled": "true"}  # the events_* files read below
        env = {**os.environ, "PYSPARK_SUBMIT_ARGS": " ".join(f"--conf {k}={v}" for k, v in conf.items())
               + " pyspark-shell"}
        if java_options:
            env["EDGEREC_SPARK_JAVA_OPTIONS"] = java_options
        out = subprocess.run([sys.executable, __file__, "--child", str(home)], capture_output=True, text=True,
                             env=env)
        if out.returncode != 0:
            sys.exit(f"spark jobs failed:\n{out.stderr[-4000:]}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result["spark"] = spark_figures(Path(event_log))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="events of the base run")
    parser.add_argument("--scale", type=int, default=4, help="the second run has this many times the data (0: skip)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgerec-bench-spark",
                        help="where simulated worlds are kept between runs")
    parser.add_argument("--event-log", type=Path, default=None, metavar="DIR",
                        help="keep each run's Spark event log in DIR/<events>-<time> (plans, stages)")
    parser.add_argument("--java-options", default=None, metavar="OPTS",
                        help="the JVMs' options (EDGEREC_SPARK_JAVA_OPTIONS; default: the setting's), e.g. "
                             "-XX:TieredStopAtLevel=4 for the JIT's full tiers")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child)
    from edgerec.config import load_settings

    java_options = args.java_options or load_settings().spark.java_options
    sizes = [args.events] + ([args.events * args.scale] if args.scale else [])
    rows = []
    for size in sizes:
        home, lines = prepare(args.work, size)
        settings = load_settings({"EDGEREC_HOME": str(home), "EDGEREC_SPARK_JAVA_OPTIONS": java_options})
        jvm = settings.layout(DS).jvm_options or "the JVM's defaults"
        print(f"{lines:,} events: running the four stages in a fresh JVM ({java_options}: {jvm}) ...", flush=True)
        r = measure(home, args.event_log / f"{lines}-{time.strftime('%Y%m%dT%H%M%S')}" if args.event_log else None,
                    java_options)
        rows.append((lines, r))
        print(f"{lines:>10,} events  total {r['total_s']:.1f}s  {lines / r['total_s']:>9,.0f} events/s end to end  "
              f"(JVM+session {r['session_s']:.1f}s; requests {r['requests']['requests']:,})")
        for stage in STAGES:
            s = r["spark"][stage]  # a defaultdict: a stage that ran no Spark job reads as zeros
            print(f"    {stage:<11} {r[f'{stage}_s']:7.1f}s {lines / r[f'{stage}_s']:>10,.0f} events/s  "
                  f"{s['jobs']:>3} jobs {s['stages']:>3} stages {s['shuffles']:>3} shuffles  "
                  f"{s['shuffle_mb']:8.1f} MB shuffled", flush=True)
    if len(rows) == 2:
        (n1, r1), (n2, r2) = rows
        print(f"data x{n2 / n1:.2f} -> time x{r2['total_s'] / r1['total_s']:.2f} (target <= 4.4 for 4x)")
    print("target: >= 25,000 events/s end to end at 1M events")


if __name__ == "__main__":
    main()
