"""The quality gates on small crafted inputs: each suite passes on good data and blocks on the bad case."""


import shutil

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from edgerec.config import load_settings
from edgerec.contracts.catalog import CATALOG_ARROW_SCHEMA
from edgerec.errors import MissingInput
from edgerec.features import BUCKETIZED, ITEM_CATEGORICAL, make_spec, write_spec
from edgerec.quality.config import Bound, load_quality_config
from edgerec.quality.frames import FEATURE_COLUMNS, LIST_COLUMNS
from edgerec.quality.gate import QualityGateFailed, run_quality
from edgerec.reports import QualityChecks, RawValidation, SparkSummary

pytestmark = pytest.mark.integration
DAY1, DAY2 = "2026-11-01", "2026-11-02"
T = 1_793_500_000_000  # a trigger time on DAY1 (ms)


@pytest.fixture
def settings(tmp_path):
    return load_settings({"EDGEREC_HOME": str(tmp_path / "state")})


def config(**features):
    """The packaged thresholds, with small-histogram drift enabled for these tiny days."""
    cfg = load_quality_config()
    return cfg.model_copy(update={"features": cfg.features.model_copy(update={"histogram_min_count": 10,
                                                                               **features})})


def request(i: int, *, labels=(1, 0, 0), ie_ts=(T - 5_000, T - 1_000), code=1) -> dict:
    """One encoded request: three candidates, two IE elements, no IPV; every feature code `code`."""
    row = {"rerank_id": f"r{i}", "user_id": f"u{i % 7}", "session_key": f"s{i}", "request_id": f"q{i}",
           "trigger": "click", "trigger_ts": T, "origin": "logged"}
    for column in LIST_COLUMNS:
        group = column.split("_")[0]
        row[column] = [code] * {"cand": len(labels), "ie": len(ie_ts)}.get(group, 0)
    row |= {"label": list(labels), "mask": [1] * len(labels), "ie_ts": list(ie_ts), "ipv_end_ts": []}
    return row


def write_day(settings, ds: str, rows: list[dict], drop: tuple[str, ...] = (), full_lookback=True) -> None:
    """The Spark outputs of a day: features partition, feature spec and the run summary."""
    columns = [c for c in FEATURE_COLUMNS if c != "ds" and c not in drop]
    table = pa.table({c: [r[c] for r in rows] for c in columns})
    part = settings.dataset("features") / f"ds={ds}"
    part.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, part / "part-0.parquet")
    spec = make_spec({name: [0.5, 1.5] for name in BUCKETIZED}, {name: 5 for name in ITEM_CATEGORICAL},
                     {"ie": 50, "ipv": 30, "candidates": 100}, {"days": [ds]})
    write_spec(spec, settings.layout(ds).feature_spec)
    days = settings.features.lookback_days + 1 if full_lookback else 1
    SparkSummary(ds=ds, requests={"event_days_read": [ds] * days}).write(settings.layout(ds))


def failed(report: dict) -> dict[str, dict]:
    return {f"{r['table']}.{r['check']}": r for r in report["results"] if not r["success"]}


def report_of(settings, ds, layer) -> dict:
    return QualityChecks.read(settings.layout(ds), layer=layer).model_dump()


def good_day(n=120, **kwargs) -> list[dict]:
    return [request(i, **kwargs) for i in range(n)]


