"""The business rules (edgerec.contracts.rules) on one re-rank, as pure functions of arrays.

The runtime applies them in this order:
1. demote: the click probability of a candidate without an image times the factor, before any ordering;
2. order: by that probability, or by maximal marginal relevance over it when diversity is on;
3. remove: candidates out of stock leave the order (they are not shown);
4. cap: at most N of one category in any W consecutive places of what is shown.
The cap comes last, after the diversity step, because it is a constraint on the order shown: any reordering after
it could break it again.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, fields

import numpy as np

from edgerec.contracts.rules import BusinessRules, CategoryCap


@dataclass
class RuleCounts:
    """How often each rule changed something, over the re-ranks of a runtime."""

    reranks: int = 0  # re-ranks with any rule active
    reranks_changed: int = 0  # of those, the re-ranks whose shown order a rule changed
    removed_out_of_stock: int = 0  # candidates removed
    demoted_no_image: int = 0  # candidates demoted
    moved_by_cap: int = 0  # candidates the cap placed later than their rank
    cap_unmet: int = 0  # places no remaining candidate could fill within the cap (the best was placed)

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def demoted(scores: np.ndarray, no_image: np.ndarray, factor: float) -> np.ndarray:
    """The log click probability of each candidate (scores are logits), log(factor) lower where no_image."""
    log_p = -np.logaddexp(0.0, -np.asarray(scores, dtype=np.float64))
    return log_p + np.where(no_image, np.log(factor), 0.0)


def capped(categories: np.ndarray, cap: CategoryCap) -> tuple[np.ndarray, int]:
    """The order [K] that keeps the given order (best first) as far as at most cap.max_items of one category fall in
    any cap.window consecutive places: each place takes the first remaining candidate that fits; where none fits,
    the first remaining one. Returns (order, places where none fitted)."""
    left = list(range(len(categories)))
    order: list[int] = []
    recent: Counter = Counter()  # categories of the last window - 1 places
    unmet = 0
    while left:
        pick = next((i for i, c in enumerate(categories[j] for j in left) if recent[c] < cap.max_items), None)
        if pick is None:
            pick, unmet = 0, unmet + 1
        placed = left.pop(pick)
        order.append(placed)
        recent[categories[placed]] += 1
        if len(order) >= cap.window:  # the place leaving the window of the next one
            recent[categories[order[-cap.window]]] -= 1
    return np.array(order, dtype=np.int64), unmet


def apply_after_order(order: np.ndarray, out_of_stock: np.ndarray, categories: np.ndarray, rules: BusinessRules,
                      counts: RuleCounts) -> np.ndarray:
    """Steps 3 and 4 on an order (indices into the candidates, best first): without the candidates out of stock,
    then within the category cap. out_of_stock [K] bool, categories [K] -> the order shown (possibly shorter)."""
    if rules.remove_out_of_stock:
        keep = ~np.asarray(out_of_stock, dtype=bool)[order]
        counts.removed_out_of_stock += int((~keep).sum())
        order = order[keep]
    if rules.category_cap is not None and len(order):
        within, unmet = capped(np.asarray(categories)[order], rules.category_cap)
        position = np.empty_like(within)
        position[within] = np.arange(len(within))
        counts.moved_by_cap += int((position > np.arange(len(within))).sum())
        counts.cap_unmet += unmet
        order = order[within]
    return order
