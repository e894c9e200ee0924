"""The Spark session tests/conftest.py starts, as its JVM sees it; a JVM that will not start."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
