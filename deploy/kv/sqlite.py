"""SQLite key-value backend: the embedded default, one file in the state directory."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from itertools import repeat
from pathlib import Path

import numpy as np

from deploy.kv import KVError, KVStore, TableScan, as_row_bytes

SCHEMA = """
create table if not exists embedding_rows (
    version text not null, tbl text not null, id integer not null, value blob not null,
    primary key (version, tbl, id)
) without rowid;
create table if not exists keyed_rows (
    version text not null, tbl text not null, key text not null, value blob not null,
    primary key (version, tbl, key)
) without rowid;
create table if not exists version_index (version text primary key, record text not null);
"""


class SQLiteKV(KVStore):
    """One connection per thread (the paging API serves from a thread pool); WAL lets readers run during a push."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self._local = threading.local()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db.execute("pragma journal_mode=wal")
            self.db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as e:
            raise KVError(f"key-value store {self.url}: {e}") from e

    @property
    def db(self) -> sqlite3.Connection:
        if getattr(self._local, "db", None) is None:
            self._local.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self._local.db.execute("pragma synchronous=normal")
        return self._local.db

    def put_rows(self, version: str, table: str, start: int, rows: np.ndarray) -> None:
        values = as_row_bytes(rows).tolist()  # bytes objects, made in C
        records = zip(repeat(version), repeat(table), range(start, start + len(values)), values)
        with self.db:
            self.db.execute("begin")
            self.db.executemany("insert or replace into embedding_rows values (?, ?, ?, ?)", records)

    def get_rows(self, version: str, table: str, ids: np.ndarray, row_bytes: int) -> list[bytes | None]:
        wanted = [int(i) for i in ids]
        unique = sorted(set(wanted))
        found = dict(self.db.execute(
            f"select id, value from embedding_rows where version = ? and tbl = ? and id in "
            f"({','.join('?' * len(unique))})", (version, table, *unique)).fetchall()) if unique else {}
        return [found.get(i) for i in wanted]

    def scan(self, version: str, table: str, rows: int, row_bytes: int) -> TableScan:
        found = self.db.execute("select id, value from embedding_rows where version = ? and tbl = ? and id < ? "
                                "order by id", (version, table, rows)).fetchall()
        ids = np.fromiter((i for i, _ in found), dtype=np.int64, count=len(found))
        if len(found) == rows and (rows == 0 or ids[-1] == rows - 1):
            data = b"".join(v for _, v in found)
        else:  # rows are missing: zero bytes in their place
            buffer = np.zeros((rows, row_bytes), dtype=np.uint8)
            for i, v in found:
                buffer[i] = np.frombuffer(v, dtype=np.uint8)
            data = buffer.tobytes()
        return TableScan(len(found), hashlib.sha256(data).hexdigest())

    def put_index(self, version: str, record: dict) -> None:
        self.db.execute("insert or replace into version_index values (?, ?)", (version, json.dumps(record)))

    def get_index(self, version: str) -> dict | None:
        row = self.db.execute("select record from version_index where version = ?", (version,)).fetchone()
        return json.loads(row[0]) if row else None

    def versions(self) -> list[str]:
        return [v for (v,) in self.db.execute("select version from version_index order by version")]

    def delete_version(self, version: str, tables: dict[str, int]) -> None:
        self.db.execute("delete from version_index where version = ?", (version,))
        self.db.execute("delete from embedding_rows where version = ?", (version,))

    def put_keyed(self, version: str, table: str, keys: list[str], values: list[bytes]) -> None:
        if len(keys) != len(values):
            raise ValueError(f"{len(keys)} keys for {len(values)} values")
        with self.db:
            self.db.execute("begin")
            self.db.executemany("insert or replace into keyed_rows values (?, ?, ?, ?)",
                                zip(repeat(version), repeat(table), keys, values, strict=False))

    def get_keyed(self, version: str, table: str, keys: list[str]) -> list[bytes | None]:
        unique = sorted(set(keys))
        found = dict(self.db.execute(
            f"select key, value from keyed_rows where version = ? and tbl = ? and key in "
            f"({','.join('?' * len(unique))})", (version, table, *unique)).fetchall()) if unique else {}
        return [found.get(k) for k in keys]

    def delete_keyed(self, version: str, table: str) -> None:
        self.db.execute("delete from keyed_rows where version = ? and tbl = ?", (version, table))

    def close(self) -> None:
        if getattr(self._local, "db", None) is not None:
            self._local.db.close()
            self._local.db = None
