"""Streaming validator for raw client logs: counts good rows and bad rows by reason, never crashes on a row.

Checks, in order: the contract (JSON, required fields, strict types, ranges, enums), the event's ts inside
its ds partition's day, every item id known to the catalog, and the event_id not seen before (a client
retry resends an event: the first copy is kept, later ones are duplicates).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import IO

from pydantic import ValidationError

from edgerec.contracts.raw_log import item_ids_of, parse_event
from edgerec.errors import ContractError, MissingInput


class BadRowReason(StrEnum):
    INVALID_JSON = "invalid_json"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    OUT_OF_RANGE = "out_of_range"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    TS_OUTSIDE_PARTITION = "ts_outside_partition"
    UNKNOWN_ITEM_ID = "unknown_item_id"
    DUPLICATE_EVENT_ID = "duplicate_event_id"
    UNREADABLE_FILE = "unreadable_file"  # a truncated or corrupt file: what it held after the break is lost
    UNEXPECTED_FILE = "unexpected_file"  # a file in the partition that is not a log file by its name


# What to change in a log writer (an adapter) when a day's rows are bad for this reason.
FIXES = {
    BadRowReason.INVALID_JSON: "write one JSON object per line, UTF-8",
    BadRowReason.MISSING_FIELD: "every event needs event_id, user_id, ts and event_type, and its type's own required "
                                "fields (raw client log v1, docs/design.md)",
    BadRowReason.WRONG_TYPE: "ids, ranks and counts are JSON numbers, not strings (\"item_id\": 42, not \"42\"); "
                             "flags are true or false",
    BadRowReason.OUT_OF_RANGE: "numbers are >= 0 and finite, a page has at most 100 candidates, enum fields take "
                               "the listed values",
    BadRowReason.UNKNOWN_EVENT_TYPE: "event_type is one of page_request, exposure, click, page_view, delete, rerank",
    BadRowReason.TS_OUTSIDE_PARTITION: "ts is milliseconds since the epoch, UTC, and each event goes under the "
                                       "events/ds=D/ of its own UTC day",
    BadRowReason.UNKNOWN_ITEM_ID: "the day's catalog (items/ds=D/items.parquet) must hold every item the day's "
                                  "events name",
    BadRowReason.DUPLICATE_EVENT_ID: "event_id must be unique: many duplicates mean the writer reuses ids",
    BadRowReason.UNREADABLE_FILE: "write each file completely (gzip it whole) before it lands in the raw zone",
    BadRowReason.UNEXPECTED_FILE: "only *.jsonl.gz or *.jsonl files go in a day's partition",
}

_ERROR_REASONS = {
    "json_invalid": BadRowReason.INVALID_JSON,
    "missing": BadRowReason.MISSING_FIELD,
    "union_tag_not_found": BadRowReason.MISSING_FIELD,
    "union_tag_invalid": BadRowReason.UNKNOWN_EVENT_TYPE,
    "greater_than_equal": BadRowReason.OUT_OF_RANGE,
    "greater_than": BadRowReason.OUT_OF_RANGE,
    "less_than_equal": BadRowReason.OUT_OF_RANGE,
    "less_than": BadRowReason.OUT_OF_RANGE,
    "too_long": BadRowReason.OUT_OF_RANGE,
    "string_too_short": BadRowReason.OUT_OF_RANGE,
    "literal_error": BadRowReason.OUT_OF_RANGE,
    "finite_number": BadRowReason.OUT_OF_RANGE,
    "value_error": BadRowReason.OUT_OF_RANGE,  # the contract's validators bound one field by another
}
_DS_RE = re.compile(r"ds=([^/]+)")
DAY_MS = 86_400_000


def reason_of(error: ValidationError) -> tuple[BadRowReason, str]:
    """The bad-row reason and a one-line detail for the first contract violation of a row."""
    first = error.errors(include_url=False)[0]
    reason = _ERROR_REASONS.get(first["type"], BadRowReason.WRONG_TYPE)
    loc = ".".join(str(p) for p in first["loc"])
    return reason, f"{loc}: {first['msg']}" if loc else first["msg"]


def ds_of_path(path: Path | str) -> str | None:
    match = _DS_RE.search(str(path))
    return match.group(1) if match else None


@lru_cache(maxsize=64)
def day_bounds_ms(ds: str) -> tuple[int, int]:
    try:
        start = dt.datetime.strptime(ds, "%Y-%m-%d").replace(tzinfo=dt.UTC)
    except ValueError:
        raise ContractError(f"partition ds={ds} is not a date (YYYY-MM-DD)") from None
    lo = int(start.timestamp() * 1000)
    return lo, lo + DAY_MS


LOG_FILE_SUFFIXES = (".jsonl.gz", ".jsonl")


def event_files(path: Path) -> list[Path]:
    """The log files under a file, a ds partition, or a raw-zone events root, in a stable order."""
    if path.is_file():
        return [path]
    if not path.exists():
        raise MissingInput(f"no such log file or directory: {path}")
    return sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(LOG_FILE_SUFFIXES))


def unexpected_files(path: Path) -> list[Path]:
    """Files beside the log files that are not log files by their name (`_`- and `.`-prefixed ones are the
    writers' own markers)."""
    if not path.is_dir():
        return []
    return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.endswith(LOG_FILE_SUFFIXES)
                  and not p.name.startswith(("_", ".")))


