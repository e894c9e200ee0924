"""bucketize: fit the feature spec on the training window, then encode requests into model inputs.

Boundaries are exact quantiles (Spark's `percentile`, computed on the driver from the sample), so they do not depend
on how the data is partitioned; the requests they are fit on are a deterministic hash sample. Encoding uses
edgerec.features.encode, the function the device runs. The requests name items by id: each item feature is encoded
once per item of the request day's catalog, and a request's lists take their codes from there by item id.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator

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
from spark_jobs.requests import point_in_time

_HASH_BUCKETS = 10_000
PAGES_PER_CALL = 1_000  # about 8k triggers and 0.8M candidate slots: the workers' memory per call stays bounded


def sample_triggers(pages: DataFrame, max_triggers: int) -> DataFrame:
    """The pages with at most about max_triggers of their triggers, chosen by a hash of the rerank id: the same
    triggers however the pages are partitioned; a page none of whose triggers is chosen is left out."""
    total = pages.agg(F.sum(F.size("triggers"))).first()[0] or 0
    keep = min(_HASH_BUCKETS, -(-max_triggers * _HASH_BUCKETS // max(total, 1)))
    chosen = F.filter("triggers", lambda t: F.pmod(F.xxhash64(t["rerank_id"]), F.lit(_HASH_BUCKETS)) < keep)
    return pages.withColumn("triggers", chosen).where(F.size("triggers") > 0)


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


def _quantiles(table: pa.Table, columns: tuple[str, ...], num_buckets: int) -> dict[str, list[float]]:
    """Exact quantiles of each column, on the driver: the fit's sample is small, and one collect of it costs a
    fraction of Spark's `percentile` aggregate (which sorts each column's values in one task)."""
    qs = [i / num_buckets for i in range(1, num_buckets)]
    out = {}
    for c in columns:
        values = pc.drop_null(pc.cast(table.column(c), pa.float64())).to_numpy()
        out[c] = sorted(set(exact_percentiles(values, qs))) if len(values) else []
    return out


def _elements(requests: pa.RecordBatch, column: str) -> pa.Table:
    """The elements of a list<struct> column of the requests, one row each."""
    return pa.Table.from_struct_array(pc.list_flatten(requests.column(column)))


def fit_spec(pages: DataFrame, items: DataFrame, *, num_buckets: int, max_requests: int,
             lengths: dict[str, int], fit: dict) -> dict:
    """The feature spec, fit on a hash sample of about max_requests triggers of the pages (each with its own
    candidates, as point_in_time gives them to the encoder) and on the catalog's items."""
    sample = point_in_time(one_batch(sample_triggers(pages, max_requests).toArrow()), lengths["candidates"])
    boundaries = {
        **_quantiles(items.select(*ITEM_SCORES).toArrow(), ITEM_SCORES, num_buckets),
        **_quantiles(_elements(sample, "candidates"), ("cloud_score",), num_buckets),
        **_quantiles(_elements(sample, "ie"), IE_BUCKETIZED, num_buckets),
        **_quantiles(_elements(sample, "ipv"), IPV_BUCKETIZED, num_buckets),
    }
    top = items.agg(*[F.max(c).alias(c) for c in ITEM_CATEGORICAL]).first()
    vocab = {c: int(top[c]) + 1 for c in ITEM_CATEGORICAL}
    return make_spec(boundaries, vocab, lengths, fit | {"sampled_requests": len(sample)})


FIGURE_COLUMNS = ("label", "mask", "ie_ts", "ipv_end_ts")  # of the encoded requests, what encoded_figures reads


def encoded_figures(batches: Iterable[pa.RecordBatch]) -> dict:
    """The encoded requests' figures, summed over their lists (FIGURE_COLUMNS): how many requests and candidates, how
    many labelled, clicked, the requests without any label, and the sequences' mean lengths."""
    requests = candidates = labelled = clicks = unlabelled = ie = ipv = 0
    for batch in batches:
        mask, label = batch.column("mask"), batch.column("label")
        per_request = pc.list_value_length(mask).to_numpy(zero_copy_only=False)
        masked = pc.list_flatten(mask).to_numpy(zero_copy_only=False)
        labelled_each = np.bincount(np.repeat(np.arange(len(per_request)), per_request), weights=masked,
                                    minlength=len(per_request))
        requests += len(per_request)
        candidates += int(per_request.sum())
        labelled += int(labelled_each.sum())
        clicks += int(pc.sum(pc.list_flatten(label)).as_py() or 0)
        unlabelled += int((labelled_each == 0).sum())
        ie += len(pc.list_flatten(batch.column("ie_ts")))
        ipv += len(pc.list_flatten(batch.column("ipv_end_ts")))

    def mean(total: int) -> float | None:
        return round(total / requests, 4) if requests else None

    return {"mean_candidates": mean(candidates), "labelled": labelled, "clicks": clicks,
            "requests_without_labels": unlabelled, "label_rate": round(clicks / labelled, 4) if labelled else None,
            "mean_ie_length": mean(ie), "mean_ipv_length": mean(ipv)}


