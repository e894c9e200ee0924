"""The key-value store of the cloud-side embedding rows (docs/design.md): rows keyed by (version, table, id), fp16
little-endian by default, plus one index record per version (row counts, dims, dtypes and checksums per table).

One small interface, three backends chosen by URL:
    sqlite:///path/kv.sqlite                               embedded default (in the state directory)
    redis://host:6379/0[?prefix=edgerec]                   one hash per block of rows, written in bulk
    dynamodb://table[?endpoint_url=...&region=...]         one item per row, batch writes with retries
Rows are opaque fixed-width bytes here; the index record says how to read them.

Beside the rows by id, rows by string key (`put_keyed`): the recall's user vectors, keyed by user id, one table per
kind (batch, nrt) and recall version.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import numpy as np

from edgerec.errors import EdgeRecError

INDEX_FORMAT = 1


class KVError(EdgeRecError):
    """The store cannot be reached or answered something unexpected; the message names the store."""


@dataclass(frozen=True)
class TableScan:
    """A whole table read back in id order: how many rows are present, and the sha256 over their bytes
    (missing rows read as zero bytes, so the sum cannot match while any is missing)."""

    present: int
    sha256: str


class KVStore(abc.ABC):
    """Embedding rows of model versions. Writes are idempotent: the same rows under the same keys."""

    url: str

    @abc.abstractmethod
    def put_rows(self, version: str, table: str, start: int, rows: np.ndarray) -> None:
        """Rows [n, dim] become ids start .. start+n-1 of (version, table)."""

    @abc.abstractmethod
    def get_rows(self, version: str, table: str, ids: np.ndarray, row_bytes: int) -> list[bytes | None]:
        """The rows of these ids, None where a row is missing."""

    @abc.abstractmethod
    def scan(self, version: str, table: str, rows: int, row_bytes: int) -> TableScan:
        """Read ids 0 .. rows-1 of (version, table) in order."""

    @abc.abstractmethod
    def put_index(self, version: str, record: dict) -> None:
        """The version's index record: written after its rows, so its presence means the push completed."""

    @abc.abstractmethod
    def get_index(self, version: str) -> dict | None: ...

    @abc.abstractmethod
    def versions(self) -> list[str]:
        """Versions that have an index record."""

    @abc.abstractmethod
    def delete_version(self, version: str, tables: dict[str, int]) -> None:
        """Remove the index record first (the version stops being served), then the rows of each table."""

    @abc.abstractmethod
    def put_keyed(self, version: str, table: str, keys: list[str], values: list[bytes]) -> None:
        """values[i] becomes the row of keys[i] in (version, table), replacing what was there."""

    @abc.abstractmethod
    def get_keyed(self, version: str, table: str, keys: list[str]) -> list[bytes | None]:
        """The rows of these keys, None where one is missing."""

    @abc.abstractmethod
    def delete_keyed(self, version: str, table: str) -> None:
        """Remove every keyed row of (version, table)."""

    def close(self) -> None:  # noqa: B027 (optional)
        """Release connections."""


def row_dtype(dim: int, dtype: str) -> np.dtype:
    """One row as a single fixed-width value, little-endian."""
    return np.dtype((np.void, dim * np.dtype(dtype).newbyteorder("<").itemsize))


def as_row_bytes(rows: np.ndarray) -> np.ndarray:
    """[n, dim] -> [n] of fixed-width little-endian bytes (a view when already so)."""
    rows = np.ascontiguousarray(rows, dtype=rows.dtype.newbyteorder("<"))
    return rows.view(row_dtype(rows.shape[1], rows.dtype.str)).reshape(len(rows))


def open_kv(url: str) -> KVStore:
    """The store a URL names (see the module docstring)."""
    parts = urlsplit(url)
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if parts.scheme == "sqlite":
        from deploy.kv.sqlite import SQLiteKV

        return SQLiteKV(url.split("?")[0].removeprefix("sqlite:///"))  # sqlite:////abs/path or sqlite:///rel/path
    if parts.scheme in ("redis", "rediss"):
        from deploy.kv.redis import RedisKV

        prefix = options.pop("prefix", "edgerec")
        return RedisKV(url.split("?")[0], prefix=prefix)
    if parts.scheme == "dynamodb":
        from deploy.kv.dynamodb import DynamoKV

        return DynamoKV(parts.netloc, endpoint_url=options.get("endpoint_url"), region=options.get("region"))
    raise KVError(f"unknown key-value store {url!r}: use sqlite:///path, redis://host:port/db or dynamodb://table")
