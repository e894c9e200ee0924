"""The code a cluster's executors import, as one zip for `spark-submit --py-files`: the jobs and the core they use.

    python -m spark_jobs.package dist/   # then
    spark-submit --master spark://HOST:7077 --py-files dist/edgerec_spark.zip spark_jobs/main.py all --ds D
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("edgerec", "spark_jobs")  # spark_jobs imports nothing above the core (tests/unit/test_layers.py)


def package_jobs(out_dir: Path) -> Path:
    """Write OUT_DIR/edgerec_spark.zip with every .py and data file of PACKAGES; returns its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "edgerec_spark.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for package in PACKAGES:
            for path in sorted((ROOT / package).rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    zf.write(path, path.relative_to(ROOT).as_posix())
    return target


if __name__ == "__main__":
    print(package_jobs(Path(sys.argv[1] if len(sys.argv) > 1 else "dist")))
