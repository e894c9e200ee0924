import pytest

from spark_jobs.sessionize import session_stats, sessionize
from tests.integration.spark.events import DS, T0, ev, frame

pytestmark = pytest.mark.integration
MIN = 60_000


def test_client_session_ids_are_kept_and_gaps_split_the_rest(spark):
    rows = [
        ev("exposure", 0, "a2", item_id=1),               # same ts as a1: event_id breaks the tie
        ev("exposure", 0, "a1", item_id=2),
        ev("click", 5 * MIN, "a3", item_id=2),
        ev("exposure", 0, "b1", user="u2", session=None, item_id=3),
        ev("exposure", 10 * MIN, "b2", user="u2", session=None, item_id=4),
        ev("exposure", 50 * MIN, "b3", user="u2", session=None, item_id=5),  # 40 min later: a new session
    ]
    out = sessionize(frame(spark, rows), gap_ms=30 * MIN)
    got = sorted((r.event_id, r.session_key, r.seq) for r in out.collect())
    assert got == [
        ("a1", "s1", 1), ("a2", "s1", 2), ("a3", "s1", 3),
        ("b1", f"u2-gap-{T0}", 1), ("b2", f"u2-gap-{T0}", 2), ("b3", f"u2-gap-{T0 + 50 * MIN}", 1),
    ]
    # a longer gap threshold keeps u2 in one session
    longer = sessionize(frame(spark, rows), gap_ms=45 * MIN)
    assert {r.session_key for r in longer.where("user_id = 'u2'").collect()} == {f"u2-gap-{T0}"}


def test_two_users_whose_clients_drew_the_same_session_id_keep_their_own_sessions(spark):
    rows = [ev("exposure", 0, "a1", item_id=1), ev("exposure", 1000, "b1", user="u2", item_id=2),
            ev("click", 2000, "a2", item_id=1), ev("click", 3000, "b2", user="u2", item_id=2)]
    sessionized = sessionize(frame(spark, rows), gap_ms=30 * MIN)
    assert sorted((r.event_id, r.user_id, r.session_key, r.seq) for r in sessionized.collect()) == [
        ("a1", "u1", "s1", 1), ("a2", "u1", "s1", 2), ("b1", "u2", "s1", 1), ("b2", "u2", "s1", 2)]
    stats = session_stats(sessionized).collect()
    assert sorted((r.user_id, r.session_key, r.events, r.clicks) for r in stats) == [
        ("u1", "s1", 2, 1), ("u2", "s1", 2, 1)]


def test_session_stats(spark):
    rows = [ev("page_request", 0, "p", request_id="r", candidates=[]), ev("exposure", 1000, "e1", item_id=1),
            ev("exposure", 2000, "e2", item_id=2), ev("click", 3000, "c", item_id=2)]
    stats = session_stats(sessionize(frame(spark, rows), gap_ms=30 * MIN)).collect()
    assert [r.asDict() for r in stats] == [{
        "session_key": "s1", "user_id": "u1", "ds": DS, "start_ts": T0, "end_ts": T0 + 3000, "events": 4,
        "page_requests": 1, "exposures": 2, "clicks": 1, "page_views": 0, "deletes": 0, "reranks": 0,
        "duration_s": 3.0}]
