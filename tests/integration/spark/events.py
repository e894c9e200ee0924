"""Hand-built events for Spark transform tests, in the contract's flat shape."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from edgerec.contracts import ACTION_NAMES
from edgerec.contracts.flat import FLAT_EVENT_FIELDS, FLAT_EVENT_SCHEMA
from edgerec.contracts.validate import day_bounds_ms

DS = "2026-11-10"
T0 = day_bounds_ms(DS)[0] + 3_600_000  # 01:00 UTC


def ev(kind: str, t: int, event_id: str, user: str = "u1", session: str | None = "s1", **fields) -> dict:
    row = dict.fromkeys(FLAT_EVENT_FIELDS)
    row.update(event_id=event_id, event_type=kind, user_id=user, session_id=session, ts=T0 + t, **fields)
    if kind == "page_view":
        row["actions"] = {a: a in fields.get("done", ()) for a in ACTION_NAMES}
        row.pop("done", None)
    return row


def frame(spark: SparkSession, rows: list[dict], sessionized: bool = False) -> DataFrame:
    """Rows as a DataFrame of flat events with ds (and session_key = session_id when sessionized)."""
    df = spark.createDataFrame([{k: r.get(k) for k in FLAT_EVENT_FIELDS} for r in rows],
                               schema=from_arrow_schema(FLAT_EVENT_SCHEMA)).withColumn("ds", F.lit(DS))
    return df.withColumn("session_key", F.col("session_id")) if sessionized else df