def one_batch(table: pa.Table) -> pa.RecordBatch:
    """A table as one record batch (an empty one with its schema when it has no rows)."""
    batches = table.combine_chunks().to_batches()
    return batches[0] if len(batches) == 1 else pa.RecordBatch.from_pylist([], schema=table.schema)


KEYS = ENCODED_KEYS
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
    no such field."""
    offsets = pc.subtract(column.offsets, column.offsets[0])
    flat = column.flatten()
    if flat.type.get_field_index(name) < 0:
        return offsets, pa.nulls(len(flat), pa.int64())
    return offsets, flat.field(name)


def _encoded(feature: dict, values: pa.Array) -> np.ndarray:
    """edgerec.features.encode of a column's values. A string column's distinct values are encoded once each (a
    day's delete reasons are a handful of strings in millions of slots: looking each slot up in Python cost a quarter
    of the encoding); numbers as floats, nulls as NaN (which encode gives the numeric kinds' padding index)."""
    if isinstance(values, pa.ChunkedArray):  # a table's column
        values = values.combine_chunks()
    if not pa.types.is_string(values.type):
        return encode(feature, pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False))
    distinct = values.dictionary_encode()
    codes = encode(feature, [*distinct.dictionary.to_pylist(), None])  # the last: a null's code
    at = pc.fill_null(distinct.indices, len(distinct.dictionary)).to_numpy(zero_copy_only=False)
    return codes[at]


def item_codes(catalog: pa.Table, spec: dict) -> dict[str, np.ndarray]:
    """Each item feature's codes for one day's catalog: `item_id` sorted, and per feature one code per id with a
    last 0 (the padding index, as for a null value) for ids the catalog lacks. An id listed twice keeps its first
    row."""
    catalog = catalog.filter(pc.is_valid(catalog.column("item_id")))  # a null id names no item
    ids, first = np.unique(catalog.column("item_id").to_numpy(), return_index=True)
    rows = catalog.take(pa.array(first, type=pa.int64()))
    return {"item_id": ids, **{name: np.append(_encoded(spec["features"][name], rows.column(name)), 0)
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
                else lists(column, name, lambda v, f=features[name]: _encoded(f, v)))
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


def encoder(pages_schema: pa.Schema, spec: dict, codes_by_day: Broadcast, day_column: str | None,
            pages_per_call: int = PAGES_PER_CALL) -> tuple[Callable[[pa.RecordBatch], Iterator[pa.RecordBatch]],
                                                           pa.Schema]:
    """The function that encodes a batch of pages (the requests dataset's PAGE_COLUMNS) into model inputs, one row
    per trigger (spark_jobs.requests.point_in_time), and its output schema: parallel int arrays per feature (cand_*,
    ie_*, ipv_*), labels, mask, the labelled candidates' display positions and the clicked ones' cart and buy labels.
    The request's day `ds` is dropped (a partition's files do not repeat their directory's ds), or kept under
    `day_column` (`request_ds` in train_features).

    The encoding is edgerec.features.encode itself, applied to Arrow batches: the device's function, and
    vectorized, where Spark's array functions would run interpreted element by element. `codes_by_day`: item_codes
    of each requests' day, as a broadcast (once per executor, not in each task's closure); the caller releases it
    once the result is written.
    """
    max_candidates = spec["sequence_lengths"]["candidates"]
    schema = encoded_schema(point_in_time(pa.RecordBatch.from_pylist([], schema=pages_schema), max_candidates).schema)
    at = schema.get_field_index("ds")
    written = schema.remove(at) if day_column is None else schema.set(at, schema.field(at).with_name(day_column))

    def encode_requests(pages: pa.RecordBatch) -> Iterator[pa.RecordBatch]:
        # a few pages at a time: a page's triggers times its candidates are expanded before point_in_time filters
        for start in range(0, len(pages), pages_per_call):
            out = encode_days(point_in_time(pages.slice(start, pages_per_call), max_candidates), spec, schema,
                              codes_by_day.value)
            yield pa.RecordBatch.from_arrays(
                [out.column(name if name != day_column else "ds") for name in written.names], schema=written)

    return encode_requests, written
