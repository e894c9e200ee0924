"""requests: one row per page request with its candidates, its re-ranking triggers and the user's history that their
sequences hold, each once; `point_in_time` turns a page into one row per trigger with its candidates, labels and
point-in-time sequences.

For a trigger at time T on page request r:
- candidates: r's candidates not exposed before T, in the cloud's order, with the cloud's score;
  label 1 if clicked at or after T, 0 if exposed at or after T without a click, null (masked) if never exposed;
  shown_position, the display position of its first exposure (null where the label is);
  cart and buy, 1 if a page view of it on this page request after its click added it to the cart (bought it), 0 if
  not; null where it was not clicked at or after T (the labels of the cart and buy heads, given a click);
- ie: the user's last m exposures strictly before T (within the lookback), each with e1..e7 of the paper;
- ipv: the user's last n page views that ended by T, each with d1..d12.
A page's candidate list is written once, with each candidate's first exposure and click, however many triggers the
page has: a trigger's own list and labels follow from its time alone, in `point_in_time`, where the requests are
encoded (spark_jobs.bucketize). Candidates and events name their item by id only: the item features are the
catalog's, joined there too.
What caused the trigger is known at T: the delete of a delete trigger, the page view a click trigger returns
from. Nothing else at or after T is: an exposure at T's own millisecond was caused by the re-rank.
Triggers come from logged `rerank` events; for page requests without any, they are derived by the client's
rules (page arrival, the return from a click's page view, a delete, k unclicked exposures since the last one).

A page's sequences are written once too: the user's exposures (page views) that any of its triggers' IE (IPV)
windows holds, each with its index in the user's history (`exposures`, `views`), and each trigger names its
windows by those indexes (`ie_first`..`ie_last`, `ipv_first`..`ipv_last`) and the oldest time they reach
(`since_ts`, T minus the lookback). The windows of a page's triggers overlap almost entirely: a page of the 1M-line
day writes a fifth of the IE elements and an eighth of the IPV elements its triggers' sequences hold.
`point_in_time` draws each trigger's sequences, with the features that depend on T (e6, e7, d12).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from edgerec.contracts import ACTION_NAMES

TRIGGER_COLUMNS = ("user_id", "session_key", "request_id", "trigger", "trigger_ts", "origin")
# of a page's triggers: its IE is the page's exposures of index ie_first..ie_last since since_ts (IPV: views)
TRIGGER_FIELDS = ("rerank_id", "session_key", "trigger", "trigger_ts", "origin", "ie_first", "ie_last", "ipv_first",
                  "ipv_last", "since_ts")
PAGE_COLUMNS = ("user_id", "request_id", "candidates", "triggers", "exposures", "views", "ds")  # the requests dataset
REQUEST_COLUMNS = ("rerank_id", *TRIGGER_COLUMNS, "candidates", "ie", "ipv", "ds")  # point_in_time's, per trigger
MAX_CANDIDATES = 100  # a trigger's candidates: the first this many its page had not yet exposed
NO_DELETE = "none"
# a request id names one page request of one user (the contract's rule): every key of a request or its items holds
# the user too, so the events shuffled by the user alone (`_of_kind`) are aggregated, windowed and joined where they
# are (spark.sql.requireAllClusterKeysForCoPartition=false in spark_jobs.session)
BY_REQUEST = ("user_id", "request_id")
BY_ITEM = ("user_id", "request_id", "item_id")


def _of_kind(events: DataFrame, name: str) -> DataFrame:
    """The events of one type, shuffled by the user alone: every later aggregation, window and join of the job has
    keys that hold the user, and reads them where they are (shuffling again by a longer key would move the same
    rows twice)."""
    return events.where(F.col("event_type") == name).repartition("user_id")


def logged_triggers(day: DataFrame) -> DataFrame:
    """The logged re-ranks: origin `explored` where the device belongs to the exploration bucket (the order it showed
    was shuffled on purpose: the marts keep such requests out of training), else `logged`."""
    explored = F.col("exploration").isNotNull() if "exploration" in day.columns else F.lit(False)
    return _of_kind(day, "rerank").select(
        "user_id", "session_key", "request_id", "trigger", F.col("ts").alias("trigger_ts"),
        F.when(explored, "explored").otherwise("logged").alias("origin"))


def derived_triggers(day: DataFrame, k: int) -> DataFrame:
    """Triggers by the client's rules, for page requests that logged no re-rank at all."""
    logged = _of_kind(day, "rerank").select(*BY_REQUEST).distinct()
    # events without a request id still enter sequences, but cannot trigger a re-rank of a page
    ev = day.where(F.col("request_id").isNotNull()).join(logged, list(BY_REQUEST), "left_anti")
    cols = ("user_id", "session_key", "request_id")
    page = _of_kind(ev, "page_request").select(*cols, F.lit("page").alias("trigger"), F.col("ts").alias("t"))
    view_end = _of_kind(ev, "page_view").groupBy(*BY_ITEM).agg(
        F.min(F.col("ts") + F.col("ipv_duration_ms")).alias("view_end"))
    click = (_of_kind(ev, "click").join(view_end, list(BY_ITEM), "left")
             .select(*cols, F.lit("click").alias("trigger"), F.coalesce("view_end", "ts").alias("t")))
    delete = _of_kind(ev, "delete").select(*cols, F.lit("delete").alias("trigger"), F.col("ts").alias("t"))

    clicked = _of_kind(ev, "click").select(*BY_ITEM).distinct().withColumn("clicked", F.lit(1))
    deleted = _of_kind(ev, "delete").select(*BY_ITEM).distinct().withColumn("deleted", F.lit(1))
    in_request = Window.partitionBy(*BY_REQUEST).orderBy("ts", "event_id")
    exposures = (
        _of_kind(ev, "exposure")
        .join(clicked, list(BY_ITEM), "left").join(deleted, list(BY_ITEM), "left")
        .fillna(0, ["clicked", "deleted"])
        # a click or a delete re-ranks, which restarts the count of unclicked exposures
        .withColumn("segment", F.coalesce(F.sum(F.col("clicked") + F.col("deleted")).over(
            in_request.rowsBetween(Window.unboundedPreceding, -1)), F.lit(0)))
        .withColumn("unclicked_no", F.sum(1 - F.col("clicked")).over(
            Window.partitionBy(*BY_REQUEST, "segment").orderBy("ts", "event_id")
            .rowsBetween(Window.unboundedPreceding, 0)))
    )
    exposed_k = exposures.where(
        (F.col("clicked") == 0) & (F.col("deleted") == 0) & (F.col("unclicked_no") % k == 0)
    ).select(*cols, F.lit("exposed_k").alias("trigger"), (F.col("ts") + F.col("exposure_duration_ms")).alias("t"))
    return (page.unionByName(click).unionByName(delete).unionByName(exposed_k)
            .withColumnRenamed("t", "trigger_ts").withColumn("origin", F.lit("derived")))


