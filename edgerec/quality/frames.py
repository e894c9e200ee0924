"""The tables the quality suites check, flattened with duckdb from the day's outputs.

List columns do not suit row expectations, so each request becomes one row of figures (lengths, label
counts, the latest sequence time); each feature becomes one row of its smallest and largest code; a day
becomes one row of its metrics. Pure reads: nothing here writes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import duckdb
import pandas as pd

from edgerec.features import ENCODED_FEATURE_COLUMNS, ENCODED_KEYS, GROUPS, PREFIXES

LIST_COLUMNS = (*(f"{p}_item_id" for p in PREFIXES.values()), *ENCODED_FEATURE_COLUMNS,
                "label", "mask", "shown_position", "cart", "buy", "ie_ts", "ipv_end_ts")
FEATURE_COLUMNS = (*ENCODED_KEYS, *LIST_COLUMNS)  # the features dataset, as spark_jobs.bucketize writes it

# One row per request: the figures the row-level checks need.
REQUEST_FIGURES = """
    rerank_id, user_id, trigger, trigger_ts, cast(ds as varchar) as ds,
    len(cand_item_id) as n_candidates,
    cast(coalesce(list_sum(mask), 0) as bigint) as n_labelled,
    cast(coalesce(list_sum(label), 0) as bigint) as n_clicks,
    len(ie_item_id) as ie_length,
    len(ipv_item_id) as ipv_length,
    coalesce(list_max(ie_ts), -1) as max_ie_ts,
    coalesce(list_max(ipv_end_ts), -1) as max_ipv_end_ts,
    len(label) = len(cand_item_id) and len(mask) = len(cand_item_id) as candidate_lists_parallel
"""


def parquet_relation(dataset: Path, ds: str) -> str:
    """SQL reading one ds partition of a Spark dataset, with ds as a column."""
    return f"read_parquet('{dataset}/ds={ds}/*.parquet', hive_partitioning = true)"


def columns_of(con: duckdb.DuckDBPyConnection, relation: str) -> list[str]:
    return [row[0] for row in con.execute(f"describe select * from {relation}").fetchall()]


def schema_frame(columns: Sequence[str]) -> pd.DataFrame:
    """An empty table with these columns: what a column-set expectation checks."""
    return pd.DataFrame(columns=list(columns))


def request_frame(con: duckdb.DuckDBPyConnection, relation: str) -> pd.DataFrame:
    return con.execute(f"select {REQUEST_FIGURES} from {relation}").df()


def request_user_frame(con: duckdb.DuckDBPyConnection, relation: str) -> pd.DataFrame:
    """Each (request_id, user_id) pair of the day's events once: a request id in two rows is shared by two users,
    which the contract forbids (the requests job keys every request by its user)."""
    return con.execute(f"select distinct request_id, user_id from {relation} "
                       "where nullif(request_id, '') is not null").df()  # '': an event of no page request


def code_frame(con: duckdb.DuckDBPyConnection, relation: str, spec: Mapping) -> pd.DataFrame:
    """One row per encoded feature column: its smallest and largest code and the vocabulary it must fit."""
    columns = [(f"{PREFIXES[g]}_{name}", name) for g, names in GROUPS.items() for name in names]
    aggregates = ", ".join(f"min(list_min({c})), max(list_max({c}))" for c, _ in columns)
    row = con.execute(f"select {aggregates} from {relation}").fetchone()
    return pd.DataFrame([
        {"column": c, "feature": f, "min_code": row[2 * i], "max_code": row[2 * i + 1],
         "vocab_size": spec["features"][f]["vocab_size"]}
        for i, (c, f) in enumerate(columns)
    ])


def day_metrics(requests: pd.DataFrame) -> dict[str, float]:
    labelled = int(requests["n_labelled"].sum())
    candidates = int(requests["n_candidates"].sum())
    return {
        "requests": len(requests),
        "labelled_share": labelled / candidates if candidates else 0.0,
        "label_rate": int(requests["n_clicks"].sum()) / labelled if labelled else 0.0,
        "mean_ie_length": float(requests["ie_length"].mean()) if len(requests) else 0.0,
    }


def code_histograms(con: duckdb.DuckDBPyConnection, relation: str, spec: Mapping,
                    max_codes: int) -> dict[str, dict[str, int]]:
    """Counts of each code of every feature with at most max_codes codes (bucketized and small vocabularies)."""
    columns = [f"{PREFIXES[g]}_{name}" for g, names in GROUPS.items() for name in names
               if spec["features"][name]["vocab_size"] <= max_codes]
    if not columns:
        return {}
    selects = " union all ".join(
        f"select '{c}' as feature, code, count(*) as n from (select unnest({c}) as code from {relation}) "
        f"group by code" for c in columns)
    histograms: dict[str, dict[str, int]] = {c: {} for c in columns}
    for feature, code, n in con.execute(selects).fetchall():
        histograms[feature][str(code)] = int(n)
    return histograms


def psi(observed: Mapping[str, float], expected: Mapping[str, float], floor: float = 1e-4) -> float:
    """Population stability index between two histograms (counts or shares); empty bins count as `floor`."""
    total_o, total_e = sum(observed.values()), sum(expected.values())
    if total_o <= 0 or total_e <= 0:
        return 0.0
    value = 0.0
    for code in set(observed) | set(expected):
        o = max(observed.get(code, 0) / total_o, floor)
        e = max(expected.get(code, 0) / total_e, floor)
        value += (o - e) * math.log(o / e)
    return value


def mean_histogram(histograms: Sequence[Mapping[str, int]]) -> dict[str, float]:
    """The average of several histograms, each normalised to shares first (so every day weighs the same)."""
    mean: dict[str, float] = {}
    for histogram in histograms:
        total = sum(histogram.values())
        for code, n in histogram.items():
            mean[code] = mean.get(code, 0.0) + n / total / len(histograms)
    return mean


def relative_change(value: float, baseline: float) -> float:
    """|value / baseline - 1|; infinite when the baseline is 0 and the value is not."""
    if baseline == 0:
        return 0.0 if value == 0 else math.inf
    return abs(value / baseline - 1)
