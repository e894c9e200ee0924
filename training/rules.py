"""Hand rules: one-line re-rankers computed from the same test mart as the models, so a model's gain counts only
when it also beats what a simple rule gets from the same inputs.

Each rule gives every candidate a primary key and breaks ties by the list order: the score is
primary * (K + 1) - position, so a higher primary always wins and equal primaries keep the initial order.
- `viewed_first`: items the user viewed (a page view in the request's IPV sequence, the model's own input) first;
- `recent_first`: viewed items first, the most recently viewed first;
- `popular_first`: the items clicked most often in the train window first.
The IPV sequence reaches back over the lookback, not only the session; a view from an earlier session counts too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from training.data import Batch

RULES = {"viewed_first": "rule: viewed before first", "recent_first": "rule: most recently viewed first",
         "popular_first": "rule: most clicked in the train window first"}


def by_list_order(primary: np.ndarray) -> np.ndarray:
    """Scores [B, K] from primary keys [B, K]: higher primary first, ties in the list order."""
    width = primary.shape[1]
    return primary.astype(np.float64) * (width + 1) - np.arange(width, dtype=np.float64)


def view_recency(batch: Batch) -> np.ndarray:
    """[B, K]: 0 for a candidate the IPV sequence does not hold, else n - (index of its latest view), so the most
    recent view (index 0; the marts keep sequences most recent first) scores highest."""
    items, lengths = batch.ipv_item, batch.ipv_length
    steps = items.shape[1]
    real = np.arange(steps)[None, :] < lengths[:, None]
    # [B, K, n] candidate == event item; the first True along n is the latest view
    same = (batch.candidate_item[:, :, None] == items[:, None, :]) & real[:, None, :] & \
        (batch.candidate_item[:, :, None] > 0)
    latest = np.where(same.any(-1), same.argmax(-1), steps)
    return (steps - latest).astype(np.int64)


def click_counts(batches: Iterable[Batch]) -> dict[int, int]:
    """Clicks per item id over labelled candidates (the train window's popularity)."""
    counts: dict[int, int] = {}
    for batch in batches:
        clicked = batch.candidate_item[(batch.label == 1) & (batch.mask == 1)]
        ids, n = np.unique(clicked, return_counts=True)
        for item, c in zip(ids.tolist(), n.tolist(), strict=True):
            counts[item] = counts.get(item, 0) + c
    return counts


@dataclass(frozen=True)
class HandRules:
    """The rules' scorers, given the train window's click counts."""

    clicks: dict[int, int]

    def scorers(self) -> dict[str, Callable[[Batch], np.ndarray]]:
        lookup = np.vectorize(lambda item: self.clicks.get(item, 0), otypes=[np.int64])
        return {
            "viewed_first": lambda b: by_list_order(view_recency(b) > 0),
            "recent_first": lambda b: by_list_order(view_recency(b)),
            "popular_first": lambda b: by_list_order(lookup(b.candidate_item) if b.candidate_item.size
                                                     else b.candidate_item),
        }


def score_rules(rules: HandRules, batches: Iterable[Batch]) -> dict[str, tuple[list, list, list]]:
    """Per rule: (scores, labels, masks) per request over the real candidates, as `trainer.score` gives a model's."""
    out: dict[str, tuple[list, list, list]] = {name: ([], [], []) for name in RULES}
    scorers = rules.scorers()
    for batch in batches:
        for name, scorer in scorers.items():
            scores, labels, masks = out[name]
            values = scorer(batch)
            for i, n in enumerate(batch.candidates.tolist()):
                scores.append(values[i, :n])
                labels.append(batch.label[i, :n])
                masks.append(batch.mask[i, :n])
    return out