def triggers(day: DataFrame, k: int) -> DataFrame:
    """Every trigger of the day with its rerank_id (request_id-<n>, n in time order within the user's request)."""
    both = logged_triggers(day).unionByName(derived_triggers(day, k))
    order = Window.partitionBy(*BY_REQUEST).orderBy("trigger_ts", "trigger")
    return both.withColumn("rerank_id", F.concat_ws("-", "request_id", F.row_number().over(order).cast("string")))


def candidate_lists(day: DataFrame) -> DataFrame:
    """Per page request: every candidate in cloud order with its cloud score, first exposure (its time and display
    position), first click, and whether a page view of it on the page carted or bought it."""
    exposed = _of_kind(day, "exposure").groupBy(*BY_ITEM).agg(
        F.min("ts").alias("exposed_ts"), F.min_by("position", F.struct("ts", "event_id")).alias("shown_position"))
    clicked = _of_kind(day, "click").groupBy(*BY_ITEM).agg(F.min("ts").alias("clicked_ts"))
    viewed = _of_kind(day, "page_view").groupBy(*BY_ITEM).agg(
        *[F.max(F.col(f"actions.{a}").cast("int")).alias(f"{a}_done") for a in ("cart", "buy")])
    candidates = (
        _of_kind(day, "page_request")
        .select(*BY_REQUEST, F.explode("candidates").alias("c"))
        .select(*BY_REQUEST, "c.item_id", "c.rank", F.col("c.score").alias("cloud_score"))
        .join(exposed, list(BY_ITEM), "left")
        .join(clicked, list(BY_ITEM), "left")
        .join(viewed, list(BY_ITEM), "left")
    )
    element = F.struct("rank", "item_id", "cloud_score", "exposed_ts", "shown_position",
                       "clicked_ts", "cart_done", "buy_done")
    return candidates.groupBy(*BY_REQUEST).agg(F.array_sort(F.collect_list(element)).alias("all_candidates"))


