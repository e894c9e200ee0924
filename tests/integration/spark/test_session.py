"""The Spark sessions the pipeline starts, as their JVMs see them; a JVM that will not start."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spark_jobs.session import sql_settings

pytestmark = pytest.mark.integration


def test_the_driver_s_jvm_starts_with_the_configured_java_options(spark):
    """Set on the session's builder, the options reach the JVM only because PySpark's launcher reads them before it
    starts it (tests/conftest.py's session, given the quick tier)."""
    runtime = spark._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
    assert "-XX:TieredStopAtLevel=1" in list(runtime.getInputArguments())


def test_a_java_option_the_jvm_refuses_fails_naming_the_setting(tmp_path):
    """PySpark says only "Java gateway process exited": the command names the options and the setting to fix. (Spark
    starts its JVMs with -XX:+IgnoreUnrecognizedVMOptions: an unknown option is ignored, a bad value is not.)"""
    env = {**os.environ, "EDGEREC_HOME": str(tmp_path), "EDGEREC_SPARK_JAVA_OPTIONS": "-Xss1q",
           "EDGEREC_SPARK_DRIVER_MEMORY": "1g"}
    result = subprocess.run([str(Path(sys.executable).with_name("edgerec")), "spark", "run", "ingest", "--ds",
                             "2026-11-01"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert ("Spark's JVM exited as it started (driver memory 1g, JVM options '-Xss1q'; its own reason is "
            "printed above): check EDGEREC_SPARK_JAVA_OPTIONS") in " ".join(result.stderr.split())
    assert "Invalid thread stack size: -Xss1q" in result.stderr and "Traceback" not in result.stderr


SESSIONS = """
import json, sys
from edgerec.config import load_settings
from spark_jobs.session import spark_session

settings = load_settings({"EDGEREC_SPARK_DRIVER_MEMORY": "1g"})
def jvm(options):
    spark = spark_session(settings, "edgerec-test", options)
    runtime = spark._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
    return [runtime.getName(), [a for a in runtime.getInputArguments() if a.startswith("-XX:Tiered")]]
print(json.dumps([jvm("-XX:TieredStopAtLevel=1"), jvm("-XX:TieredStopAtLevel=1"), jvm("")]))
"""


def test_the_process_s_jvm_is_kept_with_the_options_it_started_with_and_says_so():
    """The days of one `edgerec run` share the JVM of their process; a day that wants other options is told that the
    JVM keeps those it started with."""
    result = subprocess.run([sys.executable, "-c", SESSIONS], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    (first, quick), (again, quick_again), (other, kept) = json.loads(result.stdout.splitlines()[-1])
    assert first == again == other and quick == quick_again == kept == ["-XX:TieredStopAtLevel=1"]
    assert ("this process's Spark JVM keeps the JVM options it started with ('-XX:TieredStopAtLevel=1'), not ''"
            in result.stderr) and result.stderr.count("keeps the JVM options") == 1


def test_a_job_s_sql_settings_hold_inside_its_block_and_the_session_s_come_back_after(spark):
    compressed, cbo = "spark.sql.inMemoryColumnarStorage.compressed", "spark.sql.cbo.enabled"
    spark.conf.unset(cbo)
    before = spark.conf.get(compressed)
    with pytest.raises(RuntimeError, match="inside"), sql_settings(spark, {compressed: "false", cbo: "true"}):
        assert (spark.conf.get(compressed), spark.conf.get(cbo)) == ("false", "true")
        raise RuntimeError("a job that fails inside its block")
    assert spark.conf.get(compressed) == before == "true"
    assert spark.conf.get(cbo) == "false"  # back to Spark's default: the session never set it
