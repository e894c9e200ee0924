"""Reference rows computed from the same marts as the models: a model that does not beat them has not learned
the users, only what any log shows."""

from __future__ import annotations

import numpy as np

from training.recall.data import Samples


def popularity(train: Samples, n_items: int) -> np.ndarray:
    """[N + 1] clicks of each item in the train window."""
    return np.bincount(train.target, minlength=n_items + 1).astype(float)


def score_popular(candidates: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Most clicked in the train window first."""
    return counts[candidates]


def score_recent(candidates: np.ndarray, history: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Items of the history first, the latest interaction first; then by popularity."""
    recency = np.zeros(candidates.shape)
    for position in range(history.shape[1]):  # later positions overwrite earlier ones: the latest one wins
        column = history[:, position:position + 1]
        recency = np.where((candidates == column) & (column > 0), position + 1.0, recency)
    return recency * (counts.max() + 1.0) + counts[candidates]  # popularity only breaks ties