def exposure_history(events: DataFrame) -> DataFrame:
    """The users' exposures, each with its index in the user's exposures in time order (from 1) and an element with
    its cumulative e1..e5 and the first delete of its item on its page request."""
    so_far = Window.partitionBy("user_id", "item_id").orderBy("ts", "event_id").rowsBetween(
        Window.unboundedPreceding, 0)
    deletes = _of_kind(events, "delete").groupBy(*BY_ITEM).agg(
        F.min("ts").alias("deleted_ts"), F.min("reason").alias("delete_reason"))
    exposures = (
        _of_kind(events, "exposure")
        .withColumn("e1_duration_ms", F.sum("exposure_duration_ms").over(so_far))
        .withColumn("e2_count", F.count("*").over(so_far))
        .withColumn("e3_max_scroll_speed", F.max("scroll_speed").over(so_far))
        .withColumn("e4_max_scroll_duration_ms", F.max("scroll_duration_ms").over(so_far))
        .withColumn("e5_scroll_count", F.sum("scroll_count").over(so_far))
        .join(deletes, list(BY_ITEM), "left")
    )
    element = F.struct("idx", "ts", "item_id", "e1_duration_ms", "e2_count", "e3_max_scroll_speed",
                       "e4_max_scroll_duration_ms", "e5_scroll_count", "deleted_ts", "delete_reason")
    return _indexed(exposures, "ts", element)


def view_history(events: DataFrame) -> DataFrame:
    """The users' page views, each with its index in the user's page views in order of their end (from 1)."""
    views = _of_kind(events, "page_view").withColumn("end_ts", F.col("ts") + F.col("ipv_duration_ms"))
    element = F.struct("idx", "ts", "end_ts", "item_id", "ipv_duration_ms",
                       *[F.col(f"actions.{a}").alias(a) for a in ACTION_NAMES])
    return _indexed(views, "end_ts", element)


def _indexed(df: DataFrame, time_col: str, element: Column) -> DataFrame:
    idx = F.row_number().over(Window.partitionBy("user_id").orderBy(time_col, "event_id"))
    return df.withColumn("idx", idx).select("user_id", "idx", F.col(time_col).alias("t"), element.alias("element"))


def history_counts(trig: DataFrame, events: DataFrame) -> DataFrame:
    """For each trigger: how many exposures came strictly before it (k_ie) and page views ended by it (k_ipv)."""
    exposures = _of_kind(events, "exposure").select("user_id", F.col("ts").alias("t"),
                                                    F.lit(1).alias("is_ie"), F.lit(0).alias("is_ipv"))
    # at equal times: a page view's end sorts before the trigger (the user came back from it), an exposure
    # after it (the re-rank chose what is exposed)
    views = _of_kind(events, "page_view").select(
        "user_id", (F.col("ts") + F.col("ipv_duration_ms")).alias("t"), F.lit(0).alias("is_ie"),
        F.lit(1).alias("is_ipv"), F.lit(-1).alias("prio"))
    timeline = (exposures.withColumn("prio", F.lit(1)).unionByName(views).withColumn("rerank_id", F.lit(None))
                .unionByName(trig.select("user_id", F.col("trigger_ts").alias("t"), F.lit(0).alias("is_ie"),
                                         F.lit(0).alias("is_ipv"), F.lit(0).alias("prio"), "rerank_id")))
    upto = Window.partitionBy("user_id").orderBy("t", "prio", "rerank_id").rowsBetween(Window.unboundedPreceding, 0)
    return (timeline.withColumn("k_ie", F.sum("is_ie").over(upto)).withColumn("k_ipv", F.sum("is_ipv").over(upto))
            .where(F.col("rerank_id").isNotNull()).select("user_id", "rerank_id", "k_ie", "k_ipv"))


