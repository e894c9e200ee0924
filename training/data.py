"""Training data: the dbt marts, streamed in list-wise batches padded to the feature spec.

A batch holds whole requests (all candidates of a request together, as the re-ranker scores them). Lists
are padded with 0, the padding index of every feature (edgerec.features), and cut at the spec's lengths:
candidates K, IE m, IPV n. Sequences keep the marts' order (most recent first) in a `Batch`; `to_inputs`
turns them oldest first, as the GRU encoders read them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import torch

from edgerec.errors import MissingInput
from edgerec.features import ENCODED_FEATURE_COLUMNS, GROUPS, ITEM_CATEGORICAL, PREFIXES
from training.models.base import HASH_MULTIPLIER, PRICE_INDEX, Inputs, ItemTables, price_units

SPLITS = {"train": "fct_train_requests", "test": "fct_test_requests"}


def pad(column: pa.ListArray | pa.ChunkedArray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A list column as a [rows, width] int64 array padded with 0 (longer lists are cut), and the lengths."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    offsets = column.offsets.to_numpy()
    offsets = offsets - offsets[0]
    lengths = np.minimum(np.diff(offsets), width)
    values = column.flatten().to_numpy(zero_copy_only=False)
    out = np.zeros((len(column), width), dtype=np.int64)
    rows = np.repeat(np.arange(len(column)), lengths)
    cols = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out[rows, cols] = values[np.repeat(offsets[:-1], lengths) + cols]
    return out, lengths


@dataclass(frozen=True)
class Batch:
    """Model inputs of B requests. Features are [B, L, F] codes in the order of the spec's groups."""

    rerank_id: list[str]
    candidate_item: np.ndarray  # [B, K] item ids (0: padding)
    candidate: np.ndarray  # [B, K, F_candidate]
    candidates: np.ndarray  # [B] real candidates per request
    label: np.ndarray  # [B, K] 1 clicked, 0 not
    mask: np.ndarray  # [B, K] 1 where labelled (the only places the loss and metrics look)
    shown_position: np.ndarray  # [B, K] display position where labelled (training-only: position-bias corrections)
    cart: np.ndarray  # [B, K] 1 where a click led to a cart, 0 otherwise (the cart head's label, given a click)
    buy: np.ndarray  # [B, K] 1 where a click led to a purchase, 0 otherwise
    ie_item: np.ndarray  # [B, m]
    ie: np.ndarray  # [B, m, F_ie]
    ie_length: np.ndarray  # [B]
    ipv_item: np.ndarray  # [B, n]
    ipv: np.ndarray  # [B, n, F_ipv]
    ipv_length: np.ndarray  # [B]

    def __len__(self) -> int:
        return len(self.rerank_id)

    def sold(self) -> np.ndarray:
        """[B, K] what each candidate sold, in price units (`price_units`) where bought, else 0: GMV@k's values."""
        return self.buy * price_units(self.candidate[..., PRICE_INDEX])

    def per_request(self, values: np.ndarray) -> list[np.ndarray]:
        """Rows of a [B, K] array cut to each request's real candidates."""
        return [values[i, :n] for i, n in enumerate(self.candidates.tolist())]

    @property
    def samples(self) -> int:
        """Real (non-padding) candidates: the unit of training throughput."""
        return int(self.candidates.sum())

    def take(self, rows: np.ndarray) -> Batch:
        """The requests at `rows`, in that order."""
        return Batch([self.rerank_id[i] for i in rows.tolist()],
                     *(getattr(self, f.name)[rows] for f in fields(self) if f.name != "rerank_id"))

    def trimmed(self) -> Batch:
        """The same requests with each list cut to the longest real one among them (at least one step). The padding
        after the real steps changes no real output (every GRU runs forward; the attention, the scores and the loss
        look at real steps only), so a batch of 20-item lists need not run 100 steps of the list GRU."""
        k, m, n = (max(int(lengths.max(initial=0)), 1) for lengths in (self.candidates, self.ie_length,
                                                                     self.ipv_length))
        return Batch(self.rerank_id, self.candidate_item[:, :k], self.candidate[:, :k], self.candidates,
                     self.label[:, :k], self.mask[:, :k], self.shown_position[:, :k], self.cart[:, :k],
                     self.buy[:, :k], self.ie_item[:, :m],
                     self.ie[:, :m], self.ie_length, self.ipv_item[:, :n], self.ipv[:, :n], self.ipv_length)

    def batches(self, size: int, seed: int | None = None) -> Iterator[Batch]:
        """Batches of `size` requests, each trimmed (`trimmed`): in this order, or shuffled by a permutation drawn
        from `seed` (the same seed gives the same batches)."""
        order = np.arange(len(self)) if seed is None else np.random.default_rng(seed).permutation(len(self))
        for lo in range(0, len(self), size):
            yield self.take(order[lo:lo + size]).trimmed()


