"""The Spark session tests/conftest.py starts, as its JVM sees it."""

import pytest

pytestmark = pytest.mark.integration


def test_the_driver_s_jvm_starts_with_the_configured_java_options(spark):
    """Set on the session's builder, the options reach the JVM only because PySpark's launcher reads them before it
    starts it (tests/conftest.py's session, given the quick tier)."""
    runtime = spark._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
    assert "-XX:TieredStopAtLevel=1" in list(runtime.getInputArguments())
