"""Reading and writing ds-partitioned parquet datasets of the warehouse."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
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


STAGING = "_staging"  # beside a dataset's partitions: Spark's discovery and the readers' `*/*.parquet` skip it
PART_NAME = re.compile(r"part-(\d{5})\.parquet")


def write_arrow_partition(df: DataFrame, transform: Callable[[pa.RecordBatch], Iterable[pa.RecordBatch]],
                          schema: pa.Schema, path: Path) -> int:
    """Replace the directory `path` (one ds partition) with the batches transform(batch) yields for each of df's
    Arrow batches, written as parquet by the Python workers themselves; returns the rows written.

    For output made in Python (bucketize's encoded lists): Spark would turn the batches back into rows and write
    those with its own writer, which costs more than making them. Each task writes one file, named by its partition
    (a retried task's file replaces the failed attempt's; a failed attempt removes what it wrote), into a staging
    directory under the dataset's `_staging/`, which replaces `path` once every task has succeeded and the driver
    sees each task's file; a failed write leaves `path` as it was (a process killed between the two renames of the
    swap leaves it absent until the next write). Every task writes its file even when it has no
    rows, so the partition always holds a file with the schema. The files must land where the driver sees them (a
    local or shared filesystem), as with Spark's own writer. One writer of a partition at a time: a write removes
    what an earlier write of the same partition left behind when its process died.
    """
    path = path.absolute()  # the executors' working directory is not the driver's
    staging_root = path.parent / STAGING
    for leftover in staging_root.glob(f"{path.name}.*"):
        shutil.rmtree(leftover, ignore_errors=True)
    staging = staging_root / f"{path.name}.{uuid.uuid4().hex}"

    def write_task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        context = TaskContext.get()
        final = staging / f"part-{context.partitionId():05d}.parquet"
        partial = staging / f".part-{context.partitionId():05d}-{context.attemptNumber()}.inprogress"
        rows = 0
        try:
            with pq.ParquetWriter(partial, schema, compression="snappy") as writer:
                for batch in batches:
                    for out in transform(batch):
                        writer.write_batch(out)
                        rows += out.num_rows
            os.replace(partial, final)
        finally:
            partial.unlink(missing_ok=True)
        yield pa.RecordBatch.from_pydict({"partition": [context.partitionId()], "rows": [rows]})

    staging.mkdir(parents=True)
    try:
        tasks = df.mapInArrow(write_task, "partition long, rows long").collect()
        for stray in [p for p in staging.iterdir() if not PART_NAME.fullmatch(p.name)]:
            stray.unlink()  # of an attempt whose worker died mid-write
        written = {int(PART_NAME.fullmatch(p.name).group(1)) for p in staging.iterdir()}
        if {t.partition for t in tasks} != written:
            raise OSError(f"{len(tasks)} Spark tasks wrote parquet files into {staging}, and this process sees "
                          f"{len(written)} of them: the executors must write where the driver reads (a local or "
                          "shared filesystem, the same path on every node)")
        if not tasks:  # a DataFrame of no partitions ran no task
            pq.write_table(schema.empty_table(), staging / "part-00000.parquet")
        _replace(path, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return sum(t.rows for t in tasks)


def _replace(path: Path, staging: Path) -> None:
    """Put the directory staging in path's place, putting path back if that fails."""
    if not path.exists():
        staging.rename(path)
        return
    old = staging.with_name(f"{staging.name}.old")
    path.rename(old)
    try:
        staging.rename(path)
    except BaseException:
        old.rename(path)
        raise
    shutil.rmtree(old)
