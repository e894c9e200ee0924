"""The JVM options and configuration the pipeline's Spark sessions start with (EDGEREC_SPARK_JAVA_OPTIONS)."""

import pytest

from edgerec.config import load_settings
from edgerec.errors import ConfigError
from edgerec.marts import dbt_env
from spark_jobs import jobs, session
from spark_jobs.session import session_conf

pytestmark = pytest.mark.unit
MB = 2**20
DS = "2026-11-01"


def day_of(tmp_path, size: int, **env):
    settings = load_settings({"EDGEREC_HOME": str(tmp_path), **env})
    day = settings.layout(DS)
    day.raw_events.mkdir(parents=True)
    (day.raw_events / "part-0.jsonl.gz").write_bytes(b"x" * size)
    return settings, day


def test_auto_gives_a_small_day_the_quick_jit_a_large_one_the_throughput_collector_an_unknown_one_the_defaults():
    spark = load_settings({}).spark
    assert spark.java_options == "auto"
    assert spark.jvm_options(2 * MB) == spark.jvm_options(16 * MB - 1) == "-XX:TieredStopAtLevel=1"
    assert spark.jvm_options(16 * MB) == spark.jvm_options(73 * MB) == "-XX:+UseParallelGC"
    assert spark.jvm_options(None) == ""
    assert load_settings({"EDGEREC_SPARK_JAVA_OPTIONS": " Auto"}).spark.jvm_options(1) == "-XX:TieredStopAtLevel=1"


def test_options_set_are_used_whatever_the_day():
    spark = load_settings({"EDGEREC_SPARK_JAVA_OPTIONS": "-XX:TieredStopAtLevel=4 -Xss4m"}).spark
    assert spark.jvm_options(1) == spark.jvm_options(None) == "-XX:TieredStopAtLevel=4 -Xss4m"


def test_the_options_reach_the_driver_and_the_executors_and_a_cluster_keeps_its_driver_memory():
    local = session_conf(load_settings({}), "-XX:TieredStopAtLevel=1")
    assert local["spark.driver.extraJavaOptions"] == local["spark.executor.extraJavaOptions"] == \
        "-XX:TieredStopAtLevel=1"
    assert local["spark.driver.memory"] == "4g" and local["spark.sql.shuffle.partitions"] == "4"
    cluster = session_conf(load_settings({"EDGEREC_SPARK_MASTER": "spark://127.0.0.1:7077"}), "-Xss4m")
    assert cluster["spark.executor.extraJavaOptions"] == "-Xss4m" and "spark.driver.memory" not in cluster
    none = session_conf(load_settings({}), "")
    assert not {"spark.driver.extraJavaOptions", "spark.executor.extraJavaOptions"} & set(none)
    assert (local[session.ASKED_JAVA_OPTIONS], none[session.ASKED_JAVA_OPTIONS]) == ("-XX:TieredStopAtLevel=1", "")


def test_a_day_s_raw_events_are_measured_on_this_machine(tmp_path):
    day = load_settings({"EDGEREC_HOME": str(tmp_path)}).layout(DS)
    assert day.raw_events_bytes is None and day.jvm_options == ""
    (day.raw_events / "sub").mkdir(parents=True)
    (day.raw_events / "part-0.jsonl.gz").write_bytes(b"x" * 1000)
    (day.raw_events / "sub" / "part-1.jsonl.gz").write_bytes(b"y" * 24)
    assert day.raw_events_bytes == 1024 and day.jvm_options == "-XX:TieredStopAtLevel=1"
    single = load_settings({"EDGEREC_HOME": str(tmp_path / "single")}).layout(DS)
    single.raw_events.parent.mkdir(parents=True)
    single.raw_events.write_bytes(b"z" * 10)  # ds=... as one file
    assert single.raw_events_bytes == 10


def test_the_day_s_jobs_start_their_session_with_the_day_s_options(tmp_path, monkeypatch):
    started = []

    def spark_session(settings, app_name, java_options):
        started.append(java_options)
        raise RuntimeError("no JVM in a unit test")

    monkeypatch.setattr(session, "spark_session", spark_session)
    settings, _ = day_of(tmp_path, 1000)
    with pytest.raises(RuntimeError):
        jobs.run_jobs(settings, DS, ["ingest"])
    assert started == ["-XX:TieredStopAtLevel=1"]


def test_dbt_s_in_process_session_gets_the_day_s_options_ahead_of_the_caller_s(tmp_path):
    settings, _ = day_of(tmp_path, 1000, EDGEREC_DBT_TARGET="spark", EDGEREC_DBT_SPARK_METHOD="session")
    assert dbt_env(settings, DS, {})["PYSPARK_SUBMIT_ARGS"] == \
        "--driver-java-options -XX:TieredStopAtLevel=1 pyspark-shell"
    assert dbt_env(settings, DS, {"PYSPARK_SUBMIT_ARGS": "--conf a=b pyspark-shell"})["PYSPARK_SUBMIT_ARGS"] == \
        "--driver-java-options -XX:TieredStopAtLevel=1 --conf a=b pyspark-shell"
    thrift = settings.replace(dbt={"spark_method": "thrift"})
    duckdb = settings.replace(dbt={"target": "duckdb"})
    large = load_settings({"EDGEREC_HOME": str(tmp_path / "none"), "EDGEREC_DBT_TARGET": "spark",
                           "EDGEREC_DBT_SPARK_METHOD": "session"})  # no raw events here: the JVM's defaults
    for other in (thrift, duckdb, large):
        assert "PYSPARK_SUBMIT_ARGS" not in dbt_env(other, DS, {})


def test_a_jvm_that_exits_at_start_is_told_with_its_options_and_the_settings_behind_them():
    local = load_settings({"EDGEREC_SPARK_DRIVER_MEMORY": "3g"})
    assert session.jvm_exited_message(local, "-Xbad") == (
        "Spark's JVM exited as it started (driver memory 3g, JVM options '-Xbad'; its own reason is printed above): "
        "check EDGEREC_SPARK_JAVA_OPTIONS, EDGEREC_SPARK_DRIVER_MEMORY and that Java 17 or later is installed")
    cluster = load_settings({"EDGEREC_SPARK_MASTER": "spark://127.0.0.1:7077"})
    assert session.jvm_exited_message(cluster, "").startswith("Spark's JVM exited as it started (no JVM options; ")


def test_a_driver_memory_the_jvm_would_refuse_is_a_configuration_error():
    assert load_settings({"EDGEREC_SPARK_DRIVER_MEMORY": "2048M"}).spark.driver_memory == "2048M"
    with pytest.raises(ConfigError, match="EDGEREC_SPARK_DRIVER_MEMORY = '4 GB'"):
        load_settings({"EDGEREC_SPARK_DRIVER_MEMORY": "4 GB"})


def test_the_days_of_one_run_share_the_options_of_their_largest_day_here():
    auto, set_ = load_settings({}).spark, load_settings({"EDGEREC_SPARK_JAVA_OPTIONS": "-Xss4m"}).spark
    assert auto.shared_jvm_options([2 * MB, None, 73 * MB]) == "-XX:+UseParallelGC"
    assert auto.shared_jvm_options([None, 2 * MB, 16 * MB - 1]) == "-XX:TieredStopAtLevel=1"
    assert auto.shared_jvm_options([None, None]) is None and set_.shared_jvm_options([2 * MB, 73 * MB]) is None
