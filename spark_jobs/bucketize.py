"""bucketize: fit the feature spec on the training window, then encode requests into model inputs.

Boundaries are exact quantiles (`percentile`), so they do not depend on how the data is partitioned; the
requests they are fit on are a deterministic hash sample. encode_column mirrors edgerec.features.encode.
"""

from __future__ import annotations

from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from edgerec.features import GROUPS, IE_BUCKETIZED, IPV_BUCKETIZED, ITEM_CATEGORICAL, ITEM_SCORES, make_spec

_HASH_BUCKETS = 10_000


def encode_column(feature: dict, col: Column) -> Column:
    """The Spark twin of edgerec.features.encode for one feature."""
    kind = feature["kind"]
    if kind == "onehot":
        out = reduce(lambda acc, iv: acc.when(col == iv[1], iv[0] + 1), enumerate(feature["values"]),
                     F.when(col.isNull(), 0))
        return out.otherwise(feature["vocab_size"] - 1)
    if kind == "binary":
        return F.when(col.isNull(), 0).when(col, 2).otherwise(1)
    x = col.cast("double")
    if kind == "categorical":
        n_values = feature["vocab_size"] - 2
        return F.when(x.isNull() | F.isnan(x), 0).when((x >= 0) & (x < n_values), x + 2).otherwise(1).cast("long")
    if kind == "bucketized":
        above = [F.when(x >= F.lit(b), 1).otherwise(0) for b in feature["boundaries"]]
        return F.when(x.isNull() | F.isnan(x), 0).otherwise(1 + reduce(lambda a, b: a + b, above, F.lit(0)))
    raise ValueError(f"unknown feature kind {kind!r}")


def hash_sample(df: DataFrame, key: str, max_rows: int) -> DataFrame:
    """At most about max_rows rows, chosen by a hash of the key: the same rows however df is partitioned."""
    total = df.count()
    keep = min(_HASH_BUCKETS, -(-max_rows * _HASH_BUCKETS // max(total, 1)))
    return df.where(F.pmod(F.xxhash64(key), F.lit(_HASH_BUCKETS)) < keep)


def _quantiles(df: DataFrame, columns: tuple[str, ...], num_buckets: int) -> dict[str, list[float]]:
    qs = [i / num_buckets for i in range(1, num_buckets)]
    row = df.agg(*[F.percentile(F.col(c).cast("double"), qs).alias(c) for c in columns]).first()
    return {c: sorted({float(v) for v in (row[c] or []) if v is not None}) for c in columns}


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


def _encoder(feature: dict, name: str):
    return lambda element: encode_column(feature, element[name])


def apply_spec(requests: DataFrame, spec: dict) -> DataFrame:
    """Model inputs per request: parallel int arrays per feature (cand_*, ie_*, ipv_*), labels and mask."""
    features = spec["features"]
    prefixes = {"candidate": ("cand", "candidates"), "ie": ("ie", "ie"), "ipv": ("ipv", "ipv")}
    columns = []
    for group, (prefix, source) in prefixes.items():
        columns.append(F.transform(source, lambda e: e["item_id"]).alias(f"{prefix}_item_id"))
        for name in GROUPS[group]:
            columns.append(F.transform(source, _encoder(features[name], name)).alias(f"{prefix}_{name}"))
    return requests.select(
        "rerank_id", "user_id", "session_key", "request_id", "trigger", "trigger_ts", "origin", *columns,
        F.transform("candidates", lambda c: F.coalesce(c["label"], F.lit(0))).alias("label"),
        F.transform("candidates", lambda c: F.when(c["label"].isNull(), 0).otherwise(1)).alias("mask"),
        F.transform("ie", lambda e: e["ts"]).alias("ie_ts"),
        F.transform("ipv", lambda e: e["end_ts"]).alias("ipv_end_ts"),
        "ds",
    )


