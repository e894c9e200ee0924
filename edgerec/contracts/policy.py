"""The client's re-ranking hook: what the phone calls at every trigger.

A policy sees the unexposed cached candidates in their current order and the session's behaviour so far,
and returns a new order. The default keeps the cloud's order, as a client without an on-device model does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class RerankContext:
    user_id: str
    device_id: str
    session_id: str
    request_id: str
    ts: int  # ms; the trigger's time
    trigger: str  # page | click | delete | exposed_k
    item_ids: np.ndarray  # unexposed cached candidates, current order
    cloud_scores: np.ndarray  # the cloud's score of each, same order
    history: list[dict]  # this session's events so far, oldest first (the raw-log dicts)


class RerankPolicy(Protocol):
    model_version: str | None

    def observe(self, event: dict) -> None:
        """Called with every client event as it happens (the place to encode behaviour on device)."""

    def rerank(self, ctx: RerankContext) -> np.ndarray | None:
        """A permutation of range(len(ctx.item_ids)), or None to keep the current order. Indices left out are
        candidates not to show (a business rule removed them): distinct indices of a subset, in the new order."""


CLOUD_ORDER = "cloud order"  # how reports and marts name the devices that ran no model (model_version null)


class CloudOrder:
    """Keeps the cloud's order: the baseline client."""

    model_version: str | None = None

    def observe(self, event: dict) -> None:
        return None

    def rerank(self, ctx: RerankContext) -> np.ndarray | None:
        return None