def test_features_pass_on_good_data_and_write_data_docs(settings):
    write_day(settings, DAY1, good_day())
    report = run_quality(settings, DAY1, "features", config(), notify=False)
    assert report.failures == [] and len(report.results) >= 17
    assert report.metrics["requests"] == 120 and report.metrics["label_rate"] == pytest.approx(1 / 3)
    assert (settings.home / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html").exists()
    assert all(r.docs.endswith(".html") and (settings.home / "gx").as_posix() in r.docs for r in report.results)
    assert report_of(settings, DAY1, "features")["passed"] is True


def test_a_missing_column_blocks_and_is_named(settings):
    write_day(settings, DAY1, good_day(), drop=("label",))
    with pytest.raises(QualityGateFailed, match="features.schema.schema"):
        run_quality(settings, DAY1, "features", config(), notify=False)
    report = report_of(settings, DAY1, "features")
    assert failed(report)["schema.schema"]["observed"] == "missing columns: label"
    assert report["skipped"] == ["features: every check but the schema (missing columns: label)"]


def test_a_label_rate_of_zero_blocks(settings):
    write_day(settings, DAY1, good_day(labels=(0, 0, 0)))
    with pytest.raises(QualityGateFailed, match="features.day.label_rate"):
        run_quality(settings, DAY1, "features", config(), notify=False)
    bad = failed(report_of(settings, DAY1, "features"))
    assert set(bad) == {"day.label_rate"}
    assert bad["day.label_rate"]["observed"] == 0.0 and bad["day.label_rate"]["expected"] == "in [0.005, 0.5]"


def test_a_leaked_sequence_element_blocks(settings):
    rows = good_day()
    rows[7] = request(7, ie_ts=(T - 5_000, T))  # an exposure at the trigger time itself
    write_day(settings, DAY1, rows)
    with pytest.raises(QualityGateFailed, match="features.requests.no_ie_leakage"):
        run_quality(settings, DAY1, "features", config(), notify=False)
    bad = failed(report_of(settings, DAY1, "features"))
    assert set(bad) == {"requests.no_ie_leakage"}
    assert bad["requests.no_ie_leakage"]["observed"].startswith("1 of 120 rows")
    assert bad["requests.no_ie_leakage"]["expected"] == "max_ie_ts < trigger_ts"


def test_codes_outside_the_vocabulary_block(settings):
    write_day(settings, DAY1, good_day(code=9))  # binary features have 3 codes, bucketized ones 4
    with pytest.raises(QualityGateFailed, match="features.codes.codes_within_vocabulary"):
        run_quality(settings, DAY1, "features", config(), notify=False)


def test_a_drifted_histogram_blocks_against_the_days_before(settings):
    write_day(settings, DAY1, good_day(code=1))
    assert run_quality(settings, DAY1, "features", config(), notify=False).failures == []
    write_day(settings, DAY2, good_day(code=2))
    with pytest.raises(QualityGateFailed, match=r"histogram_psi:cand_ctr_score<=block"):
        run_quality(settings, DAY2, "features", config(), notify=False)
    bad = failed(report_of(settings, DAY2, "features"))
    assert bad["drift.histogram_psi:cand_ctr_score<=block"]["observed"] > 0.25
    assert bad["drift.histogram_psi:cand_ctr_score<=warn"]["level"] == "warn"


def test_sequence_histograms_are_not_compared_while_the_lookback_fills(settings):
    write_day(settings, DAY1, good_day(code=1), full_lookback=False)
    run_quality(settings, DAY1, "features", config(), notify=False)
    write_day(settings, DAY2, [request(i, code=1) | {"ie_e7_age_s": [2, 2]} for i in range(120)],
              full_lookback=False)
    report = run_quality(settings, DAY2, "features", config(), notify=False)
    assert report.failures == []
    assert "lookback window of ds=2026-11-02 is not full yet" in " ".join(report.skipped)


def test_same_day_again_passes_after_a_blocked_day_is_left_out_of_the_baseline(settings):
    write_day(settings, DAY1, good_day(code=2))
    with pytest.raises(QualityGateFailed):
        run_quality(settings, DAY1, "features", config(requests=Bound(min=1000)), notify=False)
    write_day(settings, DAY2, good_day(code=1))
    report = run_quality(settings, DAY2, "features", config(), notify=False)  # no baseline: day 1 was blocked
    assert report.failures == [] and "features.drift: no earlier days" in " ".join(report.skipped)


def write_raw(settings, ds: str, items: dict, good=5_000, bad=2,
              requests=(("q1", "u1"), ("q1", "u1"), ("q2", "u2"), (None, "u3"), ("", "u1"), ("", "u2"))) -> None:
    """The raw day as the raw gate reads it: the catalog, the validation report and the ingested events' (request
    id, user) pairs (None or "": an event of no request)."""
    day = settings.layout(ds)
    day.raw_items.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(items, schema=CATALOG_ARROW_SCHEMA), day.raw_items)
    events = settings.dataset("events") / f"ds={ds}"
    events.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"request_id": [r for r, _ in requests], "user_id": [u for _, u in requests]}),
                   events / "part-0.parquet")
    RawValidation(ds=ds, files=1, rows=good + bad, good=good, bad=bad, bad_share=bad / (good + bad), good_by_type={},
                  bad_by_reason={"invalid_json": bad}, quarantine="", max_bad_share=0.01).write(day)