def _page_histories(bounds: DataFrame, events: DataFrame) -> DataFrame:
    """Per page: its exposures of index _ie_first.._ie_last and its page views of index _ipv_first.._ipv_last, each
    since _since, in index order. The pages' bounds are few (a broadcast) and the histories stay partitioned by the
    user; both histories go through one join, so the bounds are computed once."""
    histories = (exposure_history(events).withColumnsRenamed({"element": "exposure"})
                 .withColumn("is_view", F.lit(False))
                 .unionByName(view_history(events).withColumnsRenamed({"element": "view"})
                              .withColumn("is_view", F.lit(True)), allowMissingColumns=True))
    first = F.when(F.col("is_view"), F.col("_ipv_first")).otherwise(F.col("_ie_first"))
    last = F.when(F.col("is_view"), F.col("_ipv_last")).otherwise(F.col("_ie_last"))
    return (bounds.join(histories, "user_id")
            .where(F.col("idx").between(first, last) & (F.col("t") >= F.col("_since")))
            .groupBy(*BY_REQUEST).agg(F.array_sort(F.collect_list("exposure")).alias("exposures"),
                                      F.array_sort(F.collect_list("view")).alias("views")))


def build_requests(events: DataFrame, ds: str, *, lookback_ms: int, m: int, n: int, k: int) -> DataFrame:
    """Re-ranking requests of day `ds` from sessionized events of ds and the lookback days before it: one row per page
    request (PAGE_COLUMNS), its candidates, its triggers (TRIGGER_FIELDS) and the exposures and page views their
    sequences hold, each once."""
    day = events.where(F.col("ds") == ds)
    trig = triggers(day, k)
    counts = history_counts(trig, events)
    # a trigger's IE: the user's exposures of index k_ie - m + 1 .. k_ie (the last m before it); IPV likewise
    windows = trig.join(counts, ["user_id", "rerank_id"]).select(
        "*", (F.greatest(F.col("k_ie") - m, F.lit(0)) + 1).alias("ie_first"), F.col("k_ie").alias("ie_last"),
        (F.greatest(F.col("k_ipv") - n, F.lit(0)) + 1).alias("ipv_first"), F.col("k_ipv").alias("ipv_last"),
        (F.col("trigger_ts") - lookback_ms).alias("since_ts"))
    # every key of the job holds the user, so the triggers gather by page without another shuffle; sorted (by
    # rerank id), so that a page's row is the same however the rows arrived
    pages = windows.groupBy(*BY_REQUEST).agg(
        F.array_sort(F.collect_list(F.struct(*TRIGGER_FIELDS))).alias("triggers"),
        F.min("ie_first").alias("_ie_first"), F.max("ie_last").alias("_ie_last"),
        F.min("ipv_first").alias("_ipv_first"), F.max("ipv_last").alias("_ipv_last"),
        F.min("since_ts").alias("_since"))
    return (pages.join(_page_histories(pages.drop("triggers"), events), list(BY_REQUEST), "left")
            .join(candidate_lists(day), list(BY_REQUEST), "left")
            # a trigger whose page request is not in the day (quarantined, say) has no candidates
            .withColumn("candidates", F.coalesce("all_candidates", F.array()))
            .withColumn("exposures", F.coalesce("exposures", F.array()))
            .withColumn("views", F.coalesce("views", F.array()))
            .withColumn("ds", F.lit(ds))
            .select(*PAGE_COLUMNS))


