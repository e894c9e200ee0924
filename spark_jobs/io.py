"""Reading and writing ds-partitioned parquet datasets of the warehouse."""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import DataFrame, SparkSession


def read_partitions(spark: SparkSession, root: Path, days: list[str], merge_schema: bool = False) -> DataFrame | None:
    """The given ds partitions of a dataset that exist (None when none does), with the ds column. `merge_schema`:
    the union of the partitions' columns (each file's footer read), for days written before an optional field of the
    contract existed."""
    paths = [str(root / f"ds={d}") for d in days if (root / f"ds={d}").exists()]
    if not paths:
        return None
    return spark.read.option("basePath", str(root)).option("mergeSchema", str(merge_schema).lower()).parquet(*paths)


def write_partitions(df: DataFrame, root: Path) -> None:
    """Overwrite exactly the ds partitions present in df (dynamic partition overwrite)."""
    df.write.mode("overwrite").partitionBy("ds").parquet(str(root))


def write_partition(df: DataFrame, root: Path, ds: str) -> None:
    """Overwrite the one partition ds with df (no ds column). Unlike write_partitions, an empty df still leaves a
    file with its schema, so that readers of the dataset find the partition."""
    df.write.mode("overwrite").parquet(str(root / f"ds={ds}"))
