"""Re-ranking requests on a hand-built session: triggers, candidates, labels, IE/IPV sequences."""

import re

import pyarrow as pa
import pytest
from pyspark.sql import Row

from edgerec.contracts import ACTION_NAMES
from spark_jobs.bucketize import one_batch
from spark_jobs.requests import build_requests, point_in_time
from tests.integration.spark.events import DS, T0, ev, frame

pytestmark = pytest.mark.integration
ITEMS = [11, 12, 13, 14, 15, 16]
CANDIDATES = [{"item_id": i, "rank": r, "score": 1.0 - r / 10} for r, i in enumerate(ITEMS)]


def exposure(t, eid, item, duration, position):
    return ev("exposure", t, eid, request_id="r0", item_id=item, position=position, exposure_duration_ms=duration,
              scroll_speed=1.5, scroll_duration_ms=duration // 2, scroll_count=1)


SESSION = [
    ev("page_request", 0, "e00", request_id="r0", page_no=0, candidates=CANDIDATES),
    ev("rerank", 0, "e01", request_id="r0", trigger="page", order=ITEMS),
    exposure(0, "e02", 11, 500, 0),
    exposure(500, "e03", 12, 2000, 1),
    ev("click", 2500, "e04", request_id="r0", item_id=12, position=1),
    ev("page_view", 2700, "e05", request_id="r0", item_id=12, ipv_duration_ms=10_000, done=("cart",)),
    ev("rerank", 13_200, "e06", request_id="r0", trigger="click", order=[13, 14, 15, 16]),
    exposure(13_200, "e07", 13, 400, 2),
    exposure(13_600, "e08", 14, 300, 3),
    ev("delete", 13_900, "e09", request_id="r0", item_id=14, position=3, reason="not_interested"),
    ev("rerank", 13_900, "e10", request_id="r0", trigger="delete", order=[15, 16]),
    exposure(13_900, "e11", 15, 300, 4),
]


def as_row(value):
    """Arrow's Python values with the attribute access of Spark's rows."""
    if isinstance(value, dict):
        return Row(**{k: as_row(v) for k, v in value.items()})
    return [as_row(v) for v in value] if isinstance(value, list) else value


def per_trigger(pages, max_candidates=100):
    """The requests job's pages, one row per trigger as the encoder sees them (point_in_time)."""
    return [as_row(r) for r in point_in_time(one_batch(pages.toArrow()), max_candidates).to_pylist()]


def requests(spark, rows, k=5, m=50):
    out = per_trigger(build_requests(frame(spark, rows, sessionized=True), DS, lookback_ms=3 * 86_400_000, m=m,
                                     n=30, k=k))
    by_trigger = {r.trigger: r for r in out}
    assert len(by_trigger) == len(out), "one trigger of each kind in these sessions"
    return by_trigger


def labels(row):
    return [(c.item_id, c.label) for c in row.candidates]


def test_logged_triggers_candidates_and_labels(spark):
    got = requests(spark, SESSION)
    assert {t: (r.trigger_ts - T0, r.origin, r.rerank_id) for t, r in got.items()} == {
        "page": (0, "logged", "r0-1"), "click": (13_200, "logged", "r0-2"), "delete": (13_900, "logged", "r0-3")}
    # exposed at or after the trigger without a click: 0; clicked after: 1; never exposed: masked (None)
    assert labels(got["page"]) == [(11, 0), (12, 1), (13, 0), (14, 0), (15, 0), (16, None)]
    assert labels(got["click"]) == [(13, 0), (14, 0), (15, 0), (16, None)]
    assert labels(got["delete"]) == [(15, 0), (16, None)]
    assert got["click"].candidates[0].cloud_score == 0.8
    # items by id only: their features are the catalog's, joined where the requests are encoded
    assert set(got["click"].candidates[0].asDict()) == {"rank", "item_id", "cloud_score", "label", "shown_position",
                                                         "cart", "buy"}
    assert "category" not in got["click"].ie[0].asDict() and "category" not in got["click"].ipv[0].asDict()


def test_a_page_holds_its_candidates_once_and_its_triggers(spark):
    pages = build_requests(frame(spark, SESSION, sessionized=True), DS, lookback_ms=86_400_000, m=50, n=30,
                           k=5).collect()
    assert len(pages) == 1 and (pages[0].user_id, pages[0].request_id, pages[0].ds) == ("u1", "r0", DS)
    page = pages[0]
    assert [(c.item_id, c.rank, c.exposed_ts is not None, c.clicked_ts is not None) for c in page.candidates] == [
        (11, 0, True, False), (12, 1, True, True), (13, 2, True, False), (14, 3, True, False), (15, 4, True, False),
        (16, 5, False, False)]
    assert [t.rerank_id for t in page.triggers] == ["r0-1", "r0-2", "r0-3"]


def test_a_trigger_takes_the_first_unexposed_candidates_up_to_the_maximum(spark):
    got = {r.trigger: r for r in per_trigger(
        build_requests(frame(spark, SESSION, sessionized=True), DS, lookback_ms=86_400_000, m=50, n=30, k=5),
        max_candidates=2)}
    assert {t: labels(r) for t, r in got.items()} == {
        "page": [(11, 0), (12, 1)], "click": [(13, 0), (14, 0)], "delete": [(15, 0), (16, None)]}


EXPOSURE_TYPE = pa.struct([
    ("idx", pa.int32()), ("ts", pa.int64()), ("item_id", pa.int64()), ("e1_duration_ms", pa.int64()),
    ("e2_count", pa.int64()), ("e3_max_scroll_speed", pa.float64()), ("e4_max_scroll_duration_ms", pa.int64()),
    ("e5_scroll_count", pa.int64()), ("deleted_ts", pa.int64()), ("delete_reason", pa.string())])
VIEW_TYPE = pa.struct([("idx", pa.int32()), ("ts", pa.int64()), ("end_ts", pa.int64()), ("item_id", pa.int64()),
                       ("ipv_duration_ms", pa.int64()), *[(a, pa.bool_()) for a in ACTION_NAMES]])
PAGE_TYPE = pa.struct([("user_id", pa.string()), ("request_id", pa.string()), ("candidates", pa.list_(pa.struct([
    ("rank", pa.int32()), ("item_id", pa.int64()), ("cloud_score", pa.float64()), ("exposed_ts", pa.int64()),
    ("shown_position", pa.int32()), ("clicked_ts", pa.int64()), ("cart_done", pa.int32()),
    ("buy_done", pa.int32())]))), ("triggers", pa.list_(pa.struct([
        ("rerank_id", pa.string()), ("session_key", pa.string()), ("trigger", pa.string()),
        ("trigger_ts", pa.int64()), ("origin", pa.string()), ("ie_first", pa.int32()), ("ie_last", pa.int32()),
        ("ipv_first", pa.int32()), ("ipv_last", pa.int32()), ("since_ts", pa.int64())]))),
    ("exposures", pa.list_(EXPOSURE_TYPE)), ("views", pa.list_(VIEW_TYPE)), ("ds", pa.string())])


def candidate(rank, exposed=None, clicked=None, position=None, cart=None):
    return {"rank": rank, "item_id": 100 + rank, "cloud_score": 1 - rank / 10, "exposed_ts": exposed,
            "shown_position": position, "clicked_ts": clicked, "cart_done": cart, "buy_done": None}


def trigger(rid, ts, ie=(1, 0), ipv=(1, 0), since=0):
    """A page's trigger at ts whose IE is the page's exposures of index ie[0]..ie[1] (IPV: views) since `since`."""
    return {"rerank_id": rid, "session_key": "s", "trigger": "page", "trigger_ts": ts, "origin": "logged",
            "ie_first": ie[0], "ie_last": ie[1], "ipv_first": ipv[0], "ipv_last": ipv[1], "since_ts": since}


def page(user, request, triggers, candidates=(), exposures=(), views=()):
    return {"user_id": user, "request_id": request, "ds": DS, "triggers": triggers, "candidates": list(candidates),
            "exposures": list(exposures), "views": list(views)}


def shown(idx, ts, item, deleted=None, reason=None):
    return {"idx": idx, "ts": ts, "item_id": item, "e1_duration_ms": 10 * idx, "e2_count": 1,
            "e3_max_scroll_speed": 1.5, "e4_max_scroll_duration_ms": 5, "e5_scroll_count": 1, "deleted_ts": deleted,
            "delete_reason": reason}


def viewed(idx, ts, end, item):
    return {"idx": idx, "ts": ts, "end_ts": end, "item_id": item, "ipv_duration_ms": end - ts,
            **{a: a == "cart" for a in ACTION_NAMES}}


def test_point_in_time_labels_each_trigger_from_its_page_and_time():
    pages = pa.RecordBatch.from_struct_array(pa.array([
        page("u1", "a", [trigger("a-1", 10), trigger("a-2", 20)],
             [candidate(0, exposed=10, position=0), candidate(1, exposed=12, clicked=15, position=1, cart=1),
              candidate(2, exposed=20, clicked=20, position=2), candidate(3)]),
        page("u2", "b", [], [candidate(0)]),
        page("u3", "c", [trigger("c-1", 5)]),
    ], type=PAGE_TYPE))
    rows = point_in_time(pages, max_candidates=3).to_pylist()
    assert [(r["rerank_id"], r["user_id"], r["request_id"], r["ie"], r["ipv"]) for r in rows] == [
        ("a-1", "u1", "a", [], []), ("a-2", "u1", "a", [], []), ("c-1", "u3", "c", [], [])]
    fields = ("item_id", "label", "shown_position", "cart", "buy")
    assert [[tuple(c[f] for f in fields) for c in r["candidates"]] for r in rows] == [
        # at 10: everything still to come (exposed at 10 itself included), the fourth past the maximum of 3
        [(100, 0, 0, None, None), (101, 1, 1, 1, 0), (102, 1, 2, 0, 0)],
        # at 20: 100 and 101 were exposed before it; 102 exposed and clicked at 20 itself; 103 never exposed (masked)
        [(102, 1, 2, 0, 0), (103, None, None, None, None)],
        []]
    # a slice of a batch (offsets that do not start at 0), as the encoder takes a batch's pages a few at a time
    assert point_in_time(pages.slice(0, 1), max_candidates=3).to_pylist() == rows[:2]
    assert point_in_time(pages.slice(1, 2), max_candidates=3).to_pylist() == rows[2:]
    assert point_in_time(pa.concat_batches([pages.slice(2, 1), pages.slice(0, 1)]),
                         max_candidates=3).to_pylist() == [rows[2], *rows[:2]]
    assert point_in_time(pages.slice(0, 0)).schema == point_in_time(pages).schema


def test_point_in_time_draws_each_trigger_s_sequences_from_its_page_by_index_and_time():
    exposures = [shown(3, 100, 1), shown(4, 200, 2, deleted=250, reason="r"), shown(5, 300, 3, deleted=500,
                                                                                        reason="s"), shown(6, 400, 4)]
    views = [viewed(1, 50, 120, 7), viewed(2, 150, 260, 8)]
    pages = pa.RecordBatch.from_struct_array(pa.array([
        # at 250: exposures 3..4, but the first is older than since; the first view ended before since
        page("u1", "a", [trigger("a-1", 250, ie=(3, 4), ipv=(1, 1), since=150),
                         # at 450: exposures 4..6 (the last 3), both views
                         trigger("a-2", 450, ie=(4, 6), ipv=(1, 2))], exposures=exposures, views=views),
        page("u2", "b", [trigger("b-1", 30, ipv=(9, 9))], views=[viewed(9, 10, 20, 5)]),
        page("u3", "c", [], exposures=[shown(1, 5, 9)]),
    ], type=PAGE_TYPE))
    rows = point_in_time(pages).to_pylist()
    ie = {r["rerank_id"]: [(e["item_id"], e["e1_duration_ms"], e["e6_delete_reason"], e["e7_age_s"])
                           for e in r["ie"]] for r in rows}
    # a delete is known from its own time on (the one at 250 to a-1 as well: it is why a delete trigger re-ranks),
    # the one at 500 to neither
    assert ie == {"a-1": [(2, 40, "r", 0.05)], "a-2": [(2, 40, "r", 0.25), (3, 50, "none", 0.15),
                                                           (4, 60, "none", 0.05)], "b-1": []}
    ipv = {r["rerank_id"]: [(v["item_id"], v["d1_duration_ms"], v["cart"], v["buy"], v["d12_age_s"])
                            for v in r["ipv"]] for r in rows}
    assert ipv == {"a-1": [], "a-2": [(7, 70, True, False, 0.33), (8, 110, True, False, 0.19)],
                   "b-1": [(5, 10, True, False, 0.01)]}
    assert list(rows[0]["ie"][0]) == ["ts", "item_id", "e1_duration_ms", "e2_count", "e3_max_scroll_speed",
                                      "e4_max_scroll_duration_ms", "e5_scroll_count", "e6_delete_reason", "e7_age_s"]
    assert list(rows[1]["ipv"][0]) == ["ts", "end_ts", "item_id", "d1_duration_ms", *ACTION_NAMES, "d12_age_s"]
    # slices of a batch (offsets that do not start at 0) and pages in another order
    assert point_in_time(pages.slice(1, 2)).to_pylist() == rows[2:]
    assert point_in_time(pa.concat_batches([pages.slice(1, 1), pages.slice(0, 1)])).to_pylist() == [
        rows[2], *rows[:2]]


def test_a_labelled_candidate_carries_the_display_position_of_its_first_exposure(spark):
    shown_again = [*SESSION, exposure(20_000, "e12", 15, 300, 7), exposure(20_300, "e13", 11, 300, 8)]
    got = requests(spark, shown_again)
    assert [(c.item_id, c.shown_position) for c in got["page"].candidates] == [
        (11, 0), (12, 1), (13, 2), (14, 3), (15, 4), (16, None)]  # 15 and 11 shown again later: first exposures
    # the candidates not yet exposed at the delete
    assert [(c.item_id, c.shown_position) for c in got["delete"].candidates] == [(15, 4), (16, None)]


def test_a_clicked_candidate_carries_what_its_page_view_did_and_the_others_nothing(spark):
    bought = [*SESSION, ev("click", 14_300, "e12", request_id="r0", item_id=15, position=4),
              ev("page_view", 14_400, "e13", request_id="r0", item_id=15, ipv_duration_ms=5_000, done=("buy",))]
    got = requests(spark, bought)
    assert [(c.item_id, c.label, c.cart, c.buy) for c in got["page"].candidates] == [
        (11, 0, None, None), (12, 1, 1, 0), (13, 0, None, None), (14, 0, None, None), (15, 1, 0, 1),
        (16, None, None, None)]
    # the click on 12 came before this trigger: no cart label of it here
    assert [(c.item_id, c.cart, c.buy) for c in got["click"].candidates] == [
        (13, None, None), (14, None, None), (15, 0, 1), (16, None, None)]


def test_a_rerank_of_the_exploration_bucket_is_an_explored_trigger(spark):
    explored = [dict(e, exploration={"window": 3, "offset": 1}) if e["event_type"] == "rerank" and
                e["trigger"] == "click" else e for e in SESSION]
    got = requests(spark, explored)
    assert {t: r.origin for t, r in got.items()} == {"page": "logged", "click": "explored", "delete": "logged"}
    # events written before the field joined the contract have no such column: their re-ranks are logged ones
    older = per_trigger(build_requests(frame(spark, SESSION, sessionized=True).drop("exploration"), DS,
                                       lookback_ms=3 * 86_400_000, m=50, n=30, k=5))
    assert sorted(r.origin for r in older) == ["logged"] * 3


def test_sequences_hold_only_what_happened_before_the_trigger(spark):
    got = requests(spark, SESSION)
    assert got["page"].ie == [] and got["page"].ipv == []
    click = got["click"]
    assert [(e.item_id, e.e1_duration_ms, e.e2_count, e.e6_delete_reason, e.e7_age_s) for e in click.ie] == [
        (11, 500, 1, "none", 13.2), (12, 2000, 1, "none", 12.7)]
    assert [(v.item_id, v.d1_duration_ms, v.cart, v.buy, v.d12_age_s) for v in click.ipv] == [
        (12, 10_000, True, False, 0.5)]
    delete = got["delete"]
    # the exposure at the trigger's own time (item 15) is not before it; the delete that triggered is known
    assert [(e.item_id, e.e6_delete_reason) for e in delete.ie] == [
        (11, "none"), (12, "none"), (13, "none"), (14, "not_interested")]
    assert delete.ie[-1].e4_max_scroll_duration_ms == 150


def test_ie_keeps_the_last_m_exposures(spark):
    got = requests(spark, SESSION, m=2)
    assert [e.item_id for e in got["delete"].ie] == [13, 14]
    assert [e.item_id for e in got["click"].ie] == [11, 12]


def test_repeated_exposures_accumulate_per_item(spark):
    earlier = [exposure(-60_000, "x1", 11, 700, 0), exposure(-30_000, "x2", 11, 900, 0)]
    got = requests(spark, earlier + SESSION)
    assert [(e.item_id, e.e1_duration_ms, e.e2_count) for e in got["click"].ie] == [
        (11, 700, 1), (11, 1600, 2), (11, 2100, 3), (12, 2000, 1)]


def test_triggers_are_derived_by_the_client_rules_when_not_logged(spark):
    unlogged = [e for e in SESSION if e["event_type"] != "rerank"]
    got = requests(spark, unlogged)
    # the click's trigger is the return from its page view, which is known to it
    assert {t: (r.trigger_ts - T0, r.origin) for t, r in got.items()} == {
        "page": (0, "derived"), "click": (12_700, "derived"), "delete": (13_900, "derived")}
    assert labels(got["click"]) == [(13, 0), (14, 0), (15, 0), (16, None)]
    assert [(v.item_id, v.d12_age_s) for v in got["click"].ipv] == [(12, 0.0)]


def test_a_page_writes_the_exposures_of_its_triggers_windows_once(spark):
    """With m=3 the click's IE is the user's exposures 1..2 and the delete's 2..4: the page writes 1..4 once."""
    pages = build_requests(frame(spark, SESSION, sessionized=True), DS, lookback_ms=86_400_000, m=3, n=30,
                           k=5).collect()
    assert [(e.idx, e.item_id) for e in pages[0].exposures] == [(1, 11), (2, 12), (3, 13), (4, 14)]
    assert [(t.trigger, t.ie_first, t.ie_last, t.ipv_first, t.ipv_last) for t in pages[0].triggers] == [
        ("page", 1, 0, 1, 0), ("click", 1, 2, 1, 1), ("delete", 2, 4, 1, 1)]
    assert [(v.idx, v.item_id) for v in pages[0].views] == [(1, 12)]
    got = requests(spark, SESSION, m=3)
    assert [e.item_id for e in got["delete"].ie] == [12, 13, 14]
    assert [e.item_id for e in got["click"].ie] == [11, 12]


def test_exposed_k_is_derived_every_k_unclicked_exposures(spark):
    rows = [ev("page_request", 0, "e00", request_id="r0", page_no=0, candidates=CANDIDATES)]
    rows += [exposure(1000 * j, f"e{j + 1:02d}", item, 100, j) for j, item in enumerate(ITEMS)]
    out = build_requests(frame(spark, rows, sessionized=True), DS, lookback_ms=86_400_000, m=50, n=30, k=2)
    got = sorted((r.trigger, r.trigger_ts - T0) for r in per_trigger(out))
    assert got == [("exposed_k", 1100), ("exposed_k", 3100), ("exposed_k", 5100), ("page", 0)]


def test_lookback_bounds_the_sequences(spark):
    old = [exposure(-4 * 86_400_000, "old", 11, 700, 0)]
    got = requests(spark, old + SESSION)
    assert [e.item_id for e in got["click"].ie] == [11, 12]  # the 4-day-old exposure is outside 3 days


def shuffle_keys(df) -> list[str]:
    """The keys of each exchange named in df's plan (adaptive execution off: a plan fixed before it runs), ids
    dropped: `user_id`, `user_id, request_id`."""
    plan = df._jdf.queryExecution().executedPlan().toString()
    return [re.sub(r"#\d+L?", "", keys) for keys in re.findall(r"Exchange hashpartitioning\((.*?), \d+\)", plan)]


def test_the_job_shuffles_by_the_user_alone(spark):
    """The events reach the job's aggregations, windows and joins shuffled by their user alone, and are not shuffled
    again by a longer key: the steps' keys all hold the user, and the session lets them read rows partitioned by a
    subset of their keys. Spark's default, which requires a join's sides partitioned by all of its keys, shuffles
    again by the longer keys."""
    confs = ("spark.sql.adaptive.enabled", "spark.sql.requireAllClusterKeysForCoPartition")
    before = {name: spark.conf.get(name) for name in confs}
    assert before[confs[1]] == "false"  # spark_jobs.session's setting
    events, planned = frame(spark, SESSION, sessionized=True), {}
    try:
        spark.conf.set(confs[0], "false")
        for require_all in ("true", "false"):
            spark.conf.set(confs[1], require_all)
            planned[require_all] = shuffle_keys(build_requests(events, DS, lookback_ms=86_400_000, m=50, n=30, k=5))
    finally:
        for name, value in before.items():
            spark.conf.set(name, value)
    assert set(planned["false"]) == {"user_id"}
    assert {"user_id, request_id", "user_id, rerank_id"} <= set(planned["true"])