def open_lines(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.name.endswith(".gz") else path.open("rb")


@dataclass
class ValidationReport:
    files: int = 0
    rows: int = 0
    good_by_type: Counter = field(default_factory=Counter)
    bad_by_reason: Counter = field(default_factory=Counter)

    @property
    def good(self) -> int:
        return sum(self.good_by_type.values())

    @property
    def bad(self) -> int:
        return sum(self.bad_by_reason.values())

    @property
    def bad_share(self) -> float:
        return self.bad / self.rows if self.rows else 0.0

    def to_dict(self) -> dict:
        return {
            "files": self.files,
            "rows": self.rows,
            "good": self.good,
            "bad": self.bad,
            "bad_share": round(self.bad_share, 6),
            "good_by_type": dict(sorted(self.good_by_type.items())),
            "bad_by_reason": dict(sorted(self.bad_by_reason.items())),
        }

    def render(self) -> str:
        lines = [
            f"files {self.files}   rows {self.rows:,}   good {self.good:,}   "
            f"bad {self.bad:,} ({self.bad_share:.3%})"
        ]
        lines += [f"  good {kind:<14} {n:>10,}" for kind, n in sorted(self.good_by_type.items())]
        lines += [f"  bad  {reason:<22} {n:>10,}" for reason, n in sorted(self.bad_by_reason.items())]
        return "\n".join(lines)


class LogValidator:
    """Validates lines against the raw log contract; keeps state for duplicate detection across files.

    known_items: the catalog's item ids (None skips the unknown-item check).
    check_duplicates: whether to look for event ids seen before by this validator.
    quarantine: an open text stream receiving one JSON object per bad row (reason, detail, source, raw).
    """

    def __init__(self, known_items: Iterable[int] | None = None, quarantine: IO[str] | None = None,
                 check_duplicates: bool = True):
        self.known_items = frozenset(known_items) if known_items is not None else None
        self.check_duplicates = check_duplicates  # off where duplicates are found globally (Spark)
        self.quarantine = quarantine
        self.seen_event_ids: set[str] = set()
        self.report = ValidationReport()

    def check(self, line: bytes, ds: str | None = None):
        """The parsed event, or (reason, detail) for a bad row."""
        try:
            event = parse_event(line)
        except ValidationError as error:
            return reason_of(error)
        if ds is not None:
            lo, hi = day_bounds_ms(ds)
            if not lo <= event.ts < hi:
                return BadRowReason.TS_OUTSIDE_PARTITION, f"ts {event.ts} is outside ds={ds}"
        if self.known_items is not None:
            unknown = [i for i in item_ids_of(event) if i not in self.known_items]
            if unknown:
                return BadRowReason.UNKNOWN_ITEM_ID, f"item_id {unknown[0]} is not in the catalog"
        if not self.check_duplicates:
            return event
        if event.event_id in self.seen_event_ids:
            return BadRowReason.DUPLICATE_EVENT_ID, f"event_id {event.event_id} seen before"
        self.seen_event_ids.add(event.event_id)
        return event

    def _bad(self, reason: BadRowReason, detail: str, source: str, line_no: int, raw: str) -> None:
        self.report.bad_by_reason[str(reason)] += 1
        if self.quarantine is not None:
            row = {"reason": str(reason), "detail": detail, "source": source, "line": line_no, "raw": raw}
            self.quarantine.write(json.dumps(row) + "\n")

    def validate_lines(self, lines: Iterable[bytes], ds: str | None = None, source: str = "-") -> Iterator:
        """Yields the good events; counts and quarantines the bad ones."""
        for line_no, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            self.report.rows += 1
            result = self.check(line, ds)
            if isinstance(result, tuple):
                self._bad(*result, source, line_no, line.rstrip(b"\n").decode("utf-8", errors="replace"))
                continue
            self.report.good_by_type[result.event_type] += 1
            yield result

    def validate_path(self, path: Path, on_event: Callable[[object], None] | None = None) -> ValidationReport:
        """Every log file under path; a file that breaks off (truncated, corrupt) counts as one bad row of its own,
        after the lines read before the break, and the next file is read; a file that is not a log file by its
        name is reported the same way rather than skipped unseen. `on_event` sees each good event."""
        for file in unexpected_files(path):
            self.report.rows += 1
            self._bad(BadRowReason.UNEXPECTED_FILE, f"{file.name} is not a log file (*.jsonl.gz or *.jsonl): not "
                      "read", str(file), 0, "")
        for file in event_files(path):
            ds = ds_of_path(file)
            if ds is not None:
                day_bounds_ms(ds)  # a bad partition name fails once, naming it, not once per line
            self.report.files += 1
            read = 0
            try:
                with open_lines(file) as lines:
                    for line_no, event in enumerate(self.validate_lines(lines, ds, source=str(file)), start=1):
                        read = line_no
                        if on_event is not None:
                            on_event(event)
            except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
                self.report.rows += 1
                self._bad(BadRowReason.UNREADABLE_FILE, f"{file.name} breaks off after {read:,} good events: "
                          f"{type(e).__name__}: {e}", str(file), 0, "")
        return self.report


def find_catalog(events_path: Path) -> Path | None:
    """The catalog snapshot that belongs to a raw-zone events path (raw/events/ds=X -> raw/items/ds=X)."""
    path = events_path.resolve()
    ds = ds_of_path(path)
    for parent in [path, *path.parents]:
        if parent.name == "events":
            items = parent.parent / "items"
            if ds and (items / f"ds={ds}" / "items.parquet").exists():
                return items / f"ds={ds}" / "items.parquet"
            snapshots = sorted(items.glob("ds=*/items.parquet"))
            return snapshots[-1] if snapshots else None
    return None
