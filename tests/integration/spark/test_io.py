"""Writing a partition from the Python workers (spark_jobs.io.write_arrow_partition)."""

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from spark_jobs.io import write_arrow_partition

pytestmark = pytest.mark.integration
SCHEMA = pa.schema([("key", pa.int64()), ("doubled", pa.list_(pa.int64()))])


def doubled(batch: pa.RecordBatch):
    """Each row's key and twice it twice, a row per batch (a transform may yield any number of batches)."""
    keys = batch.column("key")
    for k in keys.to_pylist():
        yield pa.RecordBatch.from_arrays([pa.array([k], pa.int64()), pa.array([[2 * k, 2 * k]], pa.list_(pa.int64()))],
                                         schema=SCHEMA)


def written(path):
    return sorted(pq.read_table(path).to_pylist(), key=lambda r: r["key"])


def test_the_partition_is_replaced_by_the_transformed_rows(spark, tmp_path):
    path = tmp_path / "features" / "ds=2026-11-01"
    path.mkdir(parents=True)
    (path / "part-old.parquet").write_bytes(b"an earlier run's file")
    staging = path.parent / "_staging"
    for leftover in ("ds=2026-11-01.0123", "ds=2026-11-01.4567.old"):  # of a process that died mid-write
        (staging / leftover).mkdir(parents=True)
        (staging / leftover / "part-00000.parquet").write_bytes(b"half a file")
    (staging / "ds=2026-11-02.89ab").mkdir()  # another day's write, under way: not this one's to remove
    (staging / "ds=2026-11-02.89ab" / "part-00000.parquet").write_bytes(b"half a file")
    df = spark.createDataFrame([(k,) for k in range(5)], "key long").repartition(3)
    assert write_arrow_partition(df, doubled, SCHEMA, path) == 5
    assert written(path) == [{"key": k, "doubled": [2 * k, 2 * k]} for k in range(5)]
    # one file a task, named by its partition, nothing else left beside it
    assert sorted(p.name for p in path.iterdir()) == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["_staging", "ds=2026-11-01"]
    assert [p.name for p in staging.iterdir()] == ["ds=2026-11-02.89ab"]
    # the dataset's readers see the partition only: Spark's discovery, and duckdb's glob as the dbt sources read it
    assert spark.read.parquet(str(path.parent)).where("ds = '2026-11-01'").count() == 5
    relation = f"read_parquet('{path.parent}/*/*.parquet', hive_partitioning = true)"
    assert duckdb.sql(f"select ds::varchar, count(*) from {relation} group by ds").fetchall() == [("2026-11-01", 5)]


def test_no_rows_still_leave_a_file_with_the_schema(spark, tmp_path):
    path = tmp_path / "ds=2026-11-01"
    assert write_arrow_partition(spark.createDataFrame([], "key long"), doubled, SCHEMA, path) == 0
    assert pq.read_table(path).schema == SCHEMA and written(path) == []
    assert write_arrow_partition(spark.createDataFrame([(1,)], "key long").limit(0), doubled, SCHEMA, path) == 0
    assert pq.read_table(path).schema == SCHEMA and written(path) == []


def test_a_failed_write_leaves_the_partition_as_it_was(spark, tmp_path):
    path = tmp_path / "ds=2026-11-01"
    df = spark.createDataFrame([(k,) for k in range(4)], "key long").repartition(2)
    write_arrow_partition(df, doubled, SCHEMA, path)
    before = written(path)

    def fails_on_key_3(batch):
        if pc.any(pc.equal(batch.column("key"), 3)).as_py():
            raise ValueError("key 3 cannot be encoded")
        yield from doubled(batch)

    with pytest.raises(Exception, match="key 3 cannot be encoded"):
        write_arrow_partition(df, fails_on_key_3, SCHEMA, path)
    assert written(path) == before
    assert list((tmp_path / "_staging").iterdir()) == []  # nothing left behind
