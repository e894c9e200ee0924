"""sessionize: the client's session_id where present; otherwise a new session after an inactivity gap.

Events are ordered within a session by (ts, event_id): the event id breaks ties deterministically.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F


def sessionize(events: DataFrame, gap_ms: int) -> DataFrame:
    """Adds session_key (the client's session_id, or user_id-gap-<first ts>) and seq (1.. within the user's session)."""
    by_user = Window.partitionBy("user_id").orderBy("ts", "event_id")
    no_id = events.where(F.col("session_id").isNull())
    gap_split = (
        no_id.withColumn("gap", F.col("ts") - F.lag("ts").over(by_user))
        .withColumn("new_session", F.when(F.col("gap").isNull() | (F.col("gap") > gap_ms), 1).otherwise(0))
        .withColumn("session_no", F.sum("new_session").over(by_user.rowsBetween(Window.unboundedPreceding, 0)))
        .withColumn("session_start", F.min("ts").over(Window.partitionBy("user_id", "session_no")))
        .withColumn("session_key", F.concat_ws("-", "user_id", F.lit("gap"), F.col("session_start").cast("string")))
        .drop("gap", "new_session", "session_no", "session_start")
    )
    with_id = events.where(F.col("session_id").isNotNull()).withColumn("session_key", F.col("session_id"))
    keyed = with_id.unionByName(gap_split)
    # a session is (user_id, session_key) everywhere downstream: two users' clients can draw the same session_id
    in_session = Window.partitionBy("user_id", "session_key").orderBy("ts", "event_id")
    return keyed.withColumn("seq", F.row_number().over(in_session))


def session_stats(sessionized: DataFrame) -> DataFrame:
    """One row per session: user, start/end, duration and counts by event type."""
    count = lambda kind: F.sum(F.when(F.col("event_type") == kind, 1).otherwise(0)).alias(f"{kind}s")  # noqa: E731
    return (
        sessionized.groupBy("session_key", "user_id", "ds")
        .agg(F.min("ts").alias("start_ts"), F.max("ts").alias("end_ts"), F.count("*").alias("events"),
             count("page_request"), count("exposure"), count("click"), count("page_view"), count("delete"),
             count("rerank"))
        .withColumn("duration_s", (F.col("end_ts") - F.col("start_ts")) / 1000.0)
    )
