"""The Spark jobs on a standalone cluster (a master and two workers, executors in their own JVMs and Python
workers) through spark-submit of the packaged entry point: they write what the local[*] run writes. The DAG's
tasks on the cluster (through EDGEREC_SPARK_MASTER): test_airflow.py."""

import os
import shutil

import pytest

from edgerec.config import REPO_ROOT
from spark_jobs.package import package_jobs
from tests.integration.conftest import DAYS
from tests.integration.stack.outputs import assert_same_day

pytestmark = [pytest.mark.integration, pytest.mark.stack]


def test_spark_submit_on_the_cluster_writes_what_local_mode_writes(world, spark_cluster, tmp_path):
    local = world[0]
    on_cluster = local.replace(home=tmp_path / "state")
    shutil.copytree(local.raw, on_cluster.raw)
    env = {**os.environ, "EDGEREC_HOME": str(on_cluster.home),
           "EDGEREC_SPARK_SHUFFLE_PARTITIONS": str(local.spark.shuffle_partitions)}
    spark_cluster.submit(REPO_ROOT / "spark_jobs" / "main.py", ["all", "--ds", DAYS[0]],
                         package_jobs(tmp_path / "dist"), env, tmp_path / "spark-submit.log")
    assert_same_day(on_cluster, local, DAYS[0])