def to_batch(table: pa.Table | pa.RecordBatch, spec: dict) -> Batch:
    lengths = spec["sequence_lengths"]
    widths = {"candidate": lengths["candidates"], "ie": lengths["ie"], "ipv": lengths["ipv"]}
    groups = {}
    for group, prefix in PREFIXES.items():
        items, count = pad(table.column(f"{prefix}_item_id"), widths[group])
        features = np.stack([pad(table.column(f"{prefix}_{name}"), widths[group])[0] for name in GROUPS[group]],
                            axis=-1)
        groups[group] = (items, features, count)
    label, _ = pad(table.column("label"), widths["candidate"])
    mask, _ = pad(table.column("mask"), widths["candidate"])
    shown, cart, buy = (pad(table.column(name), widths["candidate"])[0] for name in ("shown_position", "cart", "buy"))
    return Batch(table.column("rerank_id").to_pylist(), *groups["candidate"], label, mask, shown, cart, buy,
                 *groups["ie"], *groups["ipv"])


def chronological(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Rows of [B, L(, F)] stored most recent first and padded after -> oldest first, still padded after."""
    steps = np.arange(values.shape[1])
    index = np.where(steps < lengths[:, None], lengths[:, None] - 1 - steps, steps)
    return np.take_along_axis(values, index if values.ndim == 2 else index[..., None], axis=1)


def to_inputs(batch: Batch) -> Inputs:
    """The model inputs of a batch as tensors, behaviour sequences oldest first."""
    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64))

    return Inputs(
        tensor(batch.candidate_item), tensor(batch.candidate), tensor(batch.candidates),
        tensor(chronological(batch.ie_item, batch.ie_length)), tensor(chronological(batch.ie, batch.ie_length)),
        tensor(batch.ie_length),
        tensor(chronological(batch.ipv_item, batch.ipv_length)), tensor(chronological(batch.ipv, batch.ipv_length)),
        tensor(batch.ipv_length))


def row_counts(batches: Iterable[Batch], tables: ItemTables) -> dict[str, np.ndarray]:
    """How often each row of each item table is read by the batches' real candidates and events (for
    `ItemTables.restrict`)."""
    counts = {name: np.zeros(table.num_embeddings, dtype=np.int64) for name, table in tables.tables.items()}
    for batch in batches:
        for items, codes, lengths in ((batch.candidate_item, batch.candidate, batch.candidates),
                                      (batch.ie_item, batch.ie, batch.ie_length),
                                      (batch.ipv_item, batch.ipv, batch.ipv_length)):
            real = np.arange(items.shape[1])[None, :] < lengths[:, None]
            for i, name in enumerate(ITEM_CATEGORICAL):
                size = len(counts[name])
                counts[name] += np.bincount(np.minimum(codes[..., i][real], size - 1), minlength=size)
            if "item_id" in counts:
                ids = items[real]
                rows = np.where(ids > 0, (ids * HASH_MULTIPLIER) % tables.item_id_buckets + 1, 0)
                counts["item_id"] += np.bincount(rows, minlength=len(counts["item_id"]))
    return counts


def holdout(part: str | None, share: float) -> str:
    """SQL condition for one part of the train split: the requests of the `validation` share of the users (picked
    by a hash of user_id, so the same every run and every epoch) or the rest (`fit`); None: all of them.

    Whole users, not single requests: the requests of one session overlap (a re-rank trigger shows the rest of the
    page the one before it showed, with the same clicks), so a request held out alone would be half seen."""
    if part is None:
        return "true"
    if part not in ("fit", "validation"):
        raise ValueError(f"unknown part {part!r}; choose fit or validation")
    return f"(hash(user_id || ':validation') % 10000) {'<' if part == 'validation' else '>='} {round(share * 10_000)}"


EXPLORED = "trigger_origin = 'explored'"  # the exploration bucket's requests (shown in a shuffled order)


def count_requests(database: Path, split: str, part: str | None = None, share: float = 0.0,
                   where: str = "true") -> int:
    with duckdb.connect(str(database), read_only=True) as con:
        return int(con.execute(f"select count(*) from {_table(split)} where {holdout(part, share)} and ({where})"
                               ).fetchone()[0])


def date_range(database: Path, split: str) -> tuple[str, str]:
    """First and last ds of a split, as YYYY-MM-DD."""
    with duckdb.connect(str(database), read_only=True) as con:
        first, last = con.execute(f"select min(ds), max(ds) from {_table(split)}").fetchone()
    return str(first), str(last)


def _table(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    return SPLITS[split]


def read_batches(database: Path, split: str, spec: dict, batch_requests: int = 512,
                 limit: int | None = None, shuffle_seed: int | None = None, part: str | None = None,
                 share: float = 0.0, where: str = "true") -> Iterator[Batch]:
    """Stream one split of the marts in batches of whole requests: in a stable order (by rerank_id), or
    shuffled by a seeded hash of rerank_id (the same seed gives the same order); `part` and `share` as `holdout`;
    `where` a further SQL condition on the requests (EXPLORED, say)."""
    table = _table(split)
    columns = ["rerank_id", "label", "mask", "shown_position", "cart", "buy",
               *(f"{p}_item_id" for p in PREFIXES.values()),
               *ENCODED_FEATURE_COLUMNS]
    order = "rerank_id" if shuffle_seed is None else f"hash(rerank_id || ':{int(shuffle_seed)}'), rerank_id"
    query = (f"select {', '.join(columns)} from {table} where {holdout(part, share)} and ({where}) "
             f"order by {order}") + (
        f" limit {int(limit)}" if limit is not None else "")
    # no progress bar: a long read would draw one into the training log (or a benchmark's output)
    with duckdb.connect(str(database), read_only=True) as con:
        con.execute("set enable_progress_bar = false")
        reader = con.sql(query).to_arrow_reader(batch_requests)
        for record_batch in reader:
            if record_batch.num_rows:
                yield to_batch(record_batch, spec)


def load_split(database: Path, split: str, spec: dict, part: str | None = None, share: float = 0.0,
               where: str = "true") -> Batch:
    """One split (or part of the train split, as `holdout`; or its requests `where`) as one in-memory Batch in
    rerank_id order: read and padded once, then batched every epoch by `Batch.batches` (a day's marts are a few
    hundred MB at most)."""
    parts = list(read_batches(database, split, spec, 65_536, part=part, share=share, where=where))
    if not parts:
        raise MissingInput(f"no {split} requests{f' in the {part} part' if part else ''} in {database}")
    if len(parts) == 1:
        return parts[0]
    return Batch([r for b in parts for r in b.rerank_id],
                 *(np.concatenate([getattr(b, f.name) for b in parts]) for f in fields(Batch) if f.name != "rerank_id"))


@dataclass(frozen=True)
class DayData:
    """A training day's marts in memory: the requests trained on, the held-out users' requests that pick the best
    epoch (None when every user would be held out, or none is), the test day's requests, and among them the
    exploration bucket's (None when no device explored), whose display positions were shuffled: there a model is
    judged free of the position bias of the order that was shown."""

    fit: Batch
    validation: Batch | None
    test: Batch
    explored: Batch | None = None

    @classmethod
    def load(cls, database: Path, spec: dict, share: float) -> DayData:
        test = load_split(database, "test", spec)
        explored = load_split(database, "test", spec, where=EXPLORED) if count_requests(
            database, "test", where=EXPLORED) else None
        held_out = count_requests(database, "train", "validation", share) if share else 0
        if held_out == 0 or held_out >= count_requests(database, "train"):  # nothing to stop on, or to train on
            return cls(load_split(database, "train", spec), None, test, explored)
        return cls(load_split(database, "train", spec, part="fit", share=share),
                   load_split(database, "train", spec, part="validation", share=share), test, explored)
