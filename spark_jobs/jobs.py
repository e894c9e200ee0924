"""Thin mains of the Spark jobs: read a ds's inputs, call the pure transforms, write the ds's outputs.

Each job overwrites only its own ds partitions, so reruns and backfills are idempotent, and records its
figures in the day's Spark summary (`edgerec.reports.SparkSummary`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_schema

from edgerec.config import Settings, days_back
from edgerec.errors import MissingInput
from edgerec.features import ITEM_FEATURES, load_spec, write_spec
from edgerec.raw import check_bad_share
from edgerec.reports import SparkSummary
from spark_jobs.bucketize import FIGURE_COLUMNS, encoded_figures, encoder, fit_spec, item_codes
from spark_jobs.ingest import (
    check_catalog,
    check_contract,
    found_later_copies,
    mark_duplicates,
    read_raw_lines,
    split_good_bad,
)
from spark_jobs.io import read_partitions, write_arrow_partition, write_partitions
from spark_jobs.requests import MAX_CANDIDATES, PAGE_COLUMNS, build_requests
from spark_jobs.session import sql_settings
from spark_jobs.sessionize import session_stats, sessionize

log = logging.getLogger(__name__)
DAY_MS = 86_400_000
FIT_MAX_REQUESTS = 20_000


def _record(settings: Settings, ds: str, stage: str, figures: dict) -> dict:
    SparkSummary.record(settings.layout(ds), stage, figures)
    log.info("spark %s ds=%s: %s", stage, ds, figures)
    return figures


def _require(df: DataFrame | None, what: str) -> DataFrame:
    if df is None:
        raise MissingInput(f"no input: {what}; run the upstream job for this ds first")
    return df


# ingest's cached day is on disk, read back from the page cache: memory stays the aggregations' and a large day
# fits. Uncompressed: Spark's compression of cached columns hashes every string value (the raw lines included) to
# try a dictionary on it, and cost more than it saved (the check into the cache 13-14 s -> 10.5-12.6 s at 1M lines).
CACHE_UNCOMPRESSED = {"spark.sql.inMemoryColumnarStorage.compressed": "false"}


def run_ingest(spark: SparkSession, settings: Settings, ds: str) -> dict:
    day = settings.layout(ds)
    if not day.raw_events.exists() or not day.raw_items.exists():
        raise MissingInput(f"raw zone lacks ds={ds}: need {day.raw_events} and {day.raw_items}")
    items = check_catalog(spark.read.parquet(str(day.raw_items))).withColumn("ds", F.lit(ds))
    # read through Spark, so the catalog need only be where the cluster reads
    known = spark.sparkContext.broadcast(
        [row.item_id for row in spark.read.parquet(str(day.raw_items)).select("item_id").collect()])
    contract = None
    try:
        with sql_settings(spark, CACHE_UNCOMPRESSED):
            # the contract check runs once: counting, the duplicate marking and the two writes read its cached rows; on
            # disk, since they hold every line's raw text: in memory a large day's cache left its aggregations none
            contract = check_contract(read_raw_lines(spark, str(settings.raw / "events"), [ds]), known).persist(
                StorageLevel.DISK_ONLY)
            # later copies travel as a broadcast only while they are few; a retry storm takes the shuffle join and
            # reaches the bad-share gate instead of filling the driver
            copies, count = found_later_copies(contract)
            checked = contract if count == 0 else mark_duplicates(contract, copies)
            by_reason = {r["bad_reason"]: r["count"] for r in checked.groupBy("bad_reason").count().collect()}
            good, bad = split_good_bad(checked)
            write_partitions(bad, settings.dataset("quarantine"))
            counts = {reason: n for reason, n in by_reason.items() if reason is not None}
            rows = sum(by_reason.values())
            figures = {"rows_in": rows, "rows_out": by_reason.get(None, 0),
                       "quarantined_by_reason": dict(sorted(counts.items())),
                       "bad_share": round(sum(counts.values()) / rows, 6) if rows else 0.0,
                       "quarantine": str(settings.dataset("quarantine"))}
            _record(settings, ds, "ingest", figures)
            check_bad_share(rows, counts, settings.quality.max_bad_share, f"spark ingest ds={ds}",
                            settings.dataset("quarantine"))
            write_partitions(good, settings.dataset("events"))
            write_partitions(items, settings.dataset("items"))
    finally:
        if contract is not None:
            contract.unpersist()
        known.destroy()  # the catalog's ids, on the driver and every executor; a long-lived session keeps none
    return figures


def run_sessionize(spark: SparkSession, settings: Settings, ds: str) -> dict:
    events = _require(read_partitions(spark, settings.dataset("events"), [ds]), f"events ds={ds}")
    write_partitions(sessionize(events, int(settings.features.session_gap_minutes * 60_000)),
                     settings.dataset("sessionized_events"))
    # the stats read the few columns they need back from the day just written: a cache of the keyed events held
    # every column of every event, and reading it took 4.8-5.2 s of the 1M-line day's 14-17 (now 11-12 in all)
    keyed = _require(read_partitions(spark, settings.dataset("sessionized_events"), [ds]),
                     f"sessionized events ds={ds}")
    stats = session_stats(keyed).cache()
    write_partitions(stats, settings.dataset("sessions"))
    agg = stats.agg(F.count("*").alias("sessions"), F.mean("events").alias("events_per_session"),
                    F.mean("duration_s").alias("mean_duration_s")).first()
    stats.unpersist()
    return _record(settings, ds, "sessionize", {k: round(v, 4) if isinstance(v, float) else v
                                                 for k, v in agg.asDict().items()})


def run_requests(spark: SparkSession, settings: Settings, ds: str) -> dict:
    window = days_back(ds, settings.features.lookback_days)
    # the lookback reaches days written before rerank.exploration joined the contract
    events = _require(read_partitions(spark, settings.dataset("sessionized_events"), window, merge_schema=True),
                      f"sessionized events ds={ds}")
    features = settings.features
    requests = build_requests(events, ds, lookback_ms=features.lookback_days * DAY_MS,
                              m=features.ie_length, n=features.ipv_length, k=features.trigger_k)
    write_partitions(requests, settings.dataset("requests"))
    written = _require(read_partitions(spark, settings.dataset("requests"), [ds]), f"requests ds={ds}")

    agg = written.agg(
        F.sum(F.size("triggers")).alias("requests"), F.count("*").alias("pages"),
        # the history elements written, each once per page however many of its triggers' sequences hold it
        F.sum(F.size("exposures")).alias("exposures_written"), F.sum(F.size("views")).alias("views_written"),
        F.sum(F.size(F.filter("triggers", lambda t: t["origin"] == "derived"))).alias("derived_triggers"),
    ).first().asDict()
    agg = {name: value or 0 for name, value in agg.items()}
    agg["event_days_read"] = [d for d in window if (settings.dataset("sessionized_events") / f"ds={d}").exists()]
    missing = sorted(set(window) - set(agg["event_days_read"]))
    if missing:
        log.warning("requests ds=%s: no sessionized events for %s; sequences reach back less far", ds, missing)
    return _record(settings, ds, "requests", agg)


def _current_layout(partition: Path) -> bool:
    """Whether a requests partition is laid out as the requests job now writes it (PAGE_COLUMNS: pages with their
    sequences' exposures and page views once), not as before (one row per trigger; pages whose triggers held their
    own sequences)."""
    first = next(partition.glob("*.parquet"), None)
    return first is None or set(PAGE_COLUMNS) - {"ds"} <= set(pq.read_schema(first).names)


def _written_days(root: Path, days: list[str]) -> tuple[list[str], list[str]]:
    """Of the days, those whose requests partition is in the current layout, and those in an earlier one (in order)."""
    current = {d: _current_layout(root / f"ds={d}") for d in days if (root / f"ds={d}").exists()}
    return [d for d, now in current.items() if now], [d for d, now in current.items() if not now]


def _batches(partition: Path, columns: list[str]) -> Iterator[pa.RecordBatch]:
    """A partition's columns, read batch by batch (on the driver: the figures of a day need not fit in memory)."""
    for file in sorted(partition.glob("*.parquet")):
        yield from pq.ParquetFile(file).iter_batches(columns=columns)


