"""The Spark jobs end to end on the tiny simulated world of the integration tests."""

import shutil
from types import SimpleNamespace

import pyarrow as pa
import pytest
from pyspark.sql import functions as F

from edgerec.config import load_settings
from edgerec.contracts import BadRowReason
from edgerec.contracts.validate import day_bounds_ms
from edgerec.errors import MissingInput
from edgerec.features import GROUPS, ITEM_FEATURES, encode, load_spec
from edgerec.raw import BadShareExceeded, simulate_day
from edgerec.reports import SparkSummary
from edgerec.sim.corrupt import CORRUPTION_REASONS
from spark_jobs.bucketize import encoder, fit_spec, item_codes, one_batch
from spark_jobs.io import read_partitions
from spark_jobs.jobs import JOBS, run_jobs
from spark_jobs.requests import PAGE_COLUMNS, point_in_time
from tests.integration.conftest import DAYS

pytestmark = pytest.mark.integration


def dataset(spark, settings, name, ds):
    return read_partitions(spark, settings.dataset(name), [ds])


def as_triggers(spark, pages):
    """The requests job's pages as one row per trigger, with its candidates and labels (as the encoder sees them)."""
    return spark.createDataFrame(pa.Table.from_batches([point_in_time(one_batch(pages.toArrow()))]))


def triggers_of(spark, settings, ds):
    return as_triggers(spark, dataset(spark, settings, "requests", ds))


def test_every_corruption_kind_is_quarantined_with_its_reason(spark, world):
    settings, summaries, results = world
    for ds in DAYS:
        injected = summaries[ds]["corrupted_by_kind"]
        expected = {str(CORRUPTION_REASONS[k]): n for k, n in injected.items()}
        assert results[ds]["ingest"]["quarantined_by_reason"] == expected
        assert results[ds]["ingest"]["rows_in"] == summaries[ds]["lines"]
        assert results[ds]["ingest"]["rows_out"] == summaries[ds]["lines"] - sum(expected.values())
        quarantine = dataset(spark, settings, "quarantine", ds)
        assert {r.reason for r in quarantine.select("reason").distinct().collect()} == set(expected)
        assert quarantine.where(F.col("raw").isNull() | F.col("detail").isNull()).count() == 0
    both = {k for ds in DAYS for k in summaries[ds]["corrupted_by_kind"]}
    assert both == set(CORRUPTION_REASONS)  # every kind the simulator knows was exercised


def test_good_events_are_unique_and_in_their_day(spark, world):
    settings, _, _ = world
    events = dataset(spark, settings, "events", DAYS[1])
    assert events.count() == events.select("event_id").distinct().count()
    lo, _ = day_bounds_ms(DAYS[1])
    assert events.where((F.col("ts") < lo) | (F.col("ts") >= lo + 86_400_000)).count() == 0


def test_nothing_at_or_after_a_trigger_enters_its_sequences(spark, world):
    settings, _, _ = world
    requests = triggers_of(spark, settings, DAYS[1])
    assert requests.count() > 300
    ie = requests.select("trigger_ts", F.explode("ie").alias("e"))
    ipv = requests.select("trigger_ts", F.explode("ipv").alias("e"))
    assert ie.count() > 1000 and ipv.count() > 0
    assert ie.where(F.col("e.ts") >= F.col("trigger_ts")).count() == 0
    assert ipv.where(F.col("e.end_ts") > F.col("trigger_ts")).count() == 0
    # and the last exposure before each trigger is there
    events = dataset(spark, settings, "sessionized_events", DAYS[1]).where("event_type = 'exposure'")
    last = (requests.join(events.select("user_id", "ts"), "user_id")
            .where(F.col("ts") < F.col("trigger_ts")).groupBy("rerank_id").agg(F.max("ts").alias("last_ts")))
    ie_last = F.try_element_at("ie", F.lit(-1))["ts"].alias("ie_last")
    checked = last.join(requests.select("rerank_id", ie_last), "rerank_id")
    assert checked.count() > 300 and checked.where(F.col("ie_last") != F.col("last_ts")).count() == 0
    assert requests.where(F.size("ie") > settings.features.ie_length).count() == 0
    # day 2's sequences reach back into day 1
    assert ie.where(F.col("e.ts") < day_bounds_ms(DAYS[1])[0]).count() > 0


