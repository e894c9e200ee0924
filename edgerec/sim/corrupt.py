"""Realistic bad rows, injected on purpose so that every stage's handling of them can be tested."""

from __future__ import annotations

import numpy as np
import orjson

from edgerec.contracts import BadRowReason

DAY_MS = 86_400_000
# each kind of corruption and the reason the validator must give for it
CORRUPTION_REASONS: dict[str, BadRowReason] = {
    "truncated_json": BadRowReason.INVALID_JSON,
    "missing_field": BadRowReason.MISSING_FIELD,
    "wrong_type": BadRowReason.WRONG_TYPE,
    "negative_duration": BadRowReason.OUT_OF_RANGE,
    "duplicate_event_id": BadRowReason.DUPLICATE_EVENT_ID,
    "ts_outside_partition": BadRowReason.TS_OUTSIDE_PARTITION,
    "unknown_item_id": BadRowReason.UNKNOWN_ITEM_ID,
}
_DURATION_FIELD = {"exposure": "exposure_duration_ms", "page_view": "ipv_duration_ms"}


def dumps(event: dict) -> bytes:
    return orjson.dumps(event)


def applicable_kinds(event: dict) -> list[bytes]:
    return [k for k in CORRUPTION_REASONS
            if k != "negative_duration" or event["event_type"] in _DURATION_FIELD]


def corrupt(event: dict, kind: str, rng: np.random.Generator, unknown_item_id: int) -> list[bytes]:
    """The line(s) a faulty client or pipe would write instead of this event."""
    event = dict(event)
    if kind == "truncated_json":
        line = dumps(event)
        return [line[: int(rng.integers(1, len(line) - 1))]]
    if kind == "missing_field":
        required = ["event_id", "event_type", "user_id", "ts"] + (["item_id"] if "item_id" in event else [])
        del event[required[int(rng.integers(len(required)))]]
    elif kind == "wrong_type":
        event["ts"] = str(event["ts"])
    elif kind == "negative_duration":
        field = _DURATION_FIELD[event["event_type"]]
        event[field] = -max(1, event[field])
    elif kind == "duplicate_event_id":
        line = dumps(event)
        return [line, line]  # a client retry resends the same event
    elif kind == "ts_outside_partition":
        event["ts"] += int(rng.choice([-1, 1])) * DAY_MS
    elif kind == "unknown_item_id":
        if "item_id" in event:
            event["item_id"] = unknown_item_id
        elif event["event_type"] == "page_request":
            event["candidates"] = [dict(event["candidates"][0], item_id=unknown_item_id), *event["candidates"][1:]]
        else:
            event["order"] = [unknown_item_id, *event["order"][1:]]
    else:
        raise ValueError(f"unknown corruption kind {kind!r}; known: {sorted(CORRUPTION_REASONS)}")
    return [dumps(event)]
