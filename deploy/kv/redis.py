"""Redis key-value backend, laid out and written for throughput.

    {prefix}:emb:{version}:{table}:{block}   a hash per block of BLOCK_ROWS ids: field = id as 10 digits, value =
                                             the row's bytes (HGET edgerec:emb:v..:brand:0 0000000042)
    {prefix}:idx:{version}                   the version's index record (JSON)
    {prefix}:versions                        the set of versions with an index record
    {prefix}:keyed:{version}:{table}         a hash of keyed rows (the recall's user vectors): field = the key
A block is written by one HSET of all its rows, and a whole shard's blocks go out pipelined. The commands are
packed in bulk with numpy (fixed-width fields) rather than argument by argument: packing, not the server, is
what limits a Python client here.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import redis

from deploy.kv import KVError, KVStore, TableScan, as_row_bytes
from edgerec.redact import redact_url

BLOCK_ROWS = 4096
ID_DIGITS = 10
PIPELINE_BYTES = 8 << 20  # replies are read after at most this many bytes of commands


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def _fields(ids: np.ndarray) -> np.ndarray:
    """ids -> fixed-width 10-digit byte strings."""
    return np.char.zfill(np.asarray(ids, dtype=np.int64).astype(f"S{ID_DIGITS}"), ID_DIGITS)


def pack_hset(key: bytes, ids: np.ndarray, values: np.ndarray) -> bytes:
    """One RESP `HSET key id value id value ...` for fixed-width values ([n] of np.void), built in one pass."""
    row_bytes = values.dtype.itemsize
    between = b"\r\n$%d\r\n" % row_bytes
    layout = np.dtype([("head", f"S{len(b'$%d' % ID_DIGITS) + 2}"), ("id", f"S{ID_DIGITS}"),
                       ("between", f"S{len(between)}"), ("value", values.dtype), ("end", "S2")])
    body = np.empty(len(ids), dtype=layout)
    body["head"], body["id"], body["between"], body["end"] = b"$%d\r\n" % ID_DIGITS, _fields(ids), between, b"\r\n"
    body["value"] = values
    return b"*%d\r\n" % (2 + 2 * len(ids)) + _bulk(b"HSET") + _bulk(key) + body.tobytes()


def pack_hmget(key: bytes, ids: np.ndarray) -> bytes:
    layout = np.dtype([("head", f"S{len(b'$%d' % ID_DIGITS) + 2}"), ("id", f"S{ID_DIGITS}"), ("end", "S2")])
    body = np.empty(len(ids), dtype=layout)
    body["head"], body["id"], body["end"] = b"$%d\r\n" % ID_DIGITS, _fields(ids), b"\r\n"
    return b"*%d\r\n" % (2 + len(ids)) + _bulk(b"HMGET") + _bulk(key) + body.tobytes()


class RedisKV(KVStore):
    def __init__(self, url: str, prefix: str = "edgerec"):
        self.url, self.prefix = redact_url(f"{url}?prefix={prefix}"), prefix  # its name: no password in it
        self.client = redis.Redis.from_url(url, socket_timeout=60, socket_connect_timeout=5)

    def _key(self, *parts) -> bytes:
        return ":".join([self.prefix, *map(str, parts)]).encode()

    def _block_key(self, version: str, table: str, block: int) -> bytes:
        return self._key("emb", version, table, block)

    def _raw(self, commands: list[bytes]) -> list:
        """Send packed commands pipelined, reading replies every PIPELINE_BYTES; KVError when Redis goes away."""
        pool = self.client.connection_pool
        try:
            conn = pool.get_connection()
        except (redis.ConnectionError, redis.TimeoutError) as e:
            raise KVError(f"key-value store {self.url}: {e}") from e
        replies, pending, sent = [], 0, 0
        try:
            for command in commands:
                conn.send_packed_command([command], check_health=False)
                pending, sent = pending + 1, sent + len(command)
                if sent >= PIPELINE_BYTES:
                    replies += [conn.read_response() for _ in range(pending)]
                    pending, sent = 0, 0
            replies += [conn.read_response() for _ in range(pending)]
        except (redis.ConnectionError, redis.TimeoutError, OSError) as e:
            conn.disconnect()
            raise KVError(f"key-value store {self.url}: {e}") from e
        finally:
            pool.release(conn)
        for reply in replies:
            if isinstance(reply, redis.ResponseError):
                raise KVError(f"key-value store {self.url}: {reply}")
        return replies

    def _call(self, method, *args):
        try:
            return method(*args)
        except (redis.ConnectionError, redis.TimeoutError) as e:
            raise KVError(f"key-value store {self.url}: {e}") from e

    def put_rows(self, version: str, table: str, start: int, rows: np.ndarray) -> None:
        values = as_row_bytes(rows)
        ids = np.arange(start, start + len(values))
        commands = []
        for block in range(start // BLOCK_ROWS, (start + len(values) - 1) // BLOCK_ROWS + 1):
            lo, hi = max(block * BLOCK_ROWS, start) - start, min((block + 1) * BLOCK_ROWS, start + len(values)) - start
            commands.append(pack_hset(self._block_key(version, table, block), ids[lo:hi], values[lo:hi]))
        self._raw(commands)

    def get_rows(self, version: str, table: str, ids: np.ndarray, row_bytes: int) -> list[bytes | None]:
        ids = np.asarray(ids, dtype=np.int64)
        blocks = ids // BLOCK_ROWS
        order = np.argsort(blocks, kind="stable")
        bounds = np.flatnonzero(np.diff(blocks[order])) + 1
        groups = np.split(order, bounds) if len(ids) else []
        replies = self._raw([pack_hmget(self._block_key(version, table, int(blocks[g[0]])), ids[g]) for g in groups])
        out: list[bytes | None] = [None] * len(ids)
        for group, values in zip(groups, replies, strict=True):
            for i, v in zip(group, values, strict=True):
                out[i] = v
        return out

    def scan(self, version: str, table: str, rows: int, row_bytes: int) -> TableScan:
        digest, present, zero = hashlib.sha256(), 0, bytes(row_bytes)
        blocks = range((rows + BLOCK_ROWS - 1) // BLOCK_ROWS)
        for lo in range(0, len(blocks), 64):  # 64 blocks per round trip
            replies = self._raw([pack_hmget(self._block_key(version, table, b), np.arange(
                b * BLOCK_ROWS, min((b + 1) * BLOCK_ROWS, rows))) for b in blocks[lo:lo + 64]])
            for values in replies:
                missing = values.count(None)
                present += len(values) - missing
                digest.update(b"".join(values) if not missing else b"".join(v or zero for v in values))
        return TableScan(present, digest.hexdigest())

    def put_index(self, version: str, record: dict) -> None:
        pipe = self.client.pipeline()
        pipe.set(self._key("idx", version), json.dumps(record))
        pipe.sadd(self._key("versions"), version)
        self._call(pipe.execute)

    def get_index(self, version: str) -> dict | None:
        raw = self._call(self.client.get, self._key("idx", version))
        return json.loads(raw) if raw else None

    def versions(self) -> list[str]:
        return sorted(v.decode() for v in self._call(self.client.smembers, self._key("versions")))

    def delete_version(self, version: str, tables: dict[str, int]) -> None:
        pipe = self.client.pipeline()
        pipe.srem(self._key("versions"), version)
        pipe.delete(self._key("idx", version))
        self._call(pipe.execute)
        for table, rows in tables.items():
            keys = [self._block_key(version, table, b) for b in range((rows + BLOCK_ROWS - 1) // BLOCK_ROWS)]
            for lo in range(0, len(keys), 1000):
                self._call(self.client.unlink, *keys[lo:lo + 1000])

    def put_keyed(self, version: str, table: str, keys: list[str], values: list[bytes]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for lo in range(0, len(keys), 1000):
            pipe.hset(self._key("keyed", version, table), mapping=dict(zip(keys[lo:lo + 1000], values[lo:lo + 1000],
                                                                            strict=True)))
        self._call(pipe.execute)

    def get_keyed(self, version: str, table: str, keys: list[str]) -> list[bytes | None]:
        return self._call(self.client.hmget, self._key("keyed", version, table), keys) if keys else []

    def delete_keyed(self, version: str, table: str) -> None:
        self._call(self.client.unlink, self._key("keyed", version, table))

    def close(self) -> None:
        self.client.close()