def run_bucketize(spark: SparkSession, settings: Settings, ds: str) -> dict:
    root = settings.dataset("requests")
    if (root / f"ds={ds}").exists() and not _current_layout(root / f"ds={ds}"):
        raise MissingInput(f"requests ds={ds} are in an earlier layout than the requests job now writes; rerun it: "
                           f"edgerec spark run requests --ds {ds}")
    # The train days again, with this day's spec: a model trained on them, tested on ds and shipped with this
    # spec then sees one encoding everywhere (each day's own features were encoded with that day's spec).
    window = days_back(ds, settings.marts.train_days)[:-1]
    train_days, old_layout = _written_days(root, window)
    if len(train_days) < len(window):
        missing = sorted(set(window) - set(train_days) - set(old_layout))
        log.warning("bucketize ds=%s: the train split holds %d of %d days: %s", ds, len(train_days), len(window),
                    "; ".join(filter(None, [missing and f"no requests for {missing}", old_layout and (
                        f"the requests of {old_layout} are in an earlier layout (rerun `edgerec spark run requests "
                        "--ds DAY` for each)")])))
    # every day's items by that day's catalog (the one its requests were built beside), each found before a write
    catalogs = {day: _require(read_partitions(spark, settings.dataset("items"), [day]), f"items ds={day}")
                for day in [ds, *train_days]}
    fit_days, fit_old_layout = _written_days(root, days_back(ds, settings.features.fit_days)[:-1])
    fit_days = fit_days or [ds]
    if fit_old_layout:
        log.warning("bucketize ds=%s: the feature spec is fit on %s without %s, whose requests are in an earlier "
                    "layout", ds, fit_days, fit_old_layout)
    fit_requests = _require(read_partitions(spark, root, fit_days), f"requests ds={fit_days}")
    lengths = {"ie": settings.features.ie_length, "ipv": settings.features.ipv_length, "candidates": MAX_CANDIDATES}
    spec = fit_spec(fit_requests, catalogs[ds], num_buckets=settings.features.num_buckets,
                    max_requests=FIT_MAX_REQUESTS, lengths=lengths,
                    fit={"days": fit_days, "num_buckets": settings.features.num_buckets})
    path = write_spec(spec, settings.layout(ds).feature_spec)
    spec = load_spec(path)
    codes = spark.sparkContext.broadcast({day: item_codes(catalog.select("item_id", *ITEM_FEATURES).toArrow(), spec)
                                          for day, catalog in catalogs.items()})
    features = settings.dataset("features") / f"ds={ds}"
    try:
        pages = _require(read_partitions(spark, root, [ds]), f"requests ds={ds}").select(*PAGE_COLUMNS)
        transform, schema = encoder(to_arrow_schema(pages.schema), spec, codes, None)
        rows = write_arrow_partition(pages, transform, schema, features)
        train = read_partitions(spark, root, train_days)
        train = (train if train is not None else pages.limit(0)).select(*PAGE_COLUMNS)
        transform, schema = encoder(to_arrow_schema(train.schema), spec, codes, "request_ds")
        train_rows = write_arrow_partition(train, transform, schema, settings.dataset("train_features") / f"ds={ds}")
    finally:
        codes.destroy()  # the catalogs' codes, on the driver and every executor
    return _record(settings, ds, "bucketize", {"feature_spec": str(path), "feature_spec_sha256": spec["sha256"],
                                               "fit_days": fit_days, "train_days_encoded": train_days,
                                               "requests_encoded": rows, "train_requests_encoded": train_rows,
                                               **encoded_figures(_batches(features, list(FIGURE_COLUMNS)))})


JOBS: dict[str, Callable[[SparkSession, Settings, str], dict]] = {
    "ingest": run_ingest,
    "sessionize": run_sessionize,
    "requests": run_requests,
    "bucketize": run_bucketize,
}


def run_jobs(settings: Settings, ds: str, names: list[str], spark: SparkSession | None = None) -> dict:
    """Run jobs in order in one Spark session; returns their figures and seconds per job."""
    from spark_jobs.session import spark_session

    started = time.perf_counter()
    spark = spark or spark_session(settings, f"edgerec-{'-'.join(names)}-{ds}", settings.layout(ds).jvm_options)
    result: dict = {"session_s": round(time.perf_counter() - started, 2)}
    for name in names:
        spark.sparkContext.setJobDescription(f"{name} ds={ds}")  # labels the job's Spark jobs in the UI and logs
        start = time.perf_counter()
        try:
            result[name] = JOBS[name](spark, settings, ds)
        except Exception as error:
            error.add_note(f"in the Spark job {name} for ds={ds}")  # the jobs run as one task: say which one failed
            raise
        finally:
            spark.sparkContext.setJobDescription(None)  # type: ignore[arg-type]
        result[f"{name}_s"] = round(time.perf_counter() - start, 2)
    return result
