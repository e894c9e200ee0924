"""bucketize: fit the feature spec on the training window, then encode requests into model inputs.

Boundaries are exact quantiles (Spark's `percentile`, computed on the driver from the sample), so they do not depend
on how the data is partitioned; the requests they are fit on are a deterministic hash sample. Encoding uses
edgerec.features.encode, the function the device runs. The requests name items by id: each item feature is encoded
once per item of the request day's catalog, and a request's lists take their codes from there by item id.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark import Broadcast
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from edgerec.features import (
    ENCODED_KEYS,
    GROUPS,
    IE_BUCKETIZED,
    IPV_BUCKETIZED,
    ITEM_CATEGORICAL,
    ITEM_FEATURES,
    ITEM_SCORES,
    PREFIXES,
    encode,
    make_spec,
)

_HASH_BUCKETS = 10_000


def hash_sample(df: DataFrame, key: str, max_rows: int) -> DataFrame:
    """At most about max_rows rows, chosen by a hash of the key: the same rows however df is partitioned."""
    total = df.count()
    keep = min(_HASH_BUCKETS, -(-max_rows * _HASH_BUCKETS // max(total, 1)))
    return df.where(F.pmod(F.xxhash64(key), F.lit(_HASH_BUCKETS)) < keep)


def exact_percentiles(values: np.ndarray, percentages: list[float]) -> list[float]:
    """Spark's `percentile` of the values, bit for bit: exact, linear between the two closest ranks, in Spark's
    arithmetic (low + (position - lower) * (high - low); another order of the same sum differs in the last bit)."""
    ordered = np.sort(values)
    out = []
    for percentage in percentages:
        position = (len(ordered) - 1) * percentage
        lower, higher = math.floor(position), math.ceil(position)
        low, high = float(ordered[lower]), float(ordered[higher])
        out.append(low if lower == higher or low == high else low + (position - lower) * (high - low))
    return out


def _quantiles(df: DataFrame, columns: tuple[str, ...], num_buckets: int) -> dict[str, list[float]]:
    """Exact quantiles of each column on the driver: the fit's sample is small, and one collect of it costs a
    fraction of Spark's `percentile` aggregate (which sorts each column's values in one task)."""
    qs = [i / num_buckets for i in range(1, num_buckets)]
    table = df.select(*[F.col(c).cast("double").alias(c) for c in columns]).toArrow()
    out = {}
    for c in columns:
        values = pc.drop_null(table.column(c)).to_numpy()
        out[c] = sorted(set(exact_percentiles(values, qs))) if len(values) else []
    return out


def fit_spec(requests: DataFrame, items: DataFrame, *, num_buckets: int, max_requests: int,
             lengths: dict[str, int], fit: dict) -> dict:
    sample = hash_sample(requests, "rerank_id", max_requests).cache()
    boundaries = {
        **_quantiles(items, ITEM_SCORES, num_buckets),
        **_quantiles(sample.select(F.explode("candidates").alias("c")).select("c.cloud_score"),
                     ("cloud_score",), num_buckets),
        **_quantiles(sample.select(F.explode("ie").alias("e")).select("e.*"), IE_BUCKETIZED, num_buckets),
        **_quantiles(sample.select(F.explode("ipv").alias("e")).select("e.*"), IPV_BUCKETIZED, num_buckets),
    }
    top = items.agg(*[F.max(c).alias(c) for c in ITEM_CATEGORICAL]).first()
    vocab = {c: int(top[c]) + 1 for c in ITEM_CATEGORICAL}
    spec = make_spec(boundaries, vocab, lengths, fit | {"sampled_requests": sample.count()})
    sample.unpersist()
    return spec


KEYS = ENCODED_KEYS
REQUEST_COLUMNS = (*KEYS, "candidates", "ie", "ipv")  # what encoding reads of a request
SOURCES = {group: (PREFIXES[group], column) for group, column in
           (("candidate", "candidates"), ("ie", "ie"), ("ipv", "ipv"))}


def encoded_schema(requests_schema: pa.Schema) -> pa.Schema:
    ints = pa.list_(pa.int64())
    fields = [requests_schema.field(k) for k in KEYS]
    for group, (prefix, _) in SOURCES.items():
        fields += [pa.field(f"{prefix}_item_id", ints)] + [pa.field(f"{prefix}_{n}", ints) for n in GROUPS[group]]
    fields += [pa.field(n, ints) for n in ("label", "mask", "shown_position", "cart", "buy", "ie_ts", "ipv_end_ts")]
    return pa.schema(fields)


def _values(column: pa.ListArray, name: str) -> tuple[pa.Array, pa.Array]:
    """Offsets (from 0) and the flat values of one struct field of a list<struct> column; nulls where the struct has
    no such field (requests written before it joined them)."""
    offsets = pc.subtract(column.offsets, column.offsets[0])
    flat = column.flatten()
    if flat.type.get_field_index(name) < 0:
        return offsets, pa.nulls(len(flat), pa.int64())
    return offsets, flat.field(name)


def _as_numbers(values: pa.Array):
    return values.to_pylist() if pa.types.is_string(values.type) else \
        pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)  # nulls become NaN: the padding index


def item_codes(catalog: pa.Table, spec: dict) -> dict[str, np.ndarray]:
    """Each item feature's codes for one day's catalog: `item_id` sorted, and per feature one code per id with a
    last 0 (the padding index, as for a null value) for ids the catalog lacks. An id listed twice keeps its first
    row."""
    catalog = catalog.filter(pc.is_valid(catalog.column("item_id")))  # a null id names no item
    ids, first = np.unique(catalog.column("item_id").to_numpy(), return_index=True)
    rows = catalog.take(pa.array(first, type=pa.int64()))
    return {"item_id": ids, **{name: np.append(encode(spec["features"][name], _as_numbers(rows.column(name))), 0)
                               for name in ITEM_FEATURES}}


def _catalog_rows(codes: dict[str, np.ndarray], item_ids: pa.Array) -> np.ndarray:
    """The row of each item id in item_codes' arrays; the padding row for a null id or one the catalog lacks."""
    ids = codes["item_id"]
    wanted = pc.fill_null(item_ids, 0).to_numpy(zero_copy_only=False).astype(ids.dtype, copy=False)
    at = np.minimum(np.searchsorted(ids, wanted), max(len(ids) - 1, 0))
    known = pc.is_valid(item_ids).to_numpy(zero_copy_only=False)
    if len(ids):
        known = known & (ids[at] == wanted)
    return np.where(known, at, len(ids))


