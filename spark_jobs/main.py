"""Entry point for spark-submit, the same jobs as `edgerec spark ...`:

    python -m spark_jobs.package dist/     # the jobs and the core they import, as dist/edgerec_spark.zip
    spark-submit --master spark://HOST:7077 --py-files dist/edgerec_spark.zip spark_jobs/main.py all --ds 2026-11-01

Executors need an interpreter with the project's dependencies (PYSPARK_PYTHON). Settings come from the EDGEREC_*
environment. EDGEREC_HOME must be a path the driver and every executor
see (a shared mount): the mains check inputs and write the spec and summary with ordinary file I/O.
"""

from __future__ import annotations

import argparse
import json
import logging

from edgerec.config import load_settings
from spark_jobs.jobs import JOBS, run_jobs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("job", choices=[*JOBS, "all"])
    parser.add_argument("--ds", required=True, help="logical date YYYY-MM-DD")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    names = list(JOBS) if args.job == "all" else [args.job]
    print(json.dumps(run_jobs(load_settings(), args.ds, names), indent=2))


if __name__ == "__main__":
    main()