def point_in_time(pages: pa.RecordBatch, max_candidates: int = MAX_CANDIDATES) -> pa.RecordBatch:
    """One row per trigger of the pages (REQUEST_COLUMNS): its page's candidates not exposed before the trigger, the
    first max_candidates in the cloud's order, each labelled 1 if clicked at or after the trigger, 0 if exposed at or
    after it without a click, null (masked) if never exposed; shown_position, the display position of its first
    exposure where labelled; cart and buy, what a page view of it did where clicked at or after the trigger (0 if
    nothing), null otherwise; ie and ipv, its windows of the page's exposures and page views (TRIGGER_FIELDS), with
    e6 (the delete of the item known by T: its reason, else "none"), e7 and d12 (ages at T, in seconds). It reads
    what build_requests writes: no null trigger time, bound, candidate, element or list."""
    trig_list, cand_list = pages.column("triggers"), pages.column("candidates")
    trig = _values(trig_list)
    page_of = np.repeat(np.arange(len(pages)), np.diff(_offsets(trig_list)))
    trigger_ts = pc.fill_null(trig.field("trigger_ts"), 0).to_numpy(zero_copy_only=False)
    cand = _values(cand_list)
    starts, lengths = _offsets(cand_list)[:-1][page_of], np.diff(_offsets(cand_list))[page_of]
    # each trigger's page candidates, one after another: the trigger and the candidate of each slot
    owner = np.repeat(np.arange(len(trigger_ts)), lengths)
    first_slot = np.cumsum(lengths) - lengths
    at = np.arange(int(lengths.sum())) - np.repeat(first_slot - starts, lengths)
    when = trigger_ts[owner]
    exposed, exposed_known = _times(cand.field("exposed_ts"), at)
    unexposed = ~exposed_known | (exposed >= when)
    kept_so_far = np.cumsum(unexposed)
    before_own = np.concatenate([[0], kept_so_far])[first_slot][owner]
    keep = unexposed & (kept_so_far - before_own <= max_candidates)
    exposed_after = (exposed_known & (exposed >= when))[keep]
    at, owner, when = at[keep], owner[keep], when[keep]
    clicked, clicked_known = _times(cand.field("clicked_ts"), at)
    clicked_after = clicked_known & (clicked >= when)
    label = pa.array(clicked_after.astype(np.int32), mask=~(clicked_after | exposed_after), type=pa.int32())

    def where(condition: np.ndarray, values: pa.Array) -> pa.Array:
        return pc.if_else(pa.array(condition, type=pa.bool_()), values, pa.nulls(len(values), values.type))

    chosen = {name: cand.field(name).take(pa.array(at, type=pa.int64()))
              for name in ("rank", "item_id", "cloud_score", "shown_position", "cart_done", "buy_done")}
    element = pa.StructArray.from_arrays(
        [chosen["rank"], chosen["item_id"], chosen["cloud_score"], label,
         where(exposed_after, chosen["shown_position"]),
         *[where(clicked_after, pc.fill_null(chosen[f"{a}_done"], 0)) for a in ("cart", "buy")]],
        names=["rank", "item_id", "cloud_score", "label", "shown_position", "cart", "buy"])
    offsets = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=len(trigger_ts)))]).astype(np.int32)
    page_rows = pa.array(page_of, type=pa.int64())
    columns = {name: pages.column(name).take(page_rows) for name in ("user_id", "request_id", "ds")}
    columns |= {name: trig.field(name) for name in REQUEST_COLUMNS if name in TRIGGER_FIELDS}
    columns["candidates"] = pa.ListArray.from_arrays(pa.array(offsets), element)
    columns["ie"] = _sequence(pages.column("exposures"), trig, page_of, "ie", "ts", _ie_element)
    columns["ipv"] = _sequence(pages.column("views"), trig, page_of, "ipv", "end_ts", _ipv_element)
    return pa.RecordBatch.from_pydict({name: columns[name] for name in REQUEST_COLUMNS})