def test_labels_match_the_log(spark, world):
    settings, _, _ = world
    requests = triggers_of(spark, settings, DAYS[1])
    cands = requests.select("request_id", "trigger_ts", F.explode("candidates").alias("c"))
    events = dataset(spark, settings, "events", DAYS[1])
    clicks = events.where("event_type = 'click'").select("request_id", "item_id", F.col("ts").alias("click_ts"))
    joined = cands.join(clicks, (cands.request_id == clicks.request_id) & (F.col("c.item_id") == clicks.item_id),
                        "left")
    assert joined.where((F.col("c.label") == 1) & F.col("click_ts").isNull()).count() == 0
    assert joined.where(F.col("click_ts").isNotNull() & (F.col("c.label") != 1)).count() == 0
    assert cands.where(F.col("c.label") == 1).count() > 0
    exposures = events.where("event_type = 'exposure'").select("request_id", "item_id", F.col("ts").alias("exp_ts"))
    seen = cands.join(exposures, (cands.request_id == exposures.request_id)
                      & (F.col("c.item_id") == exposures.item_id), "left")
    assert seen.where(F.col("c.label").isNull() & F.col("exp_ts").isNotNull()).count() == 0  # masked: never shown
    assert seen.where((F.col("c.label") == 0) & (F.col("exp_ts") < F.col("trigger_ts"))).count() == 0
    # a label's display position is its exposure's (the simulator shows an item once per request)
    shown = events.where("event_type = 'exposure'").select("request_id", "item_id", F.col("position").alias("at"))
    placed = cands.where(F.col("c.label").isNotNull()).join(
        shown, (cands.request_id == shown.request_id) & (F.col("c.item_id") == shown.item_id))
    assert placed.count() > 1_000 and placed.where(F.col("c.shown_position") != F.col("at")).count() == 0


def test_derived_triggers_agree_with_logged_ones(spark, world):
    from spark_jobs.requests import build_requests

    settings, _, results = world
    events = read_partitions(spark, settings.dataset("sessionized_events"), DAYS)
    kwargs = {"lookback_ms": 3 * 86_400_000, "m": 50, "n": 30, "k": 5}
    logged = as_triggers(spark, build_requests(events, DAYS[1], **kwargs)).where("trigger = 'click'")
    derived = as_triggers(spark, build_requests(events.where("event_type != 'rerank'"), DAYS[1], **kwargs)) \
        .where("trigger = 'click'")
    def pairs(df, name):
        return df.select("request_id", F.try_element_at("ipv", F.lit(-1))["item_id"].alias("viewed"),
                         F.transform("candidates", lambda c: c["item_id"]).alias(name))

    both = pairs(logged, "logged_cands").join(pairs(derived, "derived_cands"), ["request_id", "viewed"])
    # every logged click trigger has a derived twin that saw the same page view and the same candidates,
    # but where a quarantined line (a click or its page view) took away what the rule needs
    quarantined = sum(results[DAYS[1]]["ingest"]["quarantined_by_reason"].values())
    assert logged.count() > 20
    assert logged.count() - quarantined <= both.count() <= logged.count()
    assert both.where(F.col("logged_cands") != F.col("derived_cands")).count() == 0


def raw_values(elements, name, catalog):
    """A feature's raw values along a request's list: an item feature from the catalog by the element's item id."""
    if name in ITEM_FEATURES:
        return [getattr(catalog[e.item_id], name) if e.item_id in catalog else None for e in elements]
    return [getattr(e, name) for e in elements]


def catalog_of(spark, settings, ds):
    return {r.item_id: r for r in dataset(spark, settings, "items", ds).collect()}


def test_spark_encoding_equals_the_numpy_function(spark, world):
    settings, _, _ = world
    spec = load_spec(settings.layout(DAYS[1]).feature_spec)
    catalog = catalog_of(spark, settings, DAYS[1])
    raw = {r.rerank_id: r for r in triggers_of(spark, settings, DAYS[1]).limit(200).collect()}
    encoded = {r.rerank_id: r for r in dataset(spark, settings, "features", DAYS[1])
               .where(F.col("rerank_id").isin(list(raw))).collect()}
    assert len(encoded) == len(raw) == 200
    sources = {"candidate": ("cand", "candidates"), "ie": ("ie", "ie"), "ipv": ("ipv", "ipv")}
    compared = 0
    for rid, row in raw.items():
        for group, (prefix, source) in sources.items():
            for name in GROUPS[group]:
                values = raw_values(getattr(row, source), name, catalog)
                expected = encode(spec["features"][name], values).tolist()
                assert getattr(encoded[rid], f"{prefix}_{name}") == expected, (rid, name)
                compared += len(values)
        assert encoded[rid].mask == [0 if c.label is None else 1 for c in row.candidates]
        assert encoded[rid].shown_position == [c.shown_position or 0 for c in row.candidates]
        assert (encoded[rid].cart, encoded[rid].buy) == ([c.cart or 0 for c in row.candidates],
                                                         [c.buy or 0 for c in row.candidates])
    assert compared > 10_000


