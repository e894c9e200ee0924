"""The exploration bucket: what its clients do to the shown order, and what their logs say about position bias.

A small share of devices (`in_bucket`, by a hash of the device id) shuffle what they show within windows of W
consecutive display positions, the windows' boundaries shifted by a random offset per page, and log each re-rank
with `exploration` (window and offset). A window is shuffled once, before its first position is shown: a re-rank
within it (a click, a delete) reorders only the windows after it (`explore_order`). So every item of a window is
equally likely at each of its positions whatever happened at the positions before, and how often a position is
clicked, against the other positions of the same window, is how often it is examined. The offsets differ from page
to page, so windows overlap across pages and tie every position to position 0.

`examination` estimates the curve: click ~ Poisson(e[position] * a[window]) with a free level a per window
(whatever the items and the session bring), fitted by its conditional likelihood, the share of each window's clicks
at each of its exposed positions: the minorization-maximization update of Hunter (2004) for choice models. e[0] = 1.
"""

from __future__ import annotations

import hashlib
import warnings

import numpy as np

DEFAULT_WINDOW = 5


def in_bucket(device_id: str, share: float) -> bool:
    """Whether a device explores: a hash of its id below `share` (stable across days and apart from the release
    channels' own assignment)."""
    if share <= 0.0:
        return False
    digest = hashlib.sha256(f"exploration:{device_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def explore(n: int, shown_before: int, window: int, offset: int, rng: np.random.Generator) -> np.ndarray:
    """A permutation of n candidates about to be shown from display position `shown_before` on, shuffled within
    windows of `window` display positions whose boundaries sit at positions = offset (mod window)."""
    windows = (shown_before + np.arange(n) - offset) // window
    order = np.arange(n)
    for w in np.unique(windows):
        members = np.flatnonzero(windows == w)
        order[members] = members[rng.permutation(len(members))]
    return order


def explore_order(previous: list[int], ranked: list[int], shown_before: int, window: int, offset: int,
                  rng: np.random.Generator) -> list[int]:
    """What an exploring device shows at a re-rank: the rest of the window being shown as it was (`previous`, the order
    before the re-rank), then the re-ranker's order of the others (`ranked`, possibly without some candidates: a rule
    removed them), shuffled within the windows from the next boundary on."""
    # nothing shown yet: no window begun. A candidate of the begun window that a rule removed leaves a gap that the
    # re-ranker's order fills: that window is not a clean draw (rules and exploration together only)
    rest_of_window = (offset - shown_before) % window if shown_before else 0
    still = set(ranked)
    kept = [i for i in previous[:rest_of_window] if i in still]
    others = [i for i in ranked if i not in set(kept)]
    return kept + [others[j] for j in explore(len(others), shown_before + len(kept), window, offset, rng).tolist()]


def window_of(position: int, offset: int, window: int) -> int:
    return (position - offset) // window


def examination(windows: np.ndarray, positions: np.ndarray, clicks: np.ndarray, n_positions: int,
                weights: np.ndarray | None = None, iterations: int = 500, tolerance: float = 1e-10) -> np.ndarray:
    """The examination of each display position (or band of positions) relative to the first, from exposures in
    explored windows.

    windows [N] (any id, one per window of one page), positions [N] in [0, n_positions), clicks [N] 0/1, weights [N]
    (a bootstrap's: the same within a window; default 1) -> e [n_positions]; NaN where a position was never exposed
    in a window with a click."""
    windows, positions, clicks = (np.asarray(a) for a in (windows, positions, clicks))
    weights = np.ones(len(positions)) if weights is None else np.asarray(weights, dtype=np.float64)
    _, window = np.unique(windows, return_inverse=True)
    clicks_in = np.bincount(window, weights=clicks * weights)  # per window
    clicked_at = np.bincount(positions, weights=clicks * weights, minlength=n_positions)
    seen = np.bincount(positions, weights=weights, minlength=n_positions) > 0
    informative = clicks_in[window] > 0  # a window without a click says nothing about its positions
    e = np.where(seen, 1.0, np.nan)
    for _ in range(iterations):
        level = np.bincount(window, weights=np.nan_to_num(e[positions]) * weights)  # sum of e over each window
        share = np.where(informative, clicks_in[window] / np.maximum(level[window], 1e-300), 0.0)
        denominator = np.bincount(positions, weights=share * weights, minlength=n_positions)
        new = np.where(seen & (denominator > 0), clicked_at / np.where(denominator > 0, denominator, 1.0), np.nan)
        if not new[0] > 0:
            return np.full(n_positions, np.nan)
        new = new / new[0]
        done = np.nanmax(np.abs(new - e)) < tolerance if np.isfinite(new).any() else True
        e = new
        if done:
            break
    return e


class ExploredExposures:
    """Collects, from raw log events in their order per user (a simulator's `emit`, or a log read in order), the
    exposures of explored pages: their window (one page's window of display positions), display position, whether a
    click of the same request and position followed, and the user (`arrays`)."""

    def __init__(self):
        self.explored: dict[str, tuple[int, int]] = {}  # request -> (window, offset) of its re-ranks
        self.row_of: dict[tuple[str, int], int] = {}  # (request, position) -> row of its exposure
        self.windows: list[tuple[str, int]] = []
        self.positions: list[int] = []
        self.clicks: list[int] = []
        self.users: list[str] = []

    def __call__(self, e: dict) -> None:
        kind = e["event_type"]
        if kind == "rerank" and e.get("exploration"):
            x = e["exploration"]  # a dict, or the contract's model when read through the validator
            self.explored[e["request_id"]] = (x["window"], x["offset"]) if isinstance(x, dict) else (x.window, x.offset)
        elif kind == "exposure" and e.get("request_id") in self.explored:
            window, offset = self.explored[e["request_id"]]
            position = e.get("position", 0)  # optional in the contract, 0 by default
            self.row_of[e["request_id"], position] = len(self.positions)
            self.windows.append((e["request_id"], window_of(position, offset, window)))
            self.positions.append(position)
            self.clicks.append(0)
            self.users.append(e["user_id"])
        elif kind == "click":
            row = self.row_of.get((e.get("request_id"), e.get("position", 0)))
            if row is not None:
                self.clicks[row] = 1

    @classmethod
    def of(cls, events) -> ExploredExposures:
        """The explored exposures of `events`, in their order per user."""
        collected = cls()
        for e in events:
            collected(e)
        return collected

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(window ids, positions, clicks 0/1, user ids) as arrays, window and user ids numbered from 0."""
        windows = {w: i for i, w in enumerate(dict.fromkeys(self.windows))}
        users = {u: i for i, u in enumerate(dict.fromkeys(self.users))}
        return (np.array([windows[w] for w in self.windows], dtype=np.int64),
                np.array(self.positions, dtype=np.int64), np.array(self.clicks, dtype=np.float64),
                np.array([users[u] for u in self.users], dtype=np.int64))


def examination_by_band(windows: np.ndarray, positions: np.ndarray, clicks: np.ndarray, users: np.ndarray,
                        n_positions: int, band: int = 5, rounds: int = 20, seed: int = 0) -> list[dict]:
    """The examination of each band of `band` display positions relative to the first band, with a 95% interval from
    a Poisson bootstrap over users (`rounds` draws), and beside it the raw click-through rate by band relative to the
    first (what the log says without the windows). One dict per band."""
    bands = -(-n_positions // band)
    of = positions // band
    estimate = examination(windows, of, clicks, bands)
    rng = np.random.default_rng(seed)
    draws = np.array([examination(windows, of, clicks, bands, weights=rng.poisson(1.0, users.max() + 1)[users])
                      for _ in range(rounds)]) if rounds else np.full((1, bands), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a band no draw could tie to the first: its interval is NaN
        low, high = np.nanpercentile(draws, [2.5, 97.5], axis=0)
        exposures = np.bincount(of, minlength=bands)
        clicked = np.bincount(of, weights=clicks, minlength=bands)
        ctr = clicked / np.maximum(exposures, 1)
        naive = ctr / ctr[0] if ctr[0] else np.full(bands, np.nan)
    return [{"positions": f"{b * band}-{b * band + band - 1}", "estimate": float(estimate[b]), "low": float(low[b]),
             "high": float(high[b]), "raw_ctr_ratio": float(naive[b]), "exposures": int(exposures[b]),
             "clicks": int(clicked[b])} for b in range(bands)]


def examination_curve(events, positions: int = 50, band: int = 5, rounds: int = 20) -> dict | None:
    """The examination curve of a log (`edgerec logs positions --json`, and what position-bias training reads):
    the explored exposures of `events` at display positions below `positions`, their clicks, and the bands of
    `examination_by_band`; None when no device of an exploration bucket logged there."""
    # stable: the log's order at equal times
    windows, shown, clicks, users = ExploredExposures.of(sorted(events, key=lambda e: (e["user_id"], e["ts"]))).arrays()
    kept = shown < positions
    if not kept.any():
        return None
    return {"explored_exposures": int(kept.sum()), "clicks": int(clicks[kept].sum()),
            "bands": examination_by_band(windows[kept], shown[kept], clicks[kept], users[kept], positions, band,
                                         rounds)}
