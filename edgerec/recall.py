"""A recall bundle at work (edgerec.contracts.recall_bundle): users embedded by its ONNX user tower from the items
they interacted with, and their nearest items found in its index.

One code path for every consumer of a recall version: the deploy's batch user embeddings, the near-real-time
consumer's, the paging API's candidates and the replay's recall arm. It runs onnxruntime and faiss, never PyTorch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from edgerec.contracts.recall_bundle import INDEX, ITEM_EMBEDDINGS, ITEM_IDS, POPULAR, USER_TOWER, verify_recall_bundle
from edgerec.errors import MissingInput

VECTOR_DTYPE = np.dtype("<f4")  # a user vector's bytes in the key-value store


class RecallRuntime:
    """Loads a recall bundle after `verify_recall_bundle` (BundleError when it fails)."""

    def __init__(self, root: Path, threads: int = 1, trusted: dict | None = None):
        import faiss
        import onnxruntime as ort

        self.root = Path(root)
        self.manifest = verify_recall_bundle(self.root, trusted=trusted)
        self.version: str = self.manifest["version"]
        self.width, self.dim = int(self.manifest["history"]), int(self.manifest["dim"])
        self.item_ids = np.load(self.root / ITEM_IDS)
        self.vectors = np.load(self.root / ITEM_EMBEDDINGS)
        self.popular = np.load(self.root / POPULAR)
        self._order = np.argsort(self.item_ids, kind="stable")
        self._sorted = self.item_ids[self._order]
        faiss.omp_set_num_threads(threads)
        self.index = faiss.read_index(str(self.root / INDEX))
        self.index.nprobe = int(self.manifest["index"]["probed"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = threads
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.tower = ort.InferenceSession(str(self.root / USER_TOWER), options, providers=["CPUExecutionProvider"])

    def rows(self, items: np.ndarray) -> np.ndarray:
        """Each item id's row in the bundle, -1 for an item it does not know."""
        items = np.asarray(items, dtype=np.int64)
        at = np.minimum(np.searchsorted(self._sorted, items), len(self._sorted) - 1)
        return np.where(self._sorted[at] == items, self._order[at], -1)

    def embed(self, histories: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        """Users' vectors [B, dim] from their interacted item ids (oldest first; the last `width` count, as in
        training: an unknown item keeps its place, masked) and which users had a known item at all (the others'
        rows are zero: no embedding)."""
        history = np.zeros((len(histories), self.width, self.dim), dtype=np.float32)
        valid = np.zeros((len(histories), self.width), dtype=bool)
        for b, items in enumerate(histories):
            kept = list(items)[-self.width:]
            if not kept:
                continue
            rows = self.rows(np.asarray(kept, dtype=np.int64))
            known = rows >= 0
            at = np.arange(self.width - len(kept), self.width)
            history[b, at[known]] = self.vectors[rows[known]]
            valid[b, at[known]] = True
        embedded = valid.any(axis=1)
        users = np.zeros((len(histories), self.dim), dtype=np.float32)
        if embedded.any():
            users[embedded] = self.tower.run(["user"], {"history": history[embedded], "valid": valid[embedded]})[0]
        return users, embedded

    def search(self, users: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The `k` nearest items of each user vector: item ids [B, k] and inner products, best first (an id of -1
        where the index found fewer)."""
        scores, rows = self.index.search(np.ascontiguousarray(users, dtype=np.float32), k)
        return np.where(rows >= 0, self.item_ids[np.maximum(rows, 0)], -1), scores

    def popular_items(self, k: int) -> np.ndarray:
        return self.popular[:k]


def to_bytes(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=VECTOR_DTYPE).tobytes()


def from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=VECTOR_DTYPE).astype(np.float32)


def user_histories(database: Path, batch: int = 4096) -> Iterator[tuple[list[str], list[list[int]]]]:
    """fct_recall_users (each user's latest interactions at the end of the day built), in batches of (user ids,
    histories oldest first), by user id."""
    import duckdb

    if not Path(database).exists():
        raise MissingInput(f"no marts database at {database}; run `edgerec dbt build` first")
    with duckdb.connect(str(database), read_only=True) as con:
        cursor = con.execute("select user_id, history_items from fct_recall_users order by user_id")
        while rows := cursor.fetchmany(batch):
            yield [r[0] for r in rows], [list(r[1]) for r in rows]


def histories_by_user(database: Path) -> dict[str, list[int]]:
    """fct_recall_users as one dict: user id -> latest interactions."""
    return {u: h for ids, batch in user_histories(database) for u, h in zip(ids, batch, strict=True)}