ITEMS = {"item_id": [1, 2, 3], "category": [0, 1, 1], "brand": [0, 3, 4], "gender": [0, 1, 2],
         "price_level": [0, 1, 2], "age_level": [0, 1, 2], "bc_type": [0, 1, 0], "ctr_score": [0.1, 0.2, 0.3],
         "cvr_score": [0.01, 0.02, 0.03]}


def test_raw_passes_then_warns_on_bad_share_and_blocks_on_a_broken_catalog_and_volume(settings, caplog):
    write_raw(settings, DAY1, ITEMS)
    assert run_quality(settings, DAY1, "raw", notify=False).failures == []
    write_raw(settings, DAY2, ITEMS | {"ctr_score": [0.1, 1.7, 0.3]}, good=500, bad=20)
    with pytest.raises(QualityGateFailed) as error:
        run_quality(settings, DAY2, "raw")
    bad = failed(report_of(settings, DAY2, "raw"))
    assert set(bad) == {"items.ctr_score_range", "day.events", "day.bad_share", "drift.event_volume_change<=warn",
                        "drift.event_volume_change<=block"}
    assert bad["day.bad_share"]["level"] == "warn" and bad["items.ctr_score_range"]["level"] == "block"
    assert bad["items.ctr_score_range"]["observed"] == "1 of 3 rows (e.g. 1.7)"
    assert bad["drift.event_volume_change<=block"]["observed"] == 0.9
    assert "day.bad_share" not in str(error.value)  # a warning does not block
    assert "[WARN] quality:raw ds=2026-11-02: raw.day.bad_share: observed 0.038462, expected <= 0.001" in caplog.text


def test_raw_blocks_a_request_id_that_two_users_share(settings):
    write_raw(settings, DAY1, ITEMS, requests=(("q1", "u1"), ("q1", "u2"), ("q2", "u2"), ("q2", "u2")))
    with pytest.raises(QualityGateFailed, match=r"raw.events.request_id_of_one_user"):
        run_quality(settings, DAY1, "raw", notify=False)
    bad = failed(report_of(settings, DAY1, "raw"))
    assert set(bad) == {"events.request_id_of_one_user"}
    assert bad["events.request_id_of_one_user"]["observed"] == "2 of 3 rows (e.g. q1)"


def test_raw_says_to_run_the_spark_jobs_when_the_days_events_are_missing(settings):
    write_raw(settings, DAY1, ITEMS)
    shutil.rmtree(settings.dataset("events") / f"ds={DAY1}")
    with pytest.raises(MissingInput, match=r"no ingested events for ds=2026-11-01 in .*; run the Spark jobs"):
        run_quality(settings, DAY1, "raw", notify=False)


RECALL_ROWS = [("u1", 7, 2_000, 1_000, 2, 1), ("u1", 8, 3_000, 2_000, 3, 2)]


def write_marts(settings, days: dict[str, tuple[int, float]], test_rows: list[dict], drop=(),
                recall_rows=tuple(RECALL_ROWS)) -> None:
    """The marts database as dbt leaves it: test requests and recall samples (user, target, ts, last history ts,
    history length, session part) of the last day, their users' latest histories, and daily stats of every day."""
    ds = max(days)
    write_day(settings, ds, test_rows)
    relation = f"read_parquet('{settings.dataset('features')}/ds={ds}/*.parquet', hive_partitioning = true)"
    extra = "'test' as split, 0 as user_bucket, len(cand_item_id) as n_candidates, " \
            "list_sum(mask) as n_labelled, list_sum(label) as n_clicks"
    with duckdb.connect(str(settings.duckdb_path)) as con:
        con.execute(f"create or replace table fct_test_requests as select * exclude ({', '.join(drop) or 'split'})"
                    f" from (select *, {extra} from {relation})" if drop else
                    f"create or replace table fct_test_requests as select *, {extra} from {relation}")
        con.execute("create or replace table fct_train_requests as select * from fct_test_requests limit 0")
        con.execute("create or replace table rpt_daily_stats (ds date, requests bigint, ctr double, "
                    "mean_ie_length double)")
        for day, (requests, ctr) in days.items():
            con.execute("insert into rpt_daily_stats values (?, ?, ?, 2.0)", [day, requests, ctr])
        for split, rows in (("train", []), ("test", recall_rows)):
            con.execute(f"create or replace table fct_recall_{split} (user_id varchar, target_item bigint, ts bigint, "
                        "last_history_ts bigint, history_length bigint, session_history bigint, ds date)")
            for row in rows:
                con.execute(f"insert into fct_recall_{split} values (?, ?, ?, ?, ?, ?, ?)", [*row, ds])
        con.execute("create or replace table fct_recall_users (user_id varchar, history_length bigint)")
        con.execute("insert into fct_recall_users select distinct user_id, history_length from fct_recall_test")


