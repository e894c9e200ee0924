"""Writes simulated days into the raw-zone layout: gzipped JSON lines and a catalog snapshot per ds."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from edgerec.contracts.policy import CLOUD_ORDER, RerankPolicy
from edgerec.sim.config import SimConfig
from edgerec.sim.corrupt import applicable_kinds, corrupt, dumps
from edgerec.sim.engine import Simulator
from edgerec.sim.world import _CORRUPT, rng_for

EVENTS_FILE = "part-00000.jsonl.gz"
SUMMARY_FILE = "_simulation.json"  # leading underscore: Spark and the validator skip it
_FLUSH_EVERY = 4096


def events_dir(raw: Path, day: dt.date | str) -> Path:
    return Path(raw) / "events" / f"ds={day}"


def read_summary(raw: Path, day: dt.date | str) -> dict:
    """What the simulator recorded with a day (events by type, devices per model version, the channels' state);
    {} for a day it did not write (external logs)."""
    path = events_dir(raw, day) / SUMMARY_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def items_path(raw: Path, day: dt.date | str) -> Path:
    return Path(raw) / "items" / f"ds={day}" / "items.parquet"


class PartitionWriter:
    """One day's events as gzipped JSON lines, with deterministic bytes (no gzip timestamp)
    and, at `corrupt_rate`, realistic bad lines instead of good ones."""

    def __init__(self, path: Path, corrupt_rate: float = 0.0, rng: np.random.Generator | None = None,
                 unknown_item_id: int = 0):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._tmp = path.with_name(path.name + ".tmp")
        self._file = self._tmp.open("wb")
        self._gz = gzip.GzipFile(filename="", mode="wb", fileobj=self._file, mtime=0, compresslevel=1)
        self._buffer: list[bytes] = []
        self.corrupt_rate, self._rng, self._unknown = corrupt_rate, rng, unknown_item_id
        self.events: dict[str, int] = {}
        self.devices: dict[str, set[str]] = {}  # model_version (CLOUD_ORDER: none) -> the devices that ran it
        self.corrupted: Counter = Counter()
        self.lines = 0

    def write(self, event: dict) -> None:
        kind = event["event_type"]
        self.events[kind] = self.events.get(kind, 0) + 1
        self.devices.setdefault(event["model_version"] or CLOUD_ORDER, set()).add(event["device_id"])
        if self.corrupt_rate and self._rng.random() < self.corrupt_rate:
            kinds = applicable_kinds(event)
            kind = kinds[int(self._rng.integers(len(kinds)))]
            self.corrupted[kind] += 1
            self._buffer.extend(corrupt(event, kind, self._rng, self._unknown))
        else:
            self._buffer.append(dumps(event))
        if len(self._buffer) >= _FLUSH_EVERY:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            self.lines += len(self._buffer)
            self._gz.write(b"\n".join(self._buffer) + b"\n")
            self._buffer.clear()

    def close(self) -> None:
        self._flush()
        self._gz.close()
        self._file.close()
        self._tmp.replace(self.path)  # readers never see a half-written partition file


def simulate(cfg: SimConfig, raw: Path, policy: RerankPolicy | None = None,
             progress: Callable[[dt.date, int], None] | None = None,
             policy_of: Callable[[str], RerankPolicy] | None = None, channels: dict | None = None) -> dict:
    """Simulate every day of `cfg` into the raw zone at `raw`; returns a summary per day.

    `policy` or `policy_of` as `Simulator`; `channels`, the release channels' state the devices were assigned from
    (`deploy.fleet.ChannelState.to_dict`), is recorded in each day's summary: with the seed, it is what a day's
    events are reproduced from. Each day is streamed to disk user by user, so memory stays flat however many days
    are simulated.
    """
    sim = Simulator(cfg, policy, policy_of=policy_of)
    catalog_table = sim.catalog.to_arrow()
    unknown_item_id = int(sim.catalog.item_id.max()) + 1_000_000
    summary = {"config": json.loads(cfg.model_dump_json()), "days": {}}
    for day in cfg.dates:
        items_path(raw, day).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(catalog_table, items_path(raw, day))
        writer = PartitionWriter(events_dir(raw, day) / EVENTS_FILE, cfg.corrupt_rate,
                                 rng_for(cfg.seed, _CORRUPT, day.toordinal()), unknown_item_id)
        chunk = max(1, cfg.users // 100)
        for start in range(0, cfg.users, chunk):
            sim.simulate_day(day, writer.write, users=range(start, min(cfg.users, start + chunk)))
            if progress:
                progress(day, min(cfg.users, start + chunk))
        writer.close()
        day_summary = {
            "events": sum(writer.events.values()),
            "lines": writer.lines,
            "events_by_type": dict(sorted(writer.events.items())),
            "corrupted_by_kind": dict(sorted(writer.corrupted.items())),
            "devices_by_model_version": {v: len(d) for v, d in sorted(writer.devices.items())},
            "channels": channels,
            "events_path": str(writer.path),
            "items_path": str(items_path(raw, day)),
        }
        (events_dir(raw, day) / SUMMARY_FILE).write_text(json.dumps(day_summary, indent=2) + "\n")
        summary["days"][str(day)] = day_summary
    return summary
