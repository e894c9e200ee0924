"""The raw-zone stages of the daily pipeline, as plain functions of (settings, ds).

Airflow tasks and CLI commands both call these; each is idempotent on its partition.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from edgerec.config import Settings, check_logical_date
from edgerec.contracts import LogValidator
from edgerec.contracts.catalog import CATALOG_ARROW_SCHEMA
from edgerec.contracts.policy import RerankPolicy
from edgerec.contracts.raw_log import PageRequest, Rerank, item_ids_of
from edgerec.contracts.validate import FIXES
from edgerec.errors import ConfigError, EdgeRecError, MissingInput
from edgerec.reports import RawValidation
from edgerec.sim.config import SimConfig, load_sim_config
from edgerec.sim.writer import simulate

log = logging.getLogger(__name__)


WRITE_CATALOG = "write the day's snapshot of every item its events name (item_id, category, brand, ...)"


class BadShareExceeded(EdgeRecError):
    """More of a day's rows were bad than the configured threshold allows."""


def day_sim_config(settings: Settings, ds: str) -> SimConfig:
    """The configured world's simulator config for one day, as the simulate stage runs it."""
    return load_sim_config(settings.sim.config, preset=settings.sim.world, users=settings.sim.users,
                           seed=settings.sim.seed, days=1, start_date=dt.date.fromisoformat(ds),
                           corrupt_rate=settings.sim.corrupt_rate)


def simulate_day(settings: Settings, ds: str, policy_of: Callable[[str], RerankPolicy] | None = None,
                 channels: dict | None = None) -> dict:
    """Simulate one day of the configured world into the raw zone (replacing that partition); `policy_of` and
    `channels` as `edgerec.sim.writer.simulate` (default: every device keeps the cloud's order)."""
    cfg = day_sim_config(settings, ds)
    summary = simulate(cfg, settings.raw, policy_of=policy_of, channels=channels)["days"][ds]
    log.info("simulated ds=%s: %s events into %s", ds, f"{summary['events']:,}", summary["events_path"])
    return summary


def validate_raw(settings: Settings, ds: str) -> dict:
    """Validate one raw partition against the contract; quarantine bad rows; fail above the threshold."""
    day = settings.layout(ds)
    if not day.raw_events.exists():
        raise MissingInput(f"no raw events for ds={ds} at {day.raw_events}: the day's client logs go there "
                           f"(*.jsonl.gz); `edgerec logs check {settings.raw}` lists the days the raw zone holds")
    if not day.raw_items.exists():
        raise MissingInput(f"no item catalog for ds={ds} at {day.raw_items}: {WRITE_CATALOG}")
    known = pq.read_table(day.raw_items, columns=["item_id"])["item_id"].to_pylist()
    day.quarantine_raw.parent.mkdir(parents=True, exist_ok=True)
    with day.quarantine_raw.open("w") as quarantine:
        report = LogValidator(known, quarantine).validate_path(day.raw_events)
    result = report.to_dict() | {"ds": ds, "quarantine": str(day.quarantine_raw),
                                 "max_bad_share": settings.quality.max_bad_share}
    RawValidation(**result).write(day)
    log.info("validated ds=%s\n%s", ds, report.render())
    check_bad_share(report.rows, report.bad_by_reason, settings.quality.max_bad_share, f"raw events ds={ds}",
                    day.quarantine_raw)
    return result


def check_bad_share(rows: int, bad_by_reason: Mapping[str, int], threshold: float, what: str,
                    quarantine: Path) -> None:
    """Fail, naming the reasons and where the bad rows are, when the bad share is above the threshold."""
    if rows == 0:
        raise BadShareExceeded(f"{what}: no rows at all")
    bad = sum(bad_by_reason.values())
    if bad / rows > threshold:
        reasons = ", ".join(f"{r} {n:,}" for r, n in sorted(bad_by_reason.items()))
        most = max(sorted(bad_by_reason), key=bad_by_reason.get)
        fix = FIXES.get(most)
        raise BadShareExceeded(
            f"{what}: {bad:,} of {rows:,} rows are bad ({bad / rows:.2%}), above the "
            f"threshold {threshold:.2%} (EDGEREC_QUALITY_MAX_BAD_SHARE); by reason: {reasons}; "
            f"bad rows in {quarantine}" + (f"; most are {most}: {fix}" if fix else ""))


