"""The phone's behaviour store (SQLite): each event's stored encodings and match codes, the behaviour GRUs' state
after the last event, and the per-item exposure counters that IE's e1..e5 accumulate.

Encodings belong to the model version that computed them; a new bundle starts a fresh history for itself.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

SCHEMA = """
create table if not exists encodings (
    user_id text not null, behaviour text not null, version text not null, ts integer not null,
    item_id integer not null, item blob not null, fused blob not null, match_codes blob not null);
create index if not exists encodings_by_user on encodings (user_id, behaviour, version, ts);
create table if not exists states (
    user_id text not null, behaviour text not null, version text not null, state blob not null,
    primary key (user_id, behaviour, version));
create table if not exists exposure_counters (
    user_id text not null, item_id integer not null, duration_ms real not null, count integer not null,
    max_scroll_speed real not null, max_scroll_duration_ms real not null, scroll_count real not null,
    primary key (user_id, item_id));
"""


class BehaviourStore:
    def __init__(self, path: Path | str = ":memory:"):
        self.db = sqlite3.connect(str(path), isolation_level=None)  # autocommit: each event is durable alone
        columns = {row[1] for row in self.db.execute("pragma table_info(encodings)")}
        if columns and "match_codes" not in columns:
            # a store written by runtime 2: its encodings lack the match codes that format-3 bundles read, and no
            # format-3 bundle computed them anyway (encodings belong to the version that made them)
            self.db.execute("drop table encodings")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def count_exposure(self, user_id: str, item_id: int, duration_ms: float, scroll_speed: float,
                       scroll_duration_ms: float, scroll_count: float) -> tuple[float, int, float, float, float]:
        """Add one exposure to the item's counters; returns e1..e5 including it."""
        self.db.execute(
            "insert into exposure_counters values (?, ?, ?, 1, ?, ?, ?) on conflict (user_id, item_id) do update set "
            "duration_ms = duration_ms + excluded.duration_ms, count = count + 1, "
            "max_scroll_speed = max(max_scroll_speed, excluded.max_scroll_speed), "
            "max_scroll_duration_ms = max(max_scroll_duration_ms, excluded.max_scroll_duration_ms), "
            "scroll_count = scroll_count + excluded.scroll_count",
            (user_id, item_id, duration_ms, scroll_speed, scroll_duration_ms, scroll_count))
        return self.db.execute("select duration_ms, count, max_scroll_speed, max_scroll_duration_ms, scroll_count "
                               "from exposure_counters where user_id = ? and item_id = ?",
                               (user_id, item_id)).fetchone()

    def state(self, user_id: str, behaviour: str, version: str) -> np.ndarray | None:
        row = self.db.execute("select state from states where user_id = ? and behaviour = ? and version = ?",
                              (user_id, behaviour, version)).fetchone()
        return None if row is None else np.frombuffer(row[0], dtype=np.float32)

    def append(self, user_id: str, behaviour: str, version: str, ts: int, item_id: int, item: np.ndarray,
               fused: np.ndarray, match_codes: np.ndarray, state: np.ndarray, keep_after_ts: int) -> None:
        """Store one event's encodings and match codes and the state after it; forget events older than
        `keep_after_ts`."""
        self.db.execute("insert into encodings values (?, ?, ?, ?, ?, ?, ?, ?)",
                        (user_id, behaviour, version, ts, item_id, item.astype(np.float32).tobytes(),
                         fused.astype(np.float32).tobytes(), match_codes.astype(np.int64).tobytes()))
        self.db.execute("insert or replace into states values (?, ?, ?, ?)",
                        (user_id, behaviour, version, state.astype(np.float32).tobytes()))
        self.db.execute("delete from encodings where user_id = ? and behaviour = ? and ts < ?",
                        (user_id, behaviour, keep_after_ts))

    def recent(self, user_id: str, behaviour: str, version: str, since_ts: int, before_ts: int, limit: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(ts [L], item encodings [L, H], fused encodings [L, 2H], match codes [L, M]) of the last `limit` events
        in [since_ts, before_ts], oldest first."""
        rows = self.db.execute(
            "select ts, item, fused, match_codes from encodings where user_id = ? and behaviour = ? and version = ? "
            "and ts >= ? and ts <= ? order by ts desc, rowid desc limit ?",
            (user_id, behaviour, version, since_ts, before_ts, limit)).fetchall()[::-1]
        ts = np.array([r[0] for r in rows], dtype=np.int64)
        if not rows:
            return ts, np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32), np.zeros((0, 0), np.int64)
        return ts, *(np.stack([np.frombuffer(r[i], dtype=dtype) for r in rows])
                     for i, dtype in ((1, np.float32), (2, np.float32), (3, np.int64)))
