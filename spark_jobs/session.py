"""One place that builds the Spark session: local by default, any cluster by EDGEREC_SPARK_MASTER."""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from pyspark.errors import PySparkRuntimeError
from pyspark.sql import SparkSession

from edgerec.config import Settings
from edgerec.errors import ConfigError

log = logging.getLogger(__name__)
ASKED_JAVA_OPTIONS = "spark.edgerec.javaOptions"  # the java_options a session's JVM was started with


def check_master_reachable(master: str, timeout_s: float = 5.0) -> None:
    """A standalone master (`spark://host:port[,host:port]`) that accepts no connection fails here at once, naming
    it and the setting, where Spark would retry it for a minute and then stop the driver."""
    if not master.startswith("spark://"):
        return
    reasons = []
    for address in master.removeprefix("spark://").split(","):
        host, _, port = address.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=timeout_s):
                return
        except (OSError, ValueError) as error:
            reasons.append(f"{address}: {getattr(error, 'strerror', None) or error}")
    raise ConfigError(f"the Spark master {master} accepts no connection ({'; '.join(reasons)}); check "
                      "EDGEREC_SPARK_MASTER and that the cluster runs")


def session_conf(settings: Settings, java_options: str = "") -> dict[str, str]:
    """The Spark configuration every session of the pipeline starts with; java_options: its JVMs' (a day's
    `DayLayout.jvm_options`)."""
    conf = {
        "spark.sql.shuffle.partitions": str(settings.spark.shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.sources.partitionOverwriteMode": "dynamic",  # reruns replace their ds only
        "spark.sql.sources.partitionColumnTypeInference.enabled": "false",  # ds stays a string
        # a join on (user_id, x) of two sides partitioned by user_id alone needs no shuffle (spark_jobs.requests)
        "spark.sql.requireAllClusterKeysForCoPartition": "false",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
    }
    if settings.spark.master.startswith("local"):
        conf["spark.driver.memory"] = settings.spark.driver_memory
    if java_options:
        # PySpark's launcher starts the driver's JVM with them; on a cluster the executors are JVMs of their own
        conf["spark.driver.extraJavaOptions"] = conf["spark.executor.extraJavaOptions"] = java_options
    conf[ASKED_JAVA_OPTIONS] = java_options  # as asked: Spark adds its own to extraJavaOptions
    return conf


@contextmanager
def sql_settings(spark: SparkSession, settings: dict[str, str]) -> Iterator[None]:
    """SQL settings for one job's work, the session's own put back after it: the days of one `edgerec run` share a
    session, and each job asks only for what it needs."""
    before = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


def spark_session(settings: Settings, app_name: str = "edgerec", java_options: str = "") -> SparkSession:
    """A new session, or this process's existing one (the days of one `edgerec run` share its warm JVM): that keeps
    the JVM it started with, its options and memory (PySpark starts one JVM per process and keeps it even past a
    session's stop), and takes the SQL settings anew."""
    check_master_reachable(settings.spark.master)
    if settings.spark.master.startswith("local"):
        # local executors run the contract check in Python: the driver's interpreter, with the project
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name).master(settings.spark.master)
    for key, value in session_conf(settings, java_options).items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except PySparkRuntimeError as error:
        if error.getCondition() != "JAVA_GATEWAY_EXITED":
            raise
        raise ConfigError(jvm_exited_message(settings, java_options)) from error
    started_with = spark.sparkContext.getConf().get(ASKED_JAVA_OPTIONS, "")  # the context's: its JVM's start
    if started_with != java_options:
        log.warning("this process's Spark JVM keeps the JVM options it started with (%r), not %r: a JVM's options "
                    "are set at its start", started_with, java_options)
    spark.sparkContext.setLogLevel("WARN")
    return spark


def jvm_exited_message(settings: Settings, java_options: str) -> str:
    """What a driver's JVM that exits at start (PySpark says only "Java gateway process exited") tells the user: the
    options it was given and the settings behind them (the JVM printed its own reason above)."""
    given = [f"driver memory {settings.spark.driver_memory}"] if settings.spark.master.startswith("local") else []
    given.append(f"JVM options {java_options!r}" if java_options else "no JVM options")
    return (f"Spark's JVM exited as it started ({', '.join(given)}; its own reason is printed above): check "
            "EDGEREC_SPARK_JAVA_OPTIONS, EDGEREC_SPARK_DRIVER_MEMORY and that Java 17 or later is installed")
