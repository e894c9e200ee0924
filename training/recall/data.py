"""The recall marts as arrays: the catalog's items with their feature codes, and each split's samples with the
history right-aligned (the most recent interaction last, padding first), so that position L-1 is always the
latest one, as the causal towers read it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np

from edgerec.errors import MissingInput, NoTrainingData

ITEM_FEATURES = ("category", "brand", "gender", "price_level", "age_level", "bc_type")  # p1..p6
SPLITS = {"train": "fct_recall_train", "test": "fct_recall_test"}


@dataclass(frozen=True)
class Catalog:
    """Items by index (0: padding and unknown items); each feature's codes by index (0: a value not seen)."""

    item_ids: np.ndarray  # [N] sorted item ids; item index = position + 1
    codes: np.ndarray  # [N + 1, 6]
    vocabularies: dict[str, list[int]]  # feature -> its values, code = position + 1

    @classmethod
    def of(cls, items: dict[str, np.ndarray], vocabularies: dict[str, list[int]] | None = None) -> Catalog:
        order = np.argsort(items["item_id"], kind="stable")
        vocabularies = vocabularies or {f: sorted({int(v) for v in items[f]}) for f in ITEM_FEATURES}
        codes = np.zeros((len(order) + 1, len(ITEM_FEATURES)), dtype=np.int64)
        for j, feature in enumerate(ITEM_FEATURES):
            values = np.asarray(vocabularies[feature], dtype=np.int64)
            column = items[feature][order].astype(np.int64)
            at = np.searchsorted(values, column)
            found = (at < len(values)) & (values[np.minimum(at, len(values) - 1)] == column)
            codes[1:, j] = np.where(found, at + 1, 0)
        return cls(items["item_id"][order].astype(np.int64), codes, vocabularies)

    def __len__(self) -> int:
        return len(self.item_ids)

    def index(self, item_ids: np.ndarray) -> np.ndarray:
        """Item ids -> indices (0 for an item not in the catalog)."""
        at = np.searchsorted(self.item_ids, item_ids)
        clipped = np.minimum(at, len(self.item_ids) - 1)
        return np.where((at < len(self.item_ids)) & (self.item_ids[clipped] == item_ids), clipped + 1, 0)


@dataclass(frozen=True)
class Samples:
    """One row per click: the history [S, L] of item indices (right-aligned), how many of its last entries are in
    the click's session, the target's index and the user (for the bootstrap over users)."""

    history: np.ndarray
    length: np.ndarray
    session: np.ndarray
    target: np.ndarray
    user: np.ndarray  # [S] a user number, the same for one user_id across the splits

    def __len__(self) -> int:
        return len(self.target)

    def for_task(self, task: str) -> Samples:
        """The user-based task reads the whole history; the session-based one only the session's part, and only
        clicks with one."""
        if task == "user":
            return self
        keep = self.session > 0
        width = self.history.shape[1]
        history = np.where(np.arange(width)[None, :] >= width - self.session[:, None], self.history, 0)[keep]
        return Samples(history, self.session[keep], self.session[keep], self.target[keep], self.user[keep])


def right_aligned(lists: list, width: int, catalog: Catalog) -> tuple[np.ndarray, np.ndarray]:
    """Item-id lists (oldest first) as [S, width] indices with the last entry at width - 1; longer lists keep
    their latest `width` entries."""
    out = np.zeros((len(lists), width), dtype=np.int64)
    lengths = np.zeros(len(lists), dtype=np.int64)
    for row, items in enumerate(lists):
        kept = np.asarray(items[-width:], dtype=np.int64)
        if len(kept):
            out[row, width - len(kept):] = catalog.index(kept)
        lengths[row] = len(kept)
    return out, lengths


def read_items(database: Path) -> dict[str, np.ndarray]:
    """dim_items' ids and features p1..p6, as columns."""
    with duckdb.connect(str(database), read_only=True) as con:
        items = con.execute(f"select item_id, {', '.join(ITEM_FEATURES)} from dim_items").fetchnumpy()
    if not len(items["item_id"]):
        raise MissingInput(f"dim_items in {database} is empty: run `edgerec dbt build` first")
    return items


def read_catalog(database: Path) -> Catalog:
    return Catalog.of(read_items(database))


def read_samples(database: Path, split: str, catalog: Catalog, width: int, users: dict[str, int]) -> Samples:
    """A split's samples; `users` numbers the user ids (filled in as new ones appear)."""
    if not Path(database).exists():
        raise MissingInput(f"no marts database at {database}; run `edgerec dbt build` first")
    with duckdb.connect(str(database), read_only=True) as con:
        rows = con.execute(f"select user_id, target_item, history_items, session_history from {SPLITS[split]} "
                           "order by user_id, ts, target_item").fetchall()
    history, length = right_aligned([r[2] for r in rows], width, catalog)
    session = np.minimum(np.array([r[3] for r in rows], dtype=np.int64), length)
    target = catalog.index(np.array([r[1] for r in rows], dtype=np.int64))
    user = np.array([users.setdefault(r[0], len(users)) for r in rows], dtype=np.int64)
    return Samples(history, length, session, target, user)


def read_clicks(database: Path, split: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """A split's clicks as read_samples orders them: user ids, times (ms) and clicked item ids."""
    with duckdb.connect(str(database), read_only=True) as con:
        rows = con.execute(f"select user_id, ts, target_item from {SPLITS[split]} "
                           "order by user_id, ts, target_item").fetchall()
    return [r[0] for r in rows], np.array([r[1] for r in rows], dtype=np.int64), \
        np.array([r[2] for r in rows], dtype=np.int64)


def read_day(database: Path, width: int) -> tuple[Catalog, Samples, Samples]:
    """The catalog and both splits; NoTrainingData when either split is empty."""
    catalog = read_catalog(database)
    users: dict[str, int] = {}
    train, test = (read_samples(database, split, catalog, width, users) for split in ("train", "test"))
    empty = [name for name, s in (("train", train), ("test", test)) if not len(s)]
    if empty:
        raise NoTrainingData(f"no {' and no '.join(empty)} clicks with a history in the recall marts ({database}); "
                             "the first day of a deployment has no train days")
    return catalog, train, test