def encode_batch(batch: pa.RecordBatch, spec: dict, schema: pa.Schema, codes: dict[str, np.ndarray]) -> pa.RecordBatch:
    """Model inputs of a batch of requests, each feature encoded by edgerec.features.encode; item features by their
    item's codes in `codes` (item_codes of the requests' day)."""
    features, out = spec["features"], {k: batch.column(k) for k in KEYS}

    def lists(column, name, fn=lambda v: v):
        offsets, values = _values(column, name)
        return pa.ListArray.from_arrays(offsets, pa.array(fn(values), type=pa.int64()))

    for group, (prefix, source) in SOURCES.items():
        column = batch.column(source)
        offsets, item_ids = _values(column, "item_id")
        out[f"{prefix}_item_id"] = pa.ListArray.from_arrays(offsets, pa.array(item_ids, type=pa.int64()))
        rows = _catalog_rows(codes, item_ids)
        for name in GROUPS[group]:
            out[f"{prefix}_{name}"] = (
                pa.ListArray.from_arrays(offsets, pa.array(codes[name][rows], type=pa.int64())) if name in ITEM_FEATURES
                else lists(column, name, lambda v, f=features[name]: encode(f, _as_numbers(v))))
    candidates = batch.column("candidates")
    out["label"] = lists(candidates, "label", lambda v: pc.fill_null(pc.cast(v, pa.int64()), 0))
    out["mask"] = lists(candidates, "label", lambda v: pc.cast(pc.is_valid(v), pa.int64()))
    # where the candidate was shown, for position-bias corrections in training (0 where unlabelled: read with mask)
    out["shown_position"] = lists(candidates, "shown_position", lambda v: pc.fill_null(pc.cast(v, pa.int64()), 0))
    # what a click led to, for the cart and buy heads (0 where not clicked: read with label)
    for action in ("cart", "buy"):
        out[action] = lists(candidates, action, lambda v: pc.fill_null(pc.cast(v, pa.int64()), 0))
    out["ie_ts"] = lists(batch.column("ie"), "ts")
    out["ipv_end_ts"] = lists(batch.column("ipv"), "end_ts")
    return pa.RecordBatch.from_pydict(out, schema=schema)


def encode_days(batch: pa.RecordBatch, spec: dict, schema: pa.Schema,
                codes_by_day: dict[str, dict[str, np.ndarray]]) -> pa.RecordBatch:
    """encode_batch of requests of one or more days (`ds`), each day's items by that day's catalog codes."""
    if not len(batch):
        return pa.RecordBatch.from_pylist([], schema=schema)
    days = batch.column("ds")
    named = pc.unique(days).to_pylist()
    if len(named) == 1:
        return encode_batch(batch, spec, schema, codes_by_day[named[0]])
    parts = [encode_batch(batch.filter(pc.equal(days, day)), spec, schema, codes_by_day[day]) for day in named]
    return pa.Table.from_batches(parts, schema=schema).combine_chunks().to_batches()[0]


def encoder(requests_schema: pa.Schema, spec: dict, codes_by_day: Broadcast,
            day_column: str | None) -> tuple[Callable[[pa.RecordBatch], pa.RecordBatch], pa.Schema]:
    """The function that encodes a batch of requests (REQUEST_COLUMNS) into model inputs, and its output schema:
    parallel int arrays per feature (cand_*, ie_*, ipv_*), labels, mask, the labelled candidates' display positions
    and the clicked ones' cart and buy labels. The request's day `ds` is dropped (a partition's files do not repeat
    their directory's ds), or kept under `day_column` (`request_ds` in train_features).

    The encoding is edgerec.features.encode itself, applied to Arrow batches: the device's function, and
    vectorized, where Spark's array functions would run interpreted element by element. `codes_by_day`: item_codes
    of each requests' day, as a broadcast (once per executor, not in each task's closure); the caller releases it
    once the result is written.
    """
    schema = encoded_schema(requests_schema)
    at = schema.get_field_index("ds")
    written = schema.remove(at) if day_column is None else schema.set(at, schema.field(at).with_name(day_column))

    def encode_requests(batch: pa.RecordBatch) -> pa.RecordBatch:
        out = encode_days(batch, spec, schema, codes_by_day.value)
        return pa.RecordBatch.from_arrays(
            [out.column(name if name != day_column else "ds") for name in written.names], schema=written)

    return encode_requests, written