def test_marts_warn_on_an_empty_train_split_and_block_on_a_ctr_jump(settings):
    write_marts(settings, {"2026-10-31": (120, 0.33), DAY1: (120, 0.33)}, good_day())
    report = run_quality(settings, DAY1, "marts", notify=False)
    assert [r.name for r in report.failures] == ["marts.day.train_requests"]  # warn: a first day has no train
    write_marts(settings, {"2026-10-31": (120, 0.33), DAY1: (120, 0.33), DAY2: (120, 0.99)}, good_day())
    with pytest.raises(QualityGateFailed, match=r"marts.drift.ctr_change<=block"):
        run_quality(settings, DAY2, "marts", notify=False)
    bad = failed(report_of(settings, DAY2, "marts"))
    assert bad["drift.ctr_change<=block"]["observed"] == 2.0 and bad["drift.ctr_change<=block"]["expected"] == "<= 0.5"
    # The blocked day stays out of the next day's baseline: back to normal is not a drift.
    write_marts(settings, {"2026-10-31": (120, 0.33), DAY1: (120, 0.33), DAY2: (120, 0.99), "2026-11-03": (120, 0.33)},
                good_day())
    report = run_quality(settings, "2026-11-03", "marts", notify=False)
    assert report.blocking == [] and report.metrics["baseline_days"] == ["2026-10-31", DAY1]


def test_marts_without_labels_block(settings):
    write_marts(settings, {DAY1: (120, 0.33)}, good_day(), drop=("n_labelled",))
    with pytest.raises(QualityGateFailed, match="fct_test_requests_schema"):
        run_quality(settings, DAY1, "marts", notify=False)
    assert failed(report_of(settings, DAY1, "marts"))["fct_test_requests_schema.schema"]["observed"] == \
        "missing columns: n_labelled"


def test_recall_samples_whose_history_follows_their_click_block(settings):
    write_marts(settings, {DAY1: (120, 0.33)}, good_day())
    report = run_quality(settings, DAY1, "marts", notify=False)
    assert [r.name for r in report.failures] == ["marts.day.train_requests"]
    leaking = [*RECALL_ROWS, ("u2", 9, 5_000, 5_001, 1, 0), ("u3", 9, 6_000, 5_000, 2, 3)]
    write_marts(settings, {DAY1: (120, 0.33)}, good_day(), recall_rows=leaking)
    with pytest.raises(QualityGateFailed, match="marts.fct_recall_test.no_recall_history_leakage"):
        run_quality(settings, DAY1, "marts", notify=False)
    bad = failed(report_of(settings, DAY1, "marts"))
    assert set(bad) == {"fct_recall_test.no_recall_history_leakage", "fct_recall_test.session_within_history",
                        "day.train_requests"}  # (a warning: the hand-made train split is empty)


def test_recall_users_with_an_empty_history_block(settings):
    write_marts(settings, {DAY1: (120, 0.33)}, good_day())
    with duckdb.connect(str(settings.duckdb_path)) as con:
        con.execute("insert into fct_recall_users values ('u9', 0)")
    with pytest.raises(QualityGateFailed, match="marts.fct_recall_users.history_length"):
        run_quality(settings, DAY1, "marts", notify=False)


def test_marts_without_the_recall_samples_block_naming_them(settings):
    write_marts(settings, {DAY1: (120, 0.33)}, good_day())
    with duckdb.connect(str(settings.duckdb_path)) as con:
        con.execute("drop table fct_recall_test")
    with pytest.raises(QualityGateFailed, match="fct_recall_test_schema"):
        run_quality(settings, DAY1, "marts", notify=False)
    assert failed(report_of(settings, DAY1, "marts"))["fct_recall_test_schema.schema"]["observed"] == \
        "missing columns: ds, history_length, last_history_ts, session_history, target_item, ts, user_id"


def test_mart_codes_outside_the_days_vocabularies_block(settings):
    write_marts(settings, {DAY1: (120, 0.33)}, good_day(code=9))
    with pytest.raises(QualityGateFailed, match="marts.codes.codes_within_vocabulary"):
        run_quality(settings, DAY1, "marts", notify=False)
