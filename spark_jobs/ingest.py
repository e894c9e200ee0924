"""ingest: raw client logs -> contract-checked events + a quarantine of bad rows with their reason.

The contract check is edgerec.contracts' validator itself (pydantic's compiled core) in an Arrow UDF, so Spark and
`edgerec logs validate` cannot disagree; duplicate event ids are found globally, keeping the first good copy in
(file, line) order.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
from pyspark import Broadcast
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.functions import arrow_udf
from pyspark.sql.pandas.types import from_arrow_schema

from edgerec.contracts import CATALOG_ARROW_SCHEMA, BadRowReason, LogValidator
from edgerec.contracts.flat import FLAT_EVENT_FIELDS, FLAT_EVENT_SCHEMA, flatten
from edgerec.errors import ContractError

VERDICT_SCHEMA = pa.schema([*FLAT_EVENT_SCHEMA, ("bad_reason", pa.string()), ("bad_detail", pa.string()),
                            ("bad_raw", pa.string())])
QUARANTINE_COLUMNS = ("reason", "detail", "source", "line_id", "raw", "ds")
BROADCAST_MAX_COPIES = 200_000  # (file, line) pairs: a few tens of MB on the driver and each executor


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
        .where(~blank_line(F.col("value")))
        .select(F.col("value").cast("binary").alias("value"), "ds", F.col("_metadata.file_path").alias("source"))
        .withColumn("line_id", F.monotonically_increasing_id())
    )
    # a gzip file is read as one partition: spread its lines so the contract check uses every core. By the line id's
    # hash, which a retried task gives the same way: a round-robin spread would first sort every line to be as
    # repeatable (3.5 s of the one reading task at 1M lines)
    return lines.repartition(spark.sparkContext.defaultParallelism, "line_id")


_WHITESPACE = " \t\r\x0b\x0c"  # what bytes.strip() removes, but the \n the text reader splits lines at


def blank_line(line: Column) -> Column:
    """Whether a line holds only whitespace, as the validator skips it (`not line.strip()`). The pattern runs only on
    the rare line that starts with whitespace: decoding and trimming every line cost 1.8 s of the one reading task
    per 1M lines."""
    starts_blank = F.substring(line, 1, 1).isin(*_WHITESPACE)
    return F.when(line == "", True).when(starts_blank, line.rlike(f"^[{_WHITESPACE}]*$")).otherwise(False)


def _verdicts(validator: LogValidator, values: pa.Array, days: pa.Array) -> pa.StructArray:
    """Per line: its flat event fields, or the reason it is bad (with the line decoded, for the quarantine)."""
    columns: dict[str, list] = {name: [] for name in VERDICT_SCHEMA.names}
    flat_columns = [(columns[name], name) for name in FLAT_EVENT_FIELDS]
    reasons, details, raws = columns["bad_reason"], columns["bad_detail"], columns["bad_raw"]
    for value, ds in zip(values.to_pylist(), days.to_pylist(), strict=True):
        result = validator.check(value, ds)
        if isinstance(result, tuple):
            for column, _ in flat_columns:
                column.append(None)
            reasons.append(str(result[0]))
            details.append(result[1])
            raws.append(value.decode("utf-8", errors="replace"))
        else:
            flat = flatten(result)
            for column, name in flat_columns:
                column.append(flat[name])
            reasons.append(None)
            details.append(None)
            raws.append(None)
    return pa.RecordBatch.from_pydict(columns, schema=VERDICT_SCHEMA).to_struct_array()


def check_contract(lines: DataFrame, known: Broadcast | None) -> DataFrame:
    """Every line with its flat event fields, or with the reason it is bad (reason null when good).

    The contract check is edgerec.contracts' validator (pydantic's compiled core) in an Arrow UDF: only the line
    and its ds travel to Python, and only the verdict comes back. The catalog's item ids (`known`; None: any id)
    reach the executors as a broadcast (once per executor), not inside each task's closure; the caller releases it
    once the check's results are written.
    """

    @arrow_udf(from_arrow_schema(VERDICT_SCHEMA))
    def check(batches: Iterator[tuple[pa.Array, pa.Array]]) -> Iterator[pa.Array]:
        validator = LogValidator(known.value if known is not None else None, check_duplicates=False)  # once a task
        for values, days in batches:
            yield _verdicts(validator, values, days)

    verdict = F.col("_verdict")
    return lines.withColumn("_verdict", check("value", "ds")).select(
        *[verdict[name].alias(name) for name in FLAT_EVENT_FIELDS], "ds", "source", "line_id",
        verdict["bad_reason"].alias("bad_reason"), verdict["bad_detail"].alias("bad_detail"),
        # a good line is valid UTF-8: the JVM's decoding of it is the line
        F.coalesce(verdict["bad_raw"], F.col("value").cast("string")).alias("raw"))


def repeated_ids(checked: DataFrame) -> DataFrame:
    """Event ids of more than one good row, with how many rows carry each."""
    return checked.where(F.col("bad_reason").isNull()).groupBy("event_id").count().where(F.col("count") > 1)


def later_copies(checked: DataFrame, repeated: DataFrame | None = None) -> DataFrame:
    """(source, line_id) of each good row that repeats the event id of a good row before it in (ds, source, line_id)
    order: client retries. Ids seen more than once (`repeated`, else found here) come from an aggregate, so events
    are neither sorted nor shuffled whole; only the copies of those ids are ordered."""
    good = checked.where(F.col("bad_reason").isNull())
    ids = (repeated if repeated is not None else repeated_ids(checked)).select("event_id")
    first_copy = Window.partitionBy("event_id").orderBy("ds", "source", "line_id")
    return (good.join(ids, "event_id", "left_semi").select("event_id", "ds", "source", "line_id")
            .withColumn("_copy_no", F.row_number().over(first_copy)).where(F.col("_copy_no") > 1)
            .select("source", "line_id"))


def found_later_copies(checked: DataFrame) -> tuple[DataFrame, int | None]:
    """The later copies found once, and how many there are. Up to BROADCAST_MAX_COPIES they come back to the driver
    and reach the rows as a broadcast of that table, so the later actions (the counts, the two writes) do not find
    them again; the usual day, with none, costs one aggregate. A retry storm's copies stay a DataFrame, joined by
    shuffles (count None: not counted)."""
    spark = checked.sparkSession
    repeated = repeated_ids(checked)
    ids = repeated.limit(BROADCAST_MAX_COPIES + 1).collect()
    if len(ids) > BROADCAST_MAX_COPIES or sum(row["count"] - 1 for row in ids) > BROADCAST_MAX_COPIES:
        return later_copies(checked), None
    found = later_copies(checked, F.broadcast(spark.createDataFrame(ids, repeated.schema))).collect() if ids else []
    return F.broadcast(spark.createDataFrame(found, "source string, line_id long")), len(found)


def mark_duplicates(checked: DataFrame, copies: DataFrame) -> DataFrame:
    """The later copies (`later_copies`, or `found_later_copies`' table) get the reason duplicate_event_id."""
    duplicate = F.coalesce(F.col("_duplicate"), F.lit(False))
    return (
        checked.join(copies.withColumn("_duplicate", F.lit(True)), ["source", "line_id"], "left")
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
