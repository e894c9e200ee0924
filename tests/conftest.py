"""Shared fixtures: tiny simulated worlds, built once per test session."""

from __future__ import annotations

import contextlib
import importlib.machinery
import json
import logging
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from edgerec.sim.config import load_sim_config
from edgerec.sim.engine import simulate_in_memory

if os.environ.get("PYTEST_XDIST_WORKER"):
    # an xdist worker's __main__ has neither a file nor a spec, which pyspark.sql.connect (imported by Great
    # Expectations) takes for a doctest run and exits; a spec named __main__ also keeps multiprocessing's spawned
    # training workers from importing a main script
    sys.modules["__main__"].__spec__ = importlib.machinery.ModuleSpec("__main__", None)


@pytest.fixture(scope="session")
def world_events():
    """About three thousand sessions of the default world."""
    return simulate_in_memory(load_sim_config(users=2000, seed=11))


@pytest.fixture(scope="session")
def spark():
    """The one Spark session of the test run."""
    from edgerec.config import QUICK_JIT, load_settings
    from spark_jobs.session import spark_session

    settings = load_settings({"EDGEREC_SPARK_SHUFFLE_PARTITIONS": "2", "EDGEREC_SPARK_DRIVER_MEMORY": "2g"})
    session = spark_session(settings, "edgerec-tests", QUICK_JIT)  # what `auto` gives the tests' tiny days
    yield session
    session.stop()
    logging.getLogger("py4j").setLevel(logging.ERROR)  # it logs at exit, after pytest closed its streams


@contextlib.contextmanager
def recording_webhook():
    """A local HTTP server that records the JSON bodies POSTed to it: (its URL, the bodies received)."""
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", received
    finally:
        server.shutdown()


@pytest.fixture
def webhook():
    with recording_webhook() as hook:
        yield hook
