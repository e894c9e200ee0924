"""The JVM options and configuration every Spark session of the pipeline starts with (spark_jobs.session)."""

import pytest

from edgerec.config import load_settings
from spark_jobs.session import session_conf

pytestmark = pytest.mark.unit
MB = 2**20


def test_auto_gives_a_small_day_the_quick_jit_and_a_large_or_unknown_one_the_jvm_defaults():
    spark = load_settings({}).spark
    assert spark.java_options == "auto"
    assert spark.jvm_options(2 * MB) == spark.jvm_options(16 * MB - 1) == "-XX:TieredStopAtLevel=1"
    assert spark.jvm_options(16 * MB) == spark.jvm_options(73 * MB) == spark.jvm_options(None) == ""


def test_options_set_are_used_whatever_the_day():
    spark = load_settings({"EDGEREC_SPARK_JAVA_OPTIONS": "-XX:TieredStopAtLevel=4 -Xss4m"}).spark
    assert spark.jvm_options(1) == spark.jvm_options(None) == "-XX:TieredStopAtLevel=4 -Xss4m"


def test_the_options_reach_the_driver_and_the_executors_and_a_cluster_keeps_its_driver_memory():
    local = session_conf(load_settings({}), day_bytes=2 * MB)
    assert local["spark.driver.extraJavaOptions"] == local["spark.executor.extraJavaOptions"] == \
        "-XX:TieredStopAtLevel=1"
    assert local["spark.driver.memory"] == "4g" and local["spark.sql.shuffle.partitions"] == "4"
    large = session_conf(load_settings({"EDGEREC_SPARK_MASTER": "spark://127.0.0.1:7077"}), day_bytes=73 * MB)
    assert not {"spark.driver.extraJavaOptions", "spark.executor.extraJavaOptions", "spark.driver.memory"} & set(large)


def test_a_day_s_raw_events_are_measured_where_this_process_sees_them(tmp_path):
    day = load_settings({"EDGEREC_HOME": str(tmp_path)}).layout("2026-11-01")
    assert day.raw_events_bytes is None
    (day.raw_events / "sub").mkdir(parents=True)
    (day.raw_events / "part-0.jsonl.gz").write_bytes(b"x" * 1000)
    (day.raw_events / "sub" / "part-1.jsonl.gz").write_bytes(b"y" * 24)
    assert day.raw_events_bytes == 1024
