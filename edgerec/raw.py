"""The raw-zone stages of the daily pipeline, as plain functions of (settings, ds).

Airflow tasks and CLI commands both call these; each is idempotent on its partition.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from pathlib import Path

import pyarrow.parquet as pq

from edgerec.config import Settings
from edgerec.contracts import LogValidator
from edgerec.errors import EdgeRecError, MissingInput
from edgerec.reports import RawValidation
from edgerec.sim.config import load_sim_config
from edgerec.sim.writer import simulate

log = logging.getLogger(__name__)


class BadShareExceeded(EdgeRecError):
    """More of a day's rows were bad than the configured threshold allows."""


def simulate_day(settings: Settings, ds: str) -> dict:
    """Simulate one day of the configured world into the raw zone (replacing that partition)."""
    cfg = load_sim_config(settings.sim.config, preset=settings.sim.world, users=settings.sim.users,
                          seed=settings.sim.seed, days=1, start_date=dt.date.fromisoformat(ds),
                          corrupt_rate=settings.sim.corrupt_rate)
    summary = simulate(cfg, settings.raw)["days"][ds]
    log.info("simulated ds=%s: %s events into %s", ds, f"{summary['events']:,}", summary["events_path"])
    return summary


def validate_raw(settings: Settings, ds: str) -> dict:
    """Validate one raw partition against the contract; quarantine bad rows; fail above the threshold."""
    day = settings.layout(ds)
    if not day.raw_events.exists():
        raise MissingInput(f"no raw events for ds={ds} at {day.raw_events}")
    if not day.raw_items.exists():
        raise MissingInput(f"no item catalog for ds={ds} at {day.raw_items}")
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
        raise BadShareExceeded(
            f"{what}: {bad:,} of {rows:,} rows are bad ({bad / rows:.2%}), above the "
            f"threshold {threshold:.2%} (EDGEREC_QUALITY_MAX_BAD_SHARE); by reason: {reasons}; "
            f"bad rows in {quarantine}")
