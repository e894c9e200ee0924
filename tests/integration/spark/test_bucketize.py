import numpy as np
import pyarrow as pa
import pytest
from pyspark.sql import functions as F

from edgerec.features import BUCKETIZED, ENCODED_KEYS, ITEM_CATEGORICAL, encode, make_spec
from spark_jobs.bucketize import (
    _encoded,
    _quantiles,
    encode_batch,
    encode_days,
    encoded_figures,
    encoded_schema,
    exact_percentiles,
    item_codes,
    sample_triggers,
)

pytestmark = pytest.mark.integration


def test_exact_percentiles_interpolate_between_the_closest_ranks():
    values = np.array([8.0, 1.0, 4.0, 2.0])
    # positions (n - 1) * p: 0.75 -> 1 + 0.75 * (2 - 1); 1.5 -> 2 + 0.5 * (4 - 2); 3 -> the largest
    assert exact_percentiles(values, [0.25, 0.5, 1.0]) == [1.75, 3.0, 8.0]
    assert exact_percentiles(np.array([5.0]), [0.1, 0.9]) == [5.0, 5.0]


def test_the_driver_computes_what_sparks_percentile_computes_bit_for_bit(spark):
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.lognormal(0, 3, 2_000), -rng.random(500) * 1e-3, np.full(300, 0.1),
                             rng.integers(0, 50, 1_000).astype(float), [np.inf] * 200, [-np.inf] * 200])
    df = spark.createDataFrame([(float(v), None) for v in values], "x double, empty double").repartition(5)
    for buckets in (7, 10, 100):
        qs = [i / buckets for i in range(1, buckets)]
        expected = df.agg(F.percentile("x", qs)).first()[0]
        assert exact_percentiles(values, qs) == expected  # exact equality: the same arithmetic as Spark's
        assert _quantiles(df.toArrow(), ("x", "empty"), buckets) == {"x": sorted(set(expected)), "empty": []}


# categorical codes: a value v in [0, 4) is v + 2, another 1, null 0; bucketized at 0.5: below 1, above 2, null 0
SPEC = make_spec({name: [0.5] for name in BUCKETIZED}, {name: 4 for name in ITEM_CATEGORICAL},
                 {"ie": 3, "ipv": 3, "candidates": 3}, {})
CATALOG = pa.table({"item_id": [30, 10, 20, 10, None], **{name: [3, 0, 1, 2, 1] for name in ITEM_CATEGORICAL},
                    "ctr_score": [0.9, 0.1, None, 0.7, 0.9], "cvr_score": [0.0, 0.0, 0.0, 0.0, 0.0]})


def test_string_values_are_encoded_as_the_feature_spec_encodes_each():
    # the delete reason (one-hot): a listed value its position + 1, another the last code, a null the padding 0
    reason = SPEC["features"]["e6_delete_reason"]
    listed = reason["values"]
    values = pa.array([listed[1], None, "never-listed", listed[0], listed[1]])
    assert _encoded(reason, values).tolist() == [2, 0, reason["vocab_size"] - 1, 1, 2]
    assert _encoded(reason, pa.chunked_array([values[3:], values[:1]])).tolist() == [1, 2, 2]
    assert _encoded(reason, pa.array([None, None], pa.string())).tolist() == [0, 0]
    assert _encoded(reason, pa.array([], pa.string())).tolist() == []
    assert _encoded(reason, values).tolist() == encode(reason, values.to_pylist()).tolist()  # each slot looked up
    # a number written as a string, for a numeric kind: parsed as encode parses it (category: v in [0, 4) -> v + 2)
    category = SPEC["features"]["category"]
    assert _encoded(category, pa.array(["3", None, "3", "7"])).tolist() == [5, 0, 5, 1]


def test_a_catalogs_item_codes_are_one_row_per_id_and_a_padding_row():
    codes = item_codes(CATALOG, SPEC)
    assert codes["item_id"].tolist() == [10, 20, 30]
    # item 10 is listed twice: its first row (category 0, ctr 0.1) counts; a row without an id names no item
    assert codes["category"].tolist() == [2, 3, 5, 0]
    assert codes["ctr_score"].tolist() == [1, 0, 2, 0]
    empty = item_codes(CATALOG.slice(0, 0), SPEC)
    assert empty["item_id"].tolist() == [] and empty["brand"].tolist() == [0]


