"""Reading and writing ds-partitioned parquet datasets of the warehouse."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark import TaskContext
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


def write_arrow_partition(df: DataFrame, transform: Callable[[pa.RecordBatch], pa.RecordBatch], schema: pa.Schema,
                          path: Path) -> int:
    """Replace the directory `path` (one ds partition) with transform(batch) of each of df's Arrow batches, written
    as parquet by the Python workers themselves; returns the rows written.

    For output made in Python (bucketize's encoded lists): Spark would turn the batches back into rows and write
    those with its own writer, which costs more than making them. Each task writes one file, named by its partition
    (a retried task's file replaces the failed attempt's), into a hidden staging directory beside `path`, which
    replaces `path` once every task has succeeded; a failed write leaves `path` as it was (and a process that died
    mid-write leaves hidden directories the next write of `path` removes). Every task writes its
    file even when it has no rows, so the partition always holds a file with the schema. The files must land where
    the driver sees them (a local or shared filesystem), as with Spark's own writer.
    """
    for leftover in [*path.parent.glob(f".{path.name}.staging-*"), *path.parent.glob(f".{path.name}.old-*")]:
        shutil.rmtree(leftover)  # of a write whose process died: readers skip hidden directories, but disks fill
    staging = path.parent / f".{path.name}.staging-{uuid.uuid4().hex}"

    def write_task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        context = TaskContext.get()
        final = staging / f"part-{context.partitionId():05d}.parquet"
        partial = staging / f".part-{context.partitionId():05d}-{context.attemptNumber()}.parquet"
        rows = 0
        with pq.ParquetWriter(partial, schema, compression="snappy") as writer:
            for batch in batches:
                out = transform(batch)
                writer.write_batch(out)
                rows += out.num_rows
        os.replace(partial, final)
        yield pa.RecordBatch.from_pydict({"rows": [rows]})

    staging.mkdir(parents=True)
    try:
        rows = sum(r.rows for r in df.mapInArrow(write_task, "rows long").collect())
        if not any(staging.glob("*.parquet")):  # a DataFrame of no partitions ran no task
            pq.write_table(schema.empty_table(), staging / "part-00000.parquet")
        if path.exists():
            old = path.parent / f".{path.name}.old-{uuid.uuid4().hex}"
            path.rename(old)
            staging.rename(path)
            shutil.rmtree(old)
        else:
            staging.rename(path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return rows