@dataclass
class RawDayCheck:
    """What one day of a raw zone holds, read before any Spark job (`edgerec logs check`)."""

    ds: str
    files: int = 0
    rows: int = 0
    bad_by_reason: Counter = field(default_factory=Counter)  # contract, partition and duplicate problems
    unknown_item_rows: int = 0  # good rows naming an item the day's catalog lacks (bad rows in validate_raw)
    events_by_type: Counter = field(default_factory=Counter)
    page_requests: set[str] = field(default_factory=set)
    reranked: set[str] = field(default_factory=set)  # request ids with at least one logged re-rank
    list_lengths: list[int] = field(default_factory=list)
    candidates: int = 0
    scored: int = 0  # candidates carrying a cloud score
    out_of_stock: int = 0  # candidates flagged out of stock (read by the device's business rules)
    no_image: int = 0  # candidates flagged without an image
    explored: int = 0  # re-ranks of an exploration bucket's devices (shuffled on purpose; kept out of training)
    items: set[int] = field(default_factory=set)  # every item the day's events name
    request_users: dict[str, str] = field(default_factory=dict)  # request id -> the user of its first event
    shared_request_ids: set[str] = field(default_factory=set)  # request ids more than one user's events carry
    repeated_page_requests: int = 0  # page_request events whose request id an earlier page_request had
    catalog_items: int | None = None  # None: no catalog for the day
    problems: list[str] = field(default_factory=list)

    @property
    def bad_share(self) -> float:
        return (sum(self.bad_by_reason.values()) + self.unknown_item_rows) / self.rows if self.rows else 0.0

    def to_dict(self) -> dict:
        lengths = sorted(self.list_lengths)
        return {
            "ds": self.ds, "files": self.files, "rows": self.rows, "bad_share": round(self.bad_share, 6),
            "bad_by_reason": dict(sorted(self.bad_by_reason.items())), "unknown_item_rows": self.unknown_item_rows,
            "events_by_type": dict(sorted(self.events_by_type.items())), "page_requests": len(self.page_requests),
            "share_with_logged_reranks": round(len(self.reranked & self.page_requests) / len(self.page_requests), 4)
            if self.page_requests else None,
            "list_length": {"min": lengths[0], "median": lengths[len(lengths) // 2], "max": lengths[-1]}
            if lengths else None,
            "share_scored": round(self.scored / self.candidates, 4) if self.candidates else None,
            "share_out_of_stock": round(self.out_of_stock / self.candidates, 4) if self.candidates else None,
            "share_no_image": round(self.no_image / self.candidates, 4) if self.candidates else None,
            "explored_reranks": self.explored, "shared_request_ids": len(self.shared_request_ids),
            "repeated_page_requests": self.repeated_page_requests,
            "catalog_items": self.catalog_items, "items_named": len(self.items),
            "problems": self.problems, "ready": not self.problems,
        }


def check_raw_zone(raw: Path, days: list[str] | None, max_bad_share: float) -> list[RawDayCheck]:
    """Each day of the raw zone `raw` (those in `days`, else every `events/ds=*` partition): counts, list lengths,
    catalog coverage and the problems that would stop its DAG run, each naming the fix. Reads the logs once with
    the contract's validator; writes nothing."""
    events_root = raw / "events"
    found = sorted(p.name.removeprefix("ds=") for p in events_root.glob("ds=*") if p.is_dir())
    if not found:
        raise MissingInput(f"no day in {events_root}: a raw zone holds events/ds=YYYY-MM-DD/*.jsonl.gz and "
                           "items/ds=YYYY-MM-DD/items.parquet")
    checks = []
    for ds in days or found:
        day = RawDayCheck(ds)
        checks.append(day)
        try:
            check_logical_date(ds)
        except ConfigError as error:
            day.problems.append(str(error))
            continue
        events = events_root / f"ds={ds}"
        if ds not in found:
            day.problems.append(f"no events at {events} (the raw zone holds {found[0]} .. {found[-1]})")
            continue
        catalog_path = raw / "items" / f"ds={ds}" / "items.parquet"
        catalog = None
        if catalog_path.exists():
            table = pq.read_table(catalog_path)
            missing = [f.name for f in CATALOG_ARROW_SCHEMA if f.name not in table.column_names]
            if missing:
                day.problems.append(f"the catalog {catalog_path} lacks the columns {', '.join(missing)}")
            catalog = frozenset(table["item_id"].to_pylist()) if "item_id" in table.column_names else frozenset()
            day.catalog_items = len(catalog)
        else:
            day.problems.append(f"no item catalog at {catalog_path}: {WRITE_CATALOG}")

        def count(event, day=day, catalog=catalog) -> None:
            day.events_by_type[event.event_type] += 1
            named = item_ids_of(event)
            day.items.update(named)
            if catalog is not None and any(i not in catalog for i in named):
                day.unknown_item_rows += 1
            request_id = getattr(event, "request_id", None)
            if request_id and day.request_users.setdefault(request_id, event.user_id) != event.user_id:
                day.shared_request_ids.add(request_id)
            if isinstance(event, PageRequest):
                day.repeated_page_requests += event.request_id in day.page_requests
                day.page_requests.add(event.request_id)
                day.list_lengths.append(len(event.candidates))
                day.candidates += len(event.candidates)
                day.scored += sum("score" in c for c in event.candidates)
                day.out_of_stock += sum(bool(c.get("out_of_stock")) for c in event.candidates)
                day.no_image += sum(bool(c.get("no_image")) for c in event.candidates)
            elif isinstance(event, Rerank):
                day.reranked.add(event.request_id)
                day.explored += event.exploration is not None

        validator = LogValidator()
        report = validator.validate_path(events, on_event=count)
        day.files, day.rows, day.bad_by_reason = report.files, report.rows, report.bad_by_reason
        if day.rows == 0:
            day.problems.append(f"no rows in {events}")
        elif day.bad_share > max_bad_share:
            reasons = Counter(day.bad_by_reason) + Counter({"unknown_item_id": day.unknown_item_rows})
            most = max(sorted(reasons), key=reasons.get)
            day.problems.append(f"{day.bad_share:.2%} of the rows are bad, above EDGEREC_QUALITY_MAX_BAD_SHARE "
                                f"{max_bad_share:.2%}; most are {most}: {FIXES[most]}")
        if day.shared_request_ids:
            day.problems.append(
                f"{len(day.shared_request_ids):,} request id(s) carried by more than one user's events (e.g. "
                f"{min(day.shared_request_ids)!r}): a request id names one page request of one user; make the "
                "adapter's ids unique per page request (prefix them with the user id, say)")
        if day.repeated_page_requests:
            day.problems.append(
                f"{day.repeated_page_requests:,} page_request event(s) repeat an earlier page request's id: each "
                "shown list is one page_request with its own request id (a list shown again is a new page request)")
        if day.rows and not day.page_requests:
            day.problems.append("no page_request events: nothing to re-rank (each shown list is one page_request "
                                "with its candidates)")
    return checks


def render_raw_check(raw: Path, checks: list[RawDayCheck]) -> str:
    """The check as a table, one line per day, then each day's events by type and its problems."""
    def cell(value, fmt: str, width: int) -> str:
        return format(value, fmt).rjust(width) if value is not None else "-".rjust(width)

    lines = [f"raw zone {raw}: {len(checks)} day(s)", "",
             f"{'ds':<12}{'rows':>10}{'bad':>8}{'lists':>8}{'re-ranked':>10}{'list length':>13}{'scored':>8}"
             f"{'catalog':>10}{'items':>9}  verdict"]
    for c in checks:
        d = c.to_dict()
        length = d["list_length"] and "/".join(str(n) for n in d["list_length"].values())
        lines.append(f"{c.ds:<12}{c.rows:>10,}{d['bad_share']:>8.2%}{d['page_requests']:>8,}"
                     f"{cell(d['share_with_logged_reranks'], '.0%', 10)}{cell(length, 's', 13)}"
                     f"{cell(d['share_scored'], '.0%', 8)}{cell(c.catalog_items, ',', 10)}{len(c.items):>9,}  "
                     + ("ready" if not c.problems else "NOT READY"))
    lines += ["", "lists: page requests; re-ranked: of them, with a logged re-rank (for the others the client's",
              "triggers are derived); list length: candidates min/median/max; scored: candidates with a cloud score",
              "(none: the models see the rank only); items: distinct items the events name", ""]
    for c in checks:
        if c.events_by_type:
            lines.append(f"{c.ds}  " + ", ".join(f"{k} {n:,}" for k, n in sorted(c.events_by_type.items())))
        if c.out_of_stock or c.no_image:
            lines.append(f"{c.ds}  candidates flagged: {c.out_of_stock / c.candidates:.1%} out of stock, "
                         f"{c.no_image / c.candidates:.1%} without an image (the business rules read them, "
                         "docs/rules.md)")
        if c.explored:
            lines.append(f"{c.ds}  re-ranks of an exploration bucket: {c.explored:,}; kept out of training, "
                         "`edgerec logs positions` reads them (docs/exploration.md)")
        lines += [f"{c.ds}  problem: {p}" for p in c.problems]
    return "\n".join(lines)