def _sequence(lists: pa.ListArray, trig: pa.StructArray, page_of: np.ndarray, name: str, time_field: str,
              element: Callable[[pa.StructArray, np.ndarray], pa.StructArray]) -> pa.ListArray:
    """Each trigger's window of its page's history elements: index {name}_first..{name}_last, time at or after
    since_ts, in index order; `element` makes the output struct from the chosen elements and their trigger's T."""
    history = _values(lists)
    offsets = _offsets(lists)
    idx = history.field("idx").to_numpy(zero_copy_only=False).astype(np.int64)
    # a page's elements are sorted by index: one sorted key over the batch finds every trigger's slice
    key = np.repeat(np.arange(len(offsets) - 1, dtype=np.int64), np.diff(offsets)) << 32 | idx
    page_key = page_of.astype(np.int64) << 32
    first, last = (trig.field(f"{name}_{end}").to_numpy(zero_copy_only=False).astype(np.int64)
                   for end in ("first", "last"))
    start = np.searchsorted(key, page_key | np.maximum(first, 0), "left")
    stop = np.maximum(np.searchsorted(key, page_key | np.maximum(last, 0), "right"), start)
    lengths = stop - start
    owner = np.repeat(np.arange(len(start)), lengths)
    at = np.arange(int(lengths.sum())) + np.repeat(start - (np.cumsum(lengths) - lengths), lengths)
    when = trig.field("trigger_ts").to_numpy(zero_copy_only=False)[owner]
    since = trig.field("since_ts").to_numpy(zero_copy_only=False)[owner]
    recent = history.field(time_field).to_numpy(zero_copy_only=False)[at] >= since
    at, owner, when = at[recent], owner[recent], when[recent]
    counts = np.bincount(owner, minlength=len(start))
    out_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(out_offsets), element(history.take(pa.array(at, type=pa.int64())), when))


def _age_s(when: np.ndarray, times: pa.Array) -> pa.Array:
    """Seconds from each time to its trigger's T, as Spark's (T - ts) / 1000.0 gave them."""
    return pa.array((when - times.to_numpy(zero_copy_only=False)).astype(np.float64) / 1000.0)


def _ie_element(chosen: pa.StructArray, when: np.ndarray) -> pa.StructArray:
    names = ("ts", "item_id", "e1_duration_ms", "e2_count", "e3_max_scroll_speed", "e4_max_scroll_duration_ms",
             "e5_scroll_count")
    deleted = chosen.field("deleted_ts")
    # the delete that triggers this re-rank is known to it: it is why the client re-ranks
    by_then = pa.array(pc.is_valid(deleted).to_numpy(zero_copy_only=False)
                       & (pc.fill_null(deleted, 0).to_numpy(zero_copy_only=False) <= when), type=pa.bool_())
    reason = pc.if_else(by_then, chosen.field("delete_reason"), pa.scalar(NO_DELETE, pa.string()))
    return pa.StructArray.from_arrays(
        [*[chosen.field(f) for f in names], reason, _age_s(when, chosen.field("ts"))],
        names=[*names, "e6_delete_reason", "e7_age_s"])


def _ipv_element(chosen: pa.StructArray, when: np.ndarray) -> pa.StructArray:
    fields = [chosen.field(f) for f in ("ts", "end_ts", "item_id", "ipv_duration_ms", *ACTION_NAMES)]
    return pa.StructArray.from_arrays(
        [*fields, _age_s(when, chosen.field("end_ts"))],
        names=["ts", "end_ts", "item_id", "d1_duration_ms", *ACTION_NAMES, "d12_age_s"])


def _offsets(lists: pa.ListArray) -> np.ndarray:
    """A list column's offsets from 0 (a batch's column may be a slice of a longer array)."""
    offsets = lists.offsets.to_numpy()
    return (offsets - offsets[0]).astype(np.int64)


def _values(lists: pa.ListArray) -> pa.Array:
    """A list column's values, every list's included (flatten() drops a null list's, which the offsets still count)."""
    offsets = lists.offsets.to_numpy()
    return lists.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))


def _times(column: pa.Array, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The values of a timestamp field at the given rows, and whether each is known."""
    chosen = column.take(pa.array(at, type=pa.int64()))
    return (pc.fill_null(chosen, 0).to_numpy(zero_copy_only=False),
            pc.is_valid(chosen).to_numpy(zero_copy_only=False))