def test_pages_encoded_a_few_at_a_time_give_the_same_rows(spark, world):
    """The encoder expands and encodes a batch's pages in slices (its workers' memory bounded): slices of 7 pages give
    the rows one call over the whole batch gives."""
    settings, _, _ = world
    spec = load_spec(settings.layout(DAYS[1]).feature_spec)
    catalog = dataset(spark, settings, "items", DAYS[1]).select("item_id", *ITEM_FEATURES).toArrow()
    codes = SimpleNamespace(value={DAYS[1]: item_codes(catalog, spec)})  # as the broadcast reads
    pages = one_batch(dataset(spark, settings, "requests", DAYS[1]).select(*PAGE_COLUMNS).toArrow())
    assert len(pages) > 50

    def encoded(per_call):
        transform, schema = encoder(pages.schema, spec, codes, None, pages_per_call=per_call)
        return pa.Table.from_batches(list(transform(pages)), schema=schema)

    whole, sliced = encoded(len(pages)), encoded(7)
    assert sliced.num_rows == whole.num_rows == sum(len(t) for t in pages.column("triggers").to_pylist())
    assert sliced.equals(whole)


def test_train_days_are_encoded_again_with_the_test_days_spec(spark, world, tmp_path):
    """Day 2's bucketize with 4 buckets instead of the world's 10: its train_features hold day 1's requests
    in day 2's codes, which differ from day 1's own features."""
    source = world[0]
    settings = load_settings({"EDGEREC_HOME": str(tmp_path), "EDGEREC_FEATURES_NUM_BUCKETS": "4"})
    for name in ("requests", "items"):
        shutil.copytree(source.dataset(name), settings.dataset(name))
    result = run_jobs(settings, DAYS[1], ["bucketize"], spark=spark)
    assert result["bucketize"]["train_days_encoded"] == [DAYS[0]]
    spec = load_spec(settings.layout(DAYS[1]).feature_spec)
    raw = {r.rerank_id: r for r in triggers_of(spark, settings, DAYS[0]).collect()}
    again = {r.rerank_id: r for r in dataset(spark, settings, "train_features", DAYS[1]).collect()}
    own = {r.rerank_id: r for r in dataset(spark, source, "features", DAYS[0]).collect()}
    assert set(again) == set(raw) and {str(r.request_ds) for r in again.values()} == {DAYS[0]}
    catalog = catalog_of(spark, settings, DAYS[0])  # day 1's requests take day 1's item features
    for rid in list(raw)[:50]:
        for name in GROUPS["ie"]:
            values = raw_values(raw[rid].ie, name, catalog)
            assert getattr(again[rid], f"ie_{name}") == encode(spec["features"][name], values).tolist(), (rid, name)
    assert sum(again[rid].ie_e1_duration_ms != own[rid].ie_e1_duration_ms for rid in raw) > len(raw) / 2
    first = dataset(spark, source, "train_features", DAYS[0])  # no day before the first: an empty partition
    assert first is not None and first.count() == 0 and "cand_cloud_score" in first.columns


def test_a_train_day_without_its_catalog_stops_bucketize_naming_it(spark, world, tmp_path):
    """A train day's requests take their item features from that day's catalog: without it, bucketize says which
    day's items to produce, and writes nothing."""
    source = world[0]
    settings = load_settings({"EDGEREC_HOME": str(tmp_path)})
    shutil.copytree(source.dataset("requests"), settings.dataset("requests"))
    shutil.copytree(source.dataset("items") / f"ds={DAYS[1]}", settings.dataset("items") / f"ds={DAYS[1]}")
    with pytest.raises(MissingInput, match=f"no input: items ds={DAYS[0]}; run the upstream job"):
        run_jobs(settings, DAYS[1], ["bucketize"], spark=spark)
    assert not settings.dataset("train_features").exists() and not settings.dataset("features").exists()


