"""The four Spark jobs on a standalone cluster (a master and two workers, executors in their own JVMs and Python
workers), once through EDGEREC_SPARK_MASTER and once through spark-submit of the packaged entry point: they write
what the local[*] run of the same raw days writes."""

import json
import os
import shutil
import subprocess

import pyarrow.parquet as pq
import pytest

from edgerec.config import REPO_ROOT
from pipeline.services import tool
from spark_jobs.package import package_jobs
from tests.integration.conftest import DAYS

pytestmark = [pytest.mark.integration, pytest.mark.stack]
DATASETS = ["events", "quarantine", "items", "sessionized_events", "sessions", "requests", "features",
            "train_features"]


def rows(settings, name: str) -> list[str]:
    """A dataset's rows as sorted JSON lines, the state directory's path written as HOME (the quarantine names
    each bad line's file): equal datasets, whatever their files and row order."""
    table = pq.read_table(settings.dataset(name))
    return sorted(json.dumps(row, sort_keys=True, default=str).replace(str(settings.home), "HOME")
                  for row in table.to_pylist())


def test_the_jobs_on_the_cluster_write_what_local_mode_writes(world, spark_cluster, tmp_path):
    local = world[0]
    home = tmp_path / "state"
    shutil.copytree(local.raw, home / "raw")
    env = {**os.environ, **spark_cluster.client_env, "EDGEREC_HOME": str(home),
           "EDGEREC_SPARK_SHUFFLE_PARTITIONS": str(local.spark.shuffle_partitions)}
    log = tmp_path / "jobs.log"
    with log.open("w") as out:  # day 1 through the CLI, as the DAG's tasks run it
        done = subprocess.run([tool("edgerec"), "spark", "run", "all", "--ds", DAYS[0]], env=env, stdout=out,
                              stderr=subprocess.STDOUT, check=False)
    assert done.returncode == 0, log.read_text()[-3000:]
    # day 2 through spark-submit, the code shipped as a zip
    spark_cluster.submit(REPO_ROOT / "spark_jobs" / "main.py", ["all", "--ds", DAYS[1]],
                         package_jobs(tmp_path / "dist"), env, log)
    on_cluster = local.replace(home=home)
    for name in DATASETS:
        assert rows(on_cluster, name) == rows(local, name), name
    for ds in DAYS:
        spec = json.loads(on_cluster.layout(ds).feature_spec.read_text())
        assert spec["sha256"] == json.loads(local.layout(ds).feature_spec.read_text())["sha256"]
