"""Behaviour statistics of a raw log: the numbers that show whether the in-session dynamics are there.

Works on any log in the raw contract (simulated or real), so it doubles as a sanity report for real data.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from edgerec.contracts.validate import LogValidator, ds_of_path, event_files, find_catalog, open_lines
from edgerec.errors import MissingInput

POSITION_BUCKET = 5
MAX_REEXPOSURE = 5
LONG_EXPOSURE_MS = 1_500


@dataclass
class Rate:
    hits: int = 0
    total: int = 0

    def add(self, hit: bool) -> None:
        self.hits += hit
        self.total += 1

    @property
    def value(self) -> float:
        return self.hits / self.total if self.total else float("nan")


@dataclass
class SimStats:
    events_by_type: Counter = field(default_factory=Counter)
    users: int = 0
    sessions: int = 0
    skipped_lines: int = 0
    ctr: Rate = field(default_factory=Rate)
    ctr_by_position: dict[int, Rate] = field(default_factory=lambda: defaultdict(Rate))
    ctr_by_reexposure: dict[int, Rate] = field(default_factory=lambda: defaultdict(Rate))
    next_click_match: Rate = field(default_factory=Rate)
    click_on_viewed: Rate = field(default_factory=Rate)  # clicks on an item viewed earlier in the session
    next_click_base: list[float] = field(default_factory=list)
    ctr_long_exposure: Rate = field(default_factory=Rate)
    ctr_fast_scroll: Rate = field(default_factory=Rate)
    duration_clicked: list[int] = field(default_factory=list)
    duration_skipped: list[int] = field(default_factory=list)

    @property
    def next_click_base_rate(self) -> float:
        return float(np.mean(self.next_click_base)) if self.next_click_base else float("nan")

    def per_session(self, event_type: str) -> float:
        return self.events_by_type[event_type] / self.sessions if self.sessions else float("nan")

    def to_dict(self) -> dict:
        def median(xs):
            return float(np.median(xs)) if xs else None

        return {
            "users": self.users,
            "sessions": self.sessions,
            "skipped_lines": self.skipped_lines,
            "events_by_type": dict(sorted(self.events_by_type.items())),
            "ctr": self.ctr.value,
            "page_requests_per_session": self.per_session("page_request"),
            "reranks_per_session": self.per_session("rerank"),
            "ctr_by_position": {f"{p}-{p + POSITION_BUCKET - 1}": r.value
                                for p, r in sorted(self.ctr_by_position.items())},
            "ctr_by_reexposure": {(f"{n}+" if n == MAX_REEXPOSURE else str(n)): r.value
                                  for n, r in sorted(self.ctr_by_reexposure.items())},
            "next_click_category_match": self.next_click_match.value,
            "next_click_category_base_rate": self.next_click_base_rate,
            "clicks_on_items_viewed_earlier_in_session": self.click_on_viewed.value,
            "ctr_long_exposure": self.ctr_long_exposure.value,
            "ctr_fast_scroll": self.ctr_fast_scroll.value,
            "median_exposure_ms_clicked": median(self.duration_clicked),
            "median_exposure_ms_skipped": median(self.duration_skipped),
        }


def compute_stats(events: Iterable[dict], category_of: Mapping[int, int]) -> SimStats:
    """Statistics over raw-log event dicts; `category_of` maps item_id to its category."""
    stats = SimStats()
    sessions: dict[str, list[dict]] = defaultdict(list)
    users = set()
    for ev in events:
        stats.events_by_type[ev["event_type"]] += 1
        users.add(ev["user_id"])
        sessions[ev.get("session_id") or ev["user_id"]].append(ev)
    stats.users, stats.sessions = len(users), len(sessions)
    for evs in sessions.values():
        _session_stats(sorted(evs, key=lambda e: (e["ts"], e["event_id"])), category_of, stats)
    return stats


def _session_stats(evs: list[dict], category_of: Mapping[int, int], stats: SimStats) -> None:
    viewed: set = set()
    for e in evs:
        if e["event_type"] == "click":
            stats.click_on_viewed.add(e["item_id"] in viewed)
        elif e["event_type"] == "page_view":
            viewed.add(e["item_id"])
    clicked = {(e.get("request_id"), e["item_id"]) for e in evs if e["event_type"] == "click"}
    misses_by_cat: Counter = Counter()  # unclicked exposures of a category since its last click
    exposures = [e for e in evs if e["event_type"] == "exposure"]
    last_click_cat, exposures_since_click = None, []
    for e in exposures:
        cat = category_of.get(e["item_id"])
        hit = (e.get("request_id"), e["item_id"]) in clicked
        stats.ctr.add(hit)
        stats.ctr_by_position[e.get("position", 0) // POSITION_BUCKET * POSITION_BUCKET].add(hit)
        stats.ctr_by_reexposure[min(misses_by_cat[cat], MAX_REEXPOSURE)].add(hit)
        duration = e.get("exposure_duration_ms", 0)
        (stats.ctr_long_exposure if duration >= LONG_EXPOSURE_MS else stats.ctr_fast_scroll).add(hit)
        (stats.duration_clicked if hit else stats.duration_skipped).append(duration)
        exposures_since_click.append(cat)
        if hit:
            misses_by_cat[cat] = 0
            if last_click_cat is not None:
                stats.next_click_match.add(cat == last_click_cat)
                # what a click drawn from the exposures in between would match
                stats.next_click_base.append(float(np.mean([c == last_click_cat for c in exposures_since_click])))
            last_click_cat, exposures_since_click = cat, []
        else:
            misses_by_cat[cat] += 1


def read_events(path: Path, known_items: Iterable[int] | None = None) -> tuple[list[dict], int]:
    """The events of a raw log that pass the contract (bad rows are counted, not used)."""
    validator = LogValidator(known_items)
    events = []
    for file in event_files(path):
        with open_lines(file) as lines:
            events.extend(dict(vars(e)) for e in validator.validate_lines(lines, ds_of_path(file), str(file)))
    return events, validator.report.bad


def stats_of_path(path: Path, catalog: Path | None = None) -> SimStats:
    catalog = catalog or find_catalog(path)
    if catalog is None:
        raise MissingInput(f"no item catalog found for {path}; pass --catalog")
    items = pq.read_table(catalog, columns=["item_id", "category"])
    category_of = dict(zip(items["item_id"].to_pylist(), items["category"].to_pylist(), strict=True))
    events, skipped = read_events(path, category_of.keys())
    stats = compute_stats(events, category_of)
    stats.skipped_lines = skipped
    return stats


def render_stats(stats: SimStats) -> str:
    d = stats.to_dict()
    out = [
        f"users {d['users']:,}   sessions {d['sessions']:,}   events {sum(d['events_by_type'].values()):,}"
        + (f"   bad lines left out {d['skipped_lines']:,}" if d["skipped_lines"] else ""),
        "events by type: " + ", ".join(f"{k} {v:,}" for k, v in d["events_by_type"].items()),
        f"CTR {d['ctr']:.4f}   page requests/session {d['page_requests_per_session']:.2f}   "
        f"re-ranks/session {d['reranks_per_session']:.2f}",
        "",
        "CTR by display position (position bias)",
        *[f"  {k:>7}  {v:.4f}  {_bar(v)}" for k, v in d["ctr_by_position"].items()],
        "",
        "CTR by earlier unclicked exposures of the same category in the session (fatigue)",
        *[f"  {k:>7}  {v:.4f}  {_bar(v)}" for k, v in d["ctr_by_reexposure"].items()],
        "",
        "after a click, the next click's category (sudden preference)",
        f"  matches the clicked category        {d['next_click_category_match']:.4f}",
        f"  base rate (exposures in between)    {d['next_click_category_base_rate']:.4f}",
        f"clicks on an item viewed earlier in the session (revisits)  "
        f"{d['clicks_on_items_viewed_earlier_in_session']:.4f}",
        "",
        "exposure duration and clicks (long looks vs fast scrolls)",
        f"  CTR after a long exposure (>= {LONG_EXPOSURE_MS} ms)  {d['ctr_long_exposure']:.4f}",
        f"  CTR after a fast scroll                  {d['ctr_fast_scroll']:.4f}",
        f"  median exposure ms, clicked {d['median_exposure_ms_clicked']}   "
        f"skipped {d['median_exposure_ms_skipped']}",
    ]
    return "\n".join(out)


def _bar(value: float, scale: float = 400.0) -> str:
    return "#" * int(round(value * scale)) if value == value else ""