def test_requests_take_their_item_features_from_the_catalog_by_id():
    request = {key: "x" for key in ENCODED_KEYS} | {"trigger_ts": 5}
    batch = pa.RecordBatch.from_pylist([request | {
        "candidates": [{"item_id": 30, "cloud_score": 0.2, "label": 1}, {"item_id": 99, "cloud_score": 0.8,
                                                                          "label": None},
                       {"item_id": 10, "cloud_score": None, "label": 0}],
        "ie": [{"item_id": 20, "ts": 1}, {"item_id": None, "ts": 2}], "ipv": [{"item_id": 10, "end_ts": 3}]}])
    out = encode_batch(batch, SPEC, encoded_schema(batch.schema), item_codes(CATALOG, SPEC)).to_pylist()[0]
    assert (out["cand_item_id"], out["cand_category"], out["cand_ctr_score"]) == ([30, 99, 10], [5, 0, 2], [2, 0, 1])
    assert out["cand_cloud_score"] == [1, 2, 0]  # not an item feature: the request's own value
    assert (out["label"], out["mask"]) == ([1, 0, 0], [1, 0, 1])
    # an id the catalog lacks and a null id: the padding code, as a null feature value
    assert (out["ie_item_id"], out["ie_brand"], out["ie_ctr_score"]) == ([20, None], [3, 0], [0, 0])
    assert (out["ipv_item_id"], out["ipv_age_level"]) == ([10], [2])
    assert out["ie_ts"] == [1, 2] and out["ipv_end_ts"] == [3]


def test_each_days_requests_take_their_own_days_catalog():
    """Train days are encoded again with the test day's spec, their items with the features of their own day."""
    a_day_later = CATALOG.set_column(CATALOG.schema.get_field_index("category"), "category",
                                     pa.array([0, 3, 3, 3, 3]))
    codes = {"2026-11-01": item_codes(CATALOG, SPEC), "2026-11-02": item_codes(a_day_later, SPEC)}

    def request(ds, item):
        return {key: ds for key in ENCODED_KEYS} | {"trigger_ts": 5, "ie": [{"item_id": 20}], "ipv": [{"item_id": 20}],
                                                     "candidates": [{"item_id": item, "cloud_score": 0.2}]}
    batch = pa.RecordBatch.from_pylist([request("2026-11-02", 10), request("2026-11-01", 10),
                                        request("2026-11-02", 30)])
    schema = encoded_schema(batch.schema)
    out = encode_days(batch, SPEC, schema, codes).to_pylist()
    assert sorted((r["ds"], r["cand_item_id"][0], r["cand_category"][0]) for r in out) == [
        ("2026-11-01", 10, 2), ("2026-11-02", 10, 5), ("2026-11-02", 30, 2)]
    assert encode_days(batch.slice(0, 0), SPEC, schema, codes).num_rows == 0


def test_encoded_figures_sum_the_encoded_lists_batch_by_batch():
    ints = pa.list_(pa.int64())

    def batch(label, mask, ie, ipv):
        return pa.RecordBatch.from_pydict({"label": pa.array(label, ints), "mask": pa.array(mask, ints),
                                           "ie_ts": pa.array(ie, ints), "ipv_end_ts": pa.array(ipv, ints)})

    batches = [batch([[1, 0, 0], [0, 0]], [[1, 1, 0], [0, 0]], [[5, 6], []], [[7], []]),
               batch([[1], [], [1, 1]], [[1], [], [1, 1]], [[9, 9, 9], [1], [2, 3, 4]], [[], [], [8]]).slice(1, 2)]
    assert encoded_figures(batches) == {"mean_candidates": 1.75, "labelled": 4, "clicks": 3,
                                        "requests_without_labels": 2, "label_rate": 0.75,
                                        "mean_ie_length": 1.5, "mean_ipv_length": 0.5}
    assert encoded_figures([]) == {"mean_candidates": None, "labelled": 0, "clicks": 0, "requests_without_labels": 0,
                                   "label_rate": None, "mean_ie_length": None, "mean_ipv_length": None}


def test_the_fit_samples_triggers_by_their_id_whatever_the_pages(spark):
    pages = spark.createDataFrame(
        [(f"r{p}", [(f"r{p}-{t}",) for t in range(p % 4)]) for p in range(400)],
        "request_id string, triggers array<struct<rerank_id: string>>")
    ids = sorted(f"r{p}-{t}" for p in range(400) for t in range(p % 4))
    every = sample_triggers(pages, 1_000)
    assert sorted(t.rerank_id for r in every.collect() for t in r.triggers) == ids  # fewer than asked: all
    some = sample_triggers(pages.repartition(3), 100).collect()
    chosen = sorted(t.rerank_id for r in some for t in r.triggers)
    assert 60 < len(chosen) < 140 and set(chosen) < set(ids) and all(r.triggers for r in some)
    again = sample_triggers(pages.coalesce(1), 100).collect()
    assert sorted(t.rerank_id for r in again for t in r.triggers) == chosen
    one_each = spark.createDataFrame([(rid,) for rid in ids], "rerank_id string")
    by_row = one_each.where(F.pmod(F.xxhash64("rerank_id"), F.lit(10_000)) < 100 * 10_000 // len(ids) + 1)
    assert sorted(r.rerank_id for r in by_row.collect()) == chosen  # the hash of the id, as the rows were sampled
