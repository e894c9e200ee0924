"""Serve the paging API on loopback (uvicorn in a thread) and measure it: p50/p99 latency and requests/s."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import uvicorn
from fastapi import FastAPI

from deploy.serving.auth import DeviceTokens


class LoopbackServer:
    def __init__(self, app: FastAPI):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def load_test(url: str, version: str | None, requests: int = 1000, concurrency: int = 4, users: int = 300,
              tokens: DeviceTokens | None = None) -> dict:
    """POST /v1/page `requests` times from `concurrency` clients (each device with its token when the API requires
    them); latency percentiles (ms) and throughput."""
    headers = {u: {"Authorization": f"Bearer {tokens.issue(f'dev-{u:07d}')}"} if tokens else {} for u in range(users)}

    def one(i: int) -> float:
        started = time.perf_counter()
        user = i % users
        answer = client.post(f"{url}/v1/page", json={"user_id": f"u{user:07d}", "device_id": f"dev-{user:07d}",
                                                     "model_version": version, "page_no": i // users},
                             headers=headers[user])
        answer.raise_for_status()
        return time.perf_counter() - started

    with httpx.Client(timeout=30) as client:
        for i in range(min(20, requests)):  # warm-up: caches and connections
            one(i)
        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            times = np.array(list(pool.map(one, range(requests)))) * 1000.0
        wall = time.perf_counter() - started
    return {"requests": requests, "concurrency": concurrency, "p50_ms": float(np.percentile(times, 50)),
            "p99_ms": float(np.percentile(times, 99)), "requests_per_s": requests / wall}
