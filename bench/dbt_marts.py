"""dbt build of the marts at the 1M-event world: rows/s and the ratio of its time to the Spark stage's.

    python bench/dbt_marts.py [--events 1000000] [--work DIR]

Reuses bench/spark_jobs.py: simulates one day of about N events (not timed), runs the Spark jobs in a fresh
process (timed: the Spark stage), then `dbt build` (models, 60 data tests, unit tests) on their output, as the
daily DAG does, and the three quality gates (for information). Target: dbt build <= 30% of the Spark stage
time at the same size.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import sys
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path = [p for p in sys.path if Path(p or ".").resolve() != HERE]  # `spark_jobs` must be the package


def spark_bench():
    spec = importlib.util.spec_from_file_location("bench_spark_jobs", HERE / "spark_jobs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="events of the simulated day")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgerec-bench-spark",
                        help="where simulated worlds are kept between runs (shared with bench/spark_jobs.py)")
    args = parser.parse_args()
    bench = spark_bench()
    home, lines = bench.prepare(args.work, args.events)
    spark = bench.measure(home)

    from edgerec.config import load_settings
    from edgerec.marts import build_marts

    settings = load_settings({"EDGEREC_HOME": str(home)})
    started = time.perf_counter()
    with redirect_stdout(io.StringIO()):  # dbt's own progress lines
        summary = build_marts(settings, bench.DS)
    seconds = time.perf_counter() - started
    requests = spark["requests"]["requests"]
    candidates = round(requests * spark["bucketize"]["mean_candidates"])
    print(f"{lines:,} events -> {requests:,} requests, {candidates:,} candidates")
    print(f"spark stage   {spark['total_s']:.1f}s (JVM+session {spark['session_s']:.1f}s)")
    print(f"dbt build     {seconds:.1f}s wall ({summary['elapsed_s']:.1f}s inside dbt; "
          f"{summary['nodes']}): {requests / seconds:,.0f} requests/s, {candidates / seconds:,.0f} candidates/s")
    print(f"marts         {summary['rows']}")
    print(f"dbt / spark   {seconds / spark['total_s']:.1%} (target <= 30%)")
    started = time.perf_counter()
    import great_expectations  # noqa: F401  (its import is paid once per process, not per gate)

    from edgerec.quality.gate import run_quality

    print(f"quality       importing Great Expectations {time.perf_counter() - started:.1f}s")
    for layer in ("raw", "features", "marts"):
        if layer == "raw":  # the raw gate reads the validation report of the DAG's validate task
            from edgerec.raw import validate_raw

            validate_raw(settings, bench.DS)
        started = time.perf_counter()
        report = run_quality(settings, bench.DS, layer, notify=False)
        print(f"quality {layer:<9} {time.perf_counter() - started:.1f}s, {len(report.results)} checks, "
              f"{len(report.failures)} failed")


if __name__ == "__main__":
    main()
