"""One place that builds the Spark session: local by default, any cluster by EDGEREC_SPARK_MASTER."""

from __future__ import annotations

import os
import sys

from pyspark.sql import SparkSession

from edgerec.config import Settings


def spark_session(settings: Settings, app_name: str = "edgerec") -> SparkSession:
    if settings.spark.master.startswith("local"):
        # local executors run the contract check in Python: the driver's interpreter, with the project
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.appName(app_name)
        .master(settings.spark.master)
        .config("spark.sql.shuffle.partitions", str(settings.spark.shuffle_partitions))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.sources.partitionOverwriteMode", "dynamic")  # reruns replace their ds only
        .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")  # ds stays a string
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
    )
    if settings.spark.master.startswith("local"):
        builder = builder.config("spark.driver.memory", settings.spark.driver_memory)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
