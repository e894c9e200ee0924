"""dbt build of the marts on the tiny simulated world, the quality gates on its output, and dbt failures."""

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from edgerec.canary import device_columns, position_columns
from edgerec.config import load_settings
from edgerec.marts import DbtFailed, build_marts, docs_generate
from edgerec.quality.gate import run_quality
from tests.integration.conftest import DAYS

pytestmark = pytest.mark.integration


def features(settings, sql: str):
    relation = f"read_parquet('{settings.dataset('features')}/*/*.parquet', hive_partitioning = true)"
    with duckdb.connect() as con:
        return con.execute(sql.format(features=relation)).fetchall()


def mart(settings, sql: str):
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_marts_split_train_before_ds_and_test_on_ds(marts):
    settings, summary = marts
    labelled = dict(features(settings, "select cast(ds as varchar), count(*) from {features} "
                                       "where list_sum(mask) > 0 group by ds"))
    assert summary["rows"]["fct_train_requests"] == labelled[DAYS[0]]
    assert summary["rows"]["fct_test_requests"] == labelled[DAYS[1]]
    assert mart(settings, "select distinct cast(ds as varchar) from fct_test_requests") == [(DAYS[1],)]
    assert mart(settings, "select distinct cast(ds as varchar) from fct_train_requests") == [(DAYS[0],)]
    assert summary["nodes"]["unit_test"] == 3 and summary["nodes"]["test"] >= 50


def test_daily_stats_agree_with_the_spark_summary(marts, world):
    settings, _ = marts
    _, _, results = world
    rows = mart(settings, "select cast(ds as varchar), requests, labelled_candidates, clicks, ctr, "
                          "ctr_by_position[1] from rpt_daily_stats order by ds")
    assert [r[0] for r in rows] == DAYS
    for (ds, requests, labelled, clicks, ctr, _), day in zip(rows, DAYS, strict=True):
        spark, encoded = results[day]["requests"], results[day]["bucketize"]
        assert (requests, labelled, clicks) == (spark["requests"], encoded["labelled"], encoded["clicks"]), ds
        assert ctr == pytest.approx(encoded["label_rate"], abs=1e-4)
    first = features(settings, "select sum(label[1]), sum(mask[1]) from {features} where ds = '2026-11-02'")[0]
    assert rows[1][5] == pytest.approx(first[0] / first[1])


def test_version_daily_counts_each_cohorts_events(marts):
    """The tiny world ran no model: one 'cloud order' row a day whose counts are the day's events."""
    settings, _ = marts
    relation = f"read_parquet('{settings.dataset('events')}/*/*.parquet', hive_partitioning = true)"
    with duckdb.connect() as con:
        expected = con.execute(f"select cast(ds as varchar), count(distinct device_id), "
                               f"count(*) filter (where event_type = 'exposure'), "
                               f"count(*) filter (where event_type = 'click') from {relation} group by 1 order by 1"
                               ).fetchall()
    rows = mart(settings, "select cast(ds as varchar), model_version, devices, exposures, clicks, ctr "
                          "from rpt_version_daily order by ds")
    assert [(ds, devices, exposures, clicks) for ds, _, devices, exposures, clicks, _ in rows] == expected
    assert {r[1] for r in rows} == {"cloud order"}
    assert all(r[5] == pytest.approx(r[4] / r[3]) for r in rows)
    # the canary analysis resamples the devices whose sums these are
    devices = device_columns(settings.duckdb_path, DAYS[1])
    assert list(devices) == ["cloud order"] and len(devices["cloud order"]["clicks"]) == rows[1][2]
    assert devices["cloud order"]["clicks"].sum() == rows[1][4]


def test_version_position_daily_counts_exposures_and_clicks_per_position(marts):
    settings, _ = marts
    relation = f"read_parquet('{settings.dataset('events')}/*/*.parquet', hive_partitioning = true)"
    with duckdb.connect() as con:
        expected = con.execute(f"select cast(ds as varchar), position, count(*) filter (where event_type = 'exposure'),"
                               f" count(*) filter (where event_type = 'click') from {relation} "
                               "where event_type in ('exposure', 'click') and position is not null "
                               "group by 1, 2 order by 1, 2").fetchall()
    rows = mart(settings, "select cast(ds as varchar), position, exposures, clicks from rpt_version_position_daily "
                          "order by ds, position")
    assert rows == expected and len(rows) > 20
    positions = position_columns(settings.duckdb_path, DAYS[1])
    assert list(positions) == ["cloud order"]
    day = [r for r in rows if r[0] == DAYS[1]]
    assert [positions["cloud order"]["exposures"][r[1]] for r in day] == [r[2] for r in day]
    assert positions["cloud order"]["clicks"].sum() == sum(r[3] for r in day)


def test_items_dimension_holds_each_item_once(marts):
    settings, summary = marts
    assert summary["rows"]["dim_items"] == mart(settings, "select count(distinct item_id) from dim_items")[0][0]
    assert summary["rows"]["dim_items"] > 1000


def test_quality_gates_pass_on_the_world(marts):
    settings, _ = marts
    for layer in ("features", "marts"):
        report = run_quality(settings, DAYS[1], layer, notify=False)
        assert report.blocking == [], report.render()


