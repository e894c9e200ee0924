"""ingest: raw client logs -> contract-checked events + a quarantine of bad rows with their reason.

The contract check reuses edgerec.contracts (the pydantic models and the validator) inside mapInArrow,
so Spark and `edgerec logs validate` cannot disagree; duplicate event ids are found globally with a
window, keeping the first copy in (file, line) order.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
from pyspark import Broadcast
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from edgerec.contracts import CATALOG_ARROW_SCHEMA, BadRowReason, LogValidator
from edgerec.contracts.flat import FLAT_EVENT_FIELDS, FLAT_EVENT_SCHEMA, flatten
from edgerec.errors import ContractError

_BOOKKEEPING = pa.schema([("ds", pa.string()), ("source", pa.string()), ("line_id", pa.int64()),
                          ("bad_reason", pa.string()), ("bad_detail", pa.string()),
                          ("raw", pa.string())])
CHECKED_SCHEMA = pa.schema(list(FLAT_EVENT_SCHEMA) + list(_BOOKKEEPING))
QUARANTINE_COLUMNS = ("reason", "detail", "source", "line_id", "raw", "ds")


def read_raw_lines(spark: SparkSession, events_root: str, days: list[str]) -> DataFrame:
    """One row per log line: value (bytes, decoded by the contract check), ds, source file, and a line id that
    orders lines within a file. Blank lines are skipped, as the validator skips them."""
    paths = [f"{events_root}/ds={d}" for d in days]
    lines = (
        spark.read.option("basePath", events_root).option("pathGlobFilter", "*.{jsonl,jsonl.gz}")
        .option("lineSep", "\n")  # as the Python validator splits: a bare \r inside a line is part of it
        # a truncated or corrupt file gives the lines before its break, as the validator reads them (which counts
        # and quarantines the file itself: edgerec.contracts.validate)
        .option("ignoreCorruptFiles", "true")
        .text(paths)
        .select(F.col("value").cast("binary").alias("value"), "ds", F.col("_metadata.file_path").alias("source"))
        .withColumn("line_id", F.monotonically_increasing_id())
        .where(F.length(F.trim(F.col("value").cast("string"))) > 0)
    )
    # a gzip file is read as one partition: spread its lines so the contract check uses every core
    return lines.repartition(spark.sparkContext.defaultParallelism)


def _contract_checker(known_items: Broadcast | None):
    def check(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        validator = LogValidator(known_items.value if known_items is not None else None, check_duplicates=False)
        for batch in batches:
            columns: dict[str, list] = {name: [] for name in CHECKED_SCHEMA.names}
            rows = zip(*(batch.column(c).to_pylist() for c in ("value", "ds", "source", "line_id")), strict=True)
            for value, ds, source, line_id in rows:
                result = validator.check(value, ds)
                value = value.decode("utf-8", errors="replace")
                if isinstance(result, tuple):
                    flat = dict.fromkeys(FLAT_EVENT_FIELDS)
                    extra = {"bad_reason": str(result[0]), "bad_detail": result[1], "raw": value}
                else:
                    flat, extra = flatten(result), {"bad_reason": None, "bad_detail": None, "raw": value}
                for name in FLAT_EVENT_FIELDS:
                    columns[name].append(flat[name])
                for name, v in (("ds", ds), ("source", source), ("line_id", line_id), *extra.items()):
                    columns[name].append(v)
            yield pa.RecordBatch.from_pydict(columns, schema=CHECKED_SCHEMA)

    return check


def check_contract(lines: DataFrame, known_items: list[int] | None) -> DataFrame:
    """Every line with its flat event fields, or with the reason it is bad (reason null when good). The catalog's
    item ids travel to the executors as a broadcast (once per executor), not inside each task's closure."""
    known = None if known_items is None else lines.sparkSession.sparkContext.broadcast(known_items)
    return lines.mapInArrow(_contract_checker(known), from_arrow_schema(CHECKED_SCHEMA))


def mark_duplicates(checked: DataFrame) -> DataFrame:
    """Later copies of an event id (client retries) get the reason duplicate_event_id.

    Copies are found on a narrow projection, so only ids, not whole events, are shuffled and sorted.
    """
    first_copy = Window.partitionBy("event_id").orderBy("ds", "source", "line_id")
    later_copies = (
        checked.where(F.col("bad_reason").isNull()).select("event_id", "ds", "source", "line_id")
        .withColumn("_copy_no", F.row_number().over(first_copy)).where(F.col("_copy_no") > 1)
        .select("source", "line_id", F.lit(True).alias("_duplicate"))
    )
    duplicate = F.coalesce(F.col("_duplicate"), F.lit(False))
    return (
        checked.join(later_copies, ["source", "line_id"], "left")
        .withColumn("bad_reason", F.when(duplicate, F.lit(str(BadRowReason.DUPLICATE_EVENT_ID)))
                    .otherwise(F.col("bad_reason")))
        .withColumn("bad_detail", F.when(duplicate, F.concat(F.lit("event_id "), "event_id", F.lit(" seen before")))
                    .otherwise(F.col("bad_detail")))
        .drop("_duplicate")
    )


def split_good_bad(checked: DataFrame) -> tuple[DataFrame, DataFrame]:
    good = checked.where(F.col("bad_reason").isNull()).select(*FLAT_EVENT_FIELDS, "ds")
    bad = (checked.where(F.col("bad_reason").isNotNull())
           .withColumnsRenamed({"reason": "event_reason"})  # a delete's reason, not the row's
           .withColumnsRenamed({"bad_reason": "reason", "bad_detail": "detail"}).select(*QUARANTINE_COLUMNS))
    return good, bad


def check_catalog(items: DataFrame) -> DataFrame:
    """The catalog snapshot with exactly the contract's columns, or a clear error naming what is missing."""
    missing = [c for c in CATALOG_ARROW_SCHEMA.names if c not in items.columns]
    if missing:
        raise ContractError(f"item catalog lacks columns {missing}; the contract needs {CATALOG_ARROW_SCHEMA.names}")
    return items.select(*[F.col(f.name).cast("double" if pa.types.is_floating(f.type) else "long")
                          for f in CATALOG_ARROW_SCHEMA], *(["ds"] if "ds" in items.columns else []))
