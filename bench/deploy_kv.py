"""Key-value push and verify throughput: a 1.5M x 40 fp16 table (the size of the paper's brand table).

    python bench/deploy_kv.py [--rows 1500000] [--dim 40] [--redis redis://127.0.0.1:6379/0]

Writes the table in 65,536-row shards (as `edgerec deploy` does) into Redis and into SQLite, reads it back with
the checksum (as `edgerec release verify` does), and prints rows/s for each, and the Redis push rate as a share of
`redis-benchmark -P 64 -t set` (SET commands/s, pipelined 64 deep) on the same machine.
Targets: Redis push >= 50% of that rate; verify >= 1M rows/s.
(Named deploy_kv.py, not deploy.py: a script of that name would shadow the `deploy` package on import.)
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import redis

from deploy.kv import open_kv

SHARD = 65_536


def redis_benchmark_rate(url: str, n: int = 2_000_000) -> float:
    client = redis.Redis.from_url(url)
    kwargs = client.connection_pool.connection_kwargs
    out = subprocess.run(["redis-benchmark", "-h", kwargs.get("host", "127.0.0.1"), "-p", str(kwargs.get("port", 6379)),
                          "-P", "64", "-t", "set", "-n", str(n), "-q"], capture_output=True, text=True, check=True)
    return float(re.findall(r"SET: ([\d.]+) requests per second", out.stdout.replace("\r", "\n"))[-1])


def push_and_verify(url: str, rows: np.ndarray) -> tuple[float, float]:
    kv = open_kv(url)
    started = time.perf_counter()
    for lo in range(0, len(rows), SHARD):
        kv.put_rows("vbench", "brand", lo, rows[lo:lo + SHARD])
    pushed = time.perf_counter()
    scan = kv.scan("vbench", "brand", len(rows), rows.shape[1] * rows.itemsize)
    verified = time.perf_counter()
    assert scan.present == len(rows) and scan.sha256 == hashlib.sha256(rows.tobytes()).hexdigest()
    kv.delete_version("vbench", {"brand": len(rows)})
    kv.close()
    return len(rows) / (pushed - started), len(rows) / (verified - pushed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_500_000)
    parser.add_argument("--dim", type=int, default=40)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    rows = np.random.default_rng(0).standard_normal((args.rows, args.dim)).astype(np.float16)
    print(f"table: {args.rows:,} rows x {args.dim} fp16 ({rows.nbytes / 1e6:.0f} MB)")
    baseline = redis_benchmark_rate(args.redis)
    print(f"redis-benchmark -P 64 -t set: {baseline:,.0f} SET/s")
    push, verify = push_and_verify(f"{args.redis}?prefix=edgerec-bench", rows)
    print(f"redis   push {push:,.0f} rows/s ({push / baseline:.0%} of redis-benchmark; target >= 50%), "
          f"verify {verify:,.0f} rows/s (target >= 1M)")
    with tempfile.TemporaryDirectory() as tmp:
        push, verify = push_and_verify(f"sqlite:///{Path(tmp) / 'kv.sqlite'}", rows)
    print(f"sqlite  push {push:,.0f} rows/s, verify {verify:,.0f} rows/s (target >= 1M)")


if __name__ == "__main__":
    main()