def test_docs_generate(marts):
    settings, _ = marts
    index = docs_generate(settings, DAYS[1])
    assert index.exists() and (index.parent / "catalog.json").exists()


def test_a_failing_dbt_test_fails_the_build_and_is_named(tmp_path, world):
    """Two requests with one rerank_id: the staging model's unique test fails the build."""
    source = world[0]
    settings = load_settings({"EDGEREC_HOME": str(tmp_path)})
    table = pq.read_table(source.dataset("features") / f"ds={DAYS[1]}").slice(0, 3)
    duplicated = pa.concat_tables([table, table.slice(0, 1)])
    copies = {name: pq.read_table(source.dataset(name) / f"ds={DAYS[1]}")
              for name in ("train_features", "items", "events")}
    for name, data in (("features", duplicated), *copies.items()):
        part = settings.dataset(name) / f"ds={DAYS[1]}"
        part.mkdir(parents=True)
        pq.write_table(data.drop_columns([c for c in ("ds",) if c in data.column_names]), part / "part-0.parquet")
    with pytest.raises(DbtFailed, match=r"test unique_stg_warehouse__features_rerank_id: fail: Got 1 result"):
        build_marts(settings, DAYS[1])


def test_the_spark_target_builds_the_same_marts(marts, tmp_path):
    """The same models and tests on dbt-spark (an in-process session), over the same warehouse."""
    settings, summary = marts
    (tmp_path / "warehouse").symlink_to(settings.warehouse)
    on_spark = settings.replace(home=tmp_path, dbt={"target": "spark", "spark_method": "session"})
    result = build_marts(on_spark, DAYS[1])
    assert result["target"] == "spark" and result["nodes"] == summary["nodes"]
    tables = tmp_path / "dbt" / "spark-warehouse" / "edgerec.db"
    with duckdb.connect() as con:
        for name in ("fct_train_requests", "fct_test_requests", "dim_items", "fct_recall_train", "fct_recall_test",
                     "fct_recall_users"):
            count = con.execute(f"select count(*) from read_parquet('{tables / name}/*.parquet')").fetchone()[0]
            assert count == summary["rows"][name], name
        histories = con.execute(f"select user_id, ts, history_items from read_parquet('{tables}/fct_recall_test/"
                                "*.parquet') order by user_id, ts, target_item").fetchall()
    assert histories == mart(settings, "select user_id, ts, history_items from fct_recall_test "
                                       "order by user_id, ts, target_item")  # the same lists, in the same order


def interaction_timelines(settings) -> dict[str, list[tuple]]:
    """Each user's interactions computed another way, in Python from the sessionized events: a click and its page
    view (same request and item) are one interaction. In time order: (ts, key, item, session, day, is_click)."""
    relation = f"read_parquet('{settings.dataset('sessionized_events')}/*/*.parquet', hive_partitioning = true)"
    with duckdb.connect() as con:
        events = con.execute(f"select user_id, session_key, coalesce(request_id, event_id), item_id, ts, "
                             f"cast(ds as varchar), event_type from {relation} "
                             "where event_type in ('click', 'page_view')").fetchall()
    interactions: dict[tuple, list] = {}
    for user, session, key, item, ts, day, kind in events:
        first = interactions.setdefault((user, session, key, item), [ts, day, False])
        first[0], first[1] = min(first[0], ts), min(first[1], day)
        first[2] |= kind == "click"
    by_user: dict[str, list] = {}
    for (user, session, key, item), (ts, day, click) in interactions.items():
        by_user.setdefault(user, []).append((ts, key, item, session, day, click))
    return {user: sorted(timeline) for user, timeline in by_user.items()}


def expected_recall_samples(settings, ds: str) -> set[tuple]:
    """The recall marts' rows: each click's history is the user's earlier interactions."""
    rows = set()
    for user, timeline in interaction_timelines(settings).items():
        for n, (ts, _, item, session, day, click) in enumerate(timeline):
            before = timeline[:n][-settings.marts.recall_history:]
            in_session = sum(1 for e in timeline[:n] if e[3] == session)
            if click and before:
                rows.add((user, ts, item, tuple(e[2] for e in before), in_session, "test" if day == ds else "train"))
    return rows


def test_the_recall_marts_hold_each_click_with_the_users_earlier_interactions(marts):
    settings, summary = marts
    got = mart(settings, "select user_id, ts, target_item, history_items, session_history, split from fct_recall_train "
                         "union all select user_id, ts, target_item, history_items, session_history, split "
                         "from fct_recall_test")
    got = {(u, ts, item, tuple(history), session, split) for u, ts, item, history, session, split in got}
    expected = expected_recall_samples(settings, DAYS[1])
    assert got == expected
    assert {r[-1] for r in got} == {"train", "test"}
    assert summary["rows"]["fct_recall_test"] == sum(r[-1] == "test" for r in expected) > 0


def test_the_recall_users_mart_holds_each_users_latest_interactions(marts):
    settings, summary = marts
    got = {user: tuple(items) for user, items in mart(settings, "select user_id, history_items from fct_recall_users")}
    expected = {user: tuple(e[2] for e in timeline[-settings.marts.recall_history:])
                for user, timeline in interaction_timelines(settings).items()}
    assert got == expected and summary["rows"]["fct_recall_users"] == len(expected) > 0
