"""The release audit log: append-only JSON lines, each carrying the sha256 of the line before it (`prev`), so an
edited, removed or reordered line shows (`problems`). Appends hold an exclusive lock on the file.

Channel moves are written twice: an `intent` before the pointer is written and `done` after the MLflow alias
moved, both with the pointer's sequence number. The log is the record of truth for the channels: `channel_state`
says which sequence each channel's pointer must carry and whether an action was left half-done.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

GENESIS = "0" * 64
CHANNEL_ACTIONS = ("promote", "rollback", "repair")


def _digest(line: bytes) -> str:
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()


def append(path: Path, by: str, action: str, **fields) -> dict:
    """One record: who, when, what, chained to the record before it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        lines = f.read().splitlines()
        entry = {"at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "by": by, "action": action, **fields,
                 "prev": _digest(lines[-1]) if lines else GENESIS}
        f.write(json.dumps(entry).encode() + b"\n")
    return entry


def entries(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def problems(path: Path) -> list[str]:
    """Where the chain breaks: a line whose `prev` is not the hash of the line before it."""
    lines = path.read_bytes().splitlines() if path.exists() else []
    found, prev = [], GENESIS
    for number, line in enumerate(lines, 1):
        try:
            recorded = json.loads(line).get("prev")
        except (json.JSONDecodeError, AttributeError):
            recorded = None
        if recorded != prev:
            found.append(f"{path} line {number}: does not follow line {number - 1} (edited, removed or reordered)")
        prev = _digest(line)
    return found


@dataclass(frozen=True)
class ChannelState:
    """What the audit log says of one channel: the last completed move and an unfinished one, if any."""

    applied: dict | None  # the last `done` record (its sequence is the pointer's)
    pending: dict | None  # an `intent` with no `done` or `abandoned` after it
    highest: int = 0  # the highest sequence ever recorded: the next move takes the one after, never an old one

    @property
    def next_sequence(self) -> int:
        return self.highest + 1


def channel_state(path: Path, channel: str) -> ChannelState:
    applied = pending = None
    highest = 0
    for record in entries(path):
        if record.get("channel") != channel or record.get("action") not in CHANNEL_ACTIONS:
            continue
        highest = max(highest, int(record.get("sequence", 0)))
        phase = record.get("phase")
        if phase == "intent":
            pending = record
        elif phase == "done":
            applied, pending = record, None
        elif phase == "abandoned":
            pending = None
    return ChannelState(applied, pending, highest)