def test_requests_in_an_earlier_layout_are_named_with_the_rerun(spark, world, tmp_path, caplog):
    """Day 1's requests as the requests job wrote them before each page's candidates were written once (one row per
    trigger): day 2's bucketize leaves them out of the train split, naming the day and the rerun; day 2's own
    requests as pages without their sequences' exposures and page views (as written before those were written once
    per page) stop it before anything is written."""
    source = world[0]
    settings = load_settings({"EDGEREC_HOME": str(tmp_path)})
    shutil.copytree(source.dataset("items"), settings.dataset("items"))
    shutil.copytree(source.dataset("requests") / f"ds={DAYS[1]}", settings.dataset("requests") / f"ds={DAYS[1]}")
    triggers_of(spark, source, DAYS[0]).drop("ds").write.parquet(str(settings.dataset("requests") / f"ds={DAYS[0]}"))
    with caplog.at_level("WARNING", logger="spark_jobs.jobs"):
        result = run_jobs(settings, DAYS[1], ["bucketize"], spark=spark)
    assert result["bucketize"]["train_days_encoded"] == [] and result["bucketize"]["train_requests_encoded"] == 0
    assert (f"the requests of ['{DAYS[0]}'] are in an earlier layout (rerun `edgerec spark run requests --ds DAY` "
            "for each)") in caplog.text
    assert f"the feature spec is fit on ['{DAYS[1]}'] without ['{DAYS[0]}']" in caplog.text
    shutil.rmtree(settings.dataset("features"))
    shutil.rmtree(settings.dataset("requests") / f"ds={DAYS[1]}")
    pages = dataset(spark, source, "requests", DAYS[1]).drop("ds", "exposures", "views")
    pages.write.parquet(str(settings.dataset("requests") / f"ds={DAYS[1]}"))
    with pytest.raises(MissingInput, match=f"requests ds={DAYS[1]} are in an earlier layout.*"
                                           f"edgerec spark run requests --ds {DAYS[1]}"):
        run_jobs(settings, DAYS[1], ["bucketize"], spark=spark)
    assert not settings.dataset("features").exists()


def test_spec_is_the_same_whatever_the_partitioning(spark, world):
    settings, _, _ = world
    requests = dataset(spark, settings, "requests", DAYS[0])
    items = dataset(spark, settings, "items", DAYS[0])
    kwargs = {"num_buckets": 10, "max_requests": 300, "lengths": {"ie": 50, "candidates": 100}, "fit": {}}
    one = fit_spec(requests.coalesce(1), items, **kwargs)
    many = fit_spec(requests.repartition(7), items.repartition(3), **kwargs)
    assert one == many
    assert len(one["features"]["e1_duration_ms"]["boundaries"]) >= 5


def test_rerun_gives_identical_output(spark, world):
    settings, _, results = world
    before = sorted(tuple(r) for r in dataset(spark, settings, "features", DAYS[1]).collect())
    again = run_jobs(settings, DAYS[1], list(JOBS), spark=spark)
    after = sorted(tuple(r) for r in dataset(spark, settings, "features", DAYS[1]).collect())
    assert before == after
    assert again["bucketize"]["feature_spec_sha256"] == results[DAYS[1]]["bucketize"]["feature_spec_sha256"]
    summary = SparkSummary.read(settings.layout(DAYS[1]))
    assert summary.requests["requests"] == len(after)


def test_ingest_fails_above_the_bad_share_after_quarantining(spark, tmp_path):
    settings = load_settings({"EDGEREC_HOME": str(tmp_path), "EDGEREC_SIM_USERS": "10",
                              "EDGEREC_SIM_CORRUPT_RATE": "0.05"})
    simulate_day(settings, DAYS[0])
    with pytest.raises(BadShareExceeded, match=r"spark ingest ds=2026-11-01: .* above the threshold 1\.00%") as error:
        run_jobs(settings, DAYS[0], ["ingest"], spark=spark)
    assert error.value.__notes__ == ["in the Spark job ingest for ds=2026-11-01"]  # the DAG's one Spark task says which
    quarantine = read_partitions(spark, settings.dataset("quarantine"), [DAYS[0]])
    assert quarantine.where(F.col("reason") == str(BadRowReason.INVALID_JSON)).count() > 0
    assert read_partitions(spark, settings.dataset("events"), [DAYS[0]]) is None  # nothing passed on
