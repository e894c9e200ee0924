"""Servers the pipeline starts as child processes (the UIs, the at-scale stack): each in a session of its own (a
Ctrl-C reaches only the parent, which then stops them), its output in a log file, waited for until it answers, and
stopped, whole process group and every descendant, however the block that uses it is left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from edgerec.errors import EdgeRecError

HOST = "127.0.0.1"  # every server the pipeline starts listens on loopback only
STARTUP_TIMEOUT_S = 300.0  # a cold Airflow API server on a busy two-core machine takes about a minute
STOP_TIMEOUT_S = 20.0


class ServiceError(EdgeRecError):
    """A server cannot start or stopped; the message says which, and names its log."""


@dataclass(frozen=True)
class Server:
    """One server: how to start it and how to tell it answers. `health_path` is an HTTP path that answers 200
    without a login once the server is up; None means the port accepting a connection is enough; `port` None means
    a process without a port (ready once started)."""

    name: str
    command: list[str]
    env: dict[str, str]
    port: int | None
    health_path: str | None
    page: str
    log: Path
    cwd: Path | None = field(default=None, compare=False)  # default: the log's directory

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def is_ready(self) -> bool:
        if self.port is None:
            return True
        if self.health_path is None:
            return accepts(HOST, self.port)
        return answers(self.url + self.health_path)


# console scripts that only the dev extra installs, and what brings them
_DEV_TOOLS = {"moto_server": "moto[server], in the dev extra"}


def tool(name: str) -> str:
    """A console script of this environment (the venv's `airflow`, `mlflow`, ...); a clear error when it is not
    installed, naming what installs it."""
    path = Path(sys.executable).with_name(name)
    if not path.exists():
        what = _DEV_TOOLS.get(name, "the project's dependencies")
        raise ServiceError(f"`{name}` is not installed in {path.parent}: it comes with {what}; `make setup` installs "
                           f"it (pip install -e '.[dev]')")
    return str(path)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def write_secret(path: Path, text: str) -> None:
    """Create `path` readable by its owner alone, before a byte of the secret is in it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def accepts(host: str, port: int, timeout_s: float = 2.0) -> bool:
    """Whether something listens on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def start(server: Server) -> subprocess.Popen:
    server.log.parent.mkdir(parents=True, exist_ok=True)
    with server.log.open("w") as log:
        return subprocess.Popen(server.command, env=server.env, cwd=server.cwd or server.log.parent,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_until_answering(server: Server, proc: subprocess.Popen, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not server.is_ready():
        if proc.poll() is not None:
            raise ServiceError(f"the {server.name} exited (code {proc.returncode}) before answering; its log: "
                               f"{server.log}")
        if time.monotonic() > deadline:
            where = f" on {server.url}" if server.port else ""
            raise ServiceError(f"the {server.name} did not answer{where} within {timeout_s:.0f} s; its log: "
                               f"{server.log}")
        time.sleep(0.5)


def outside_group(pid: int) -> list[psutil.Process]:
    """The live processes below `pid` that left its process group: an Airflow task runner starts a session of its
    own, so the group's SIGTERM misses it (the group's members get that one signal only)."""
    found = []
    with contextlib.suppress(psutil.NoSuchProcess):
        for child in psutil.Process(pid).children(recursive=True):
            with contextlib.suppress(ProcessLookupError):
                if os.getpgid(child.pid) != pid:
                    found.append(child)
    return found


def stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM to each child's whole process group (servers fork workers) and to every descendant that left it,
    SIGKILL to what is left after a while."""
    below = [p for proc in procs for p in outside_group(proc.pid)]  # before the parents go and they are orphaned
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    for child in below:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # stray workers of a group whose leader already left
        proc.wait()
    _, alive = psutil.wait_procs(below, timeout=max(0.0, deadline - time.monotonic()))
    for child in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


@contextlib.contextmanager
def running(servers: list[Server], on_wait: Callable[[Server], None] = lambda s: None,
            timeout_s: float = STARTUP_TIMEOUT_S) -> Iterator[list[subprocess.Popen]]:
    """Start every server, wait until each answers, and stop them all on the way out, however it is left. Servers that
    need another one answering first go in a `running` block of their own inside it."""
    # Ctrl-C and SIGTERM raise KeyboardInterrupt, even where SIGINT came ignored (a command started with `&`)
    previous = {sig: signal.signal(sig, signal.default_int_handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    procs: list[subprocess.Popen] = []
    try:
        for server in servers:
            procs.append(start(server))
        for server, proc in zip(servers, procs, strict=True):
            on_wait(server)
            wait_until_answering(server, proc, timeout_s)
        yield procs
    finally:
        for sig in previous:  # a second Ctrl-C must not cut the stopping short and leave servers behind
            signal.signal(sig, signal.SIG_IGN)
        try:
            stop(procs)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def serve_until_interrupted(servers: list[Server], procs: list[subprocess.Popen]) -> None:
    """Block until Ctrl-C or SIGTERM (KeyboardInterrupt, see `running`), or fail when a server dies on its own."""
    while True:
        check_alive(servers, procs)
        time.sleep(1)


def check_alive(servers: list[Server], procs: list[subprocess.Popen]) -> None:
    for server, proc in zip(servers, procs, strict=True):
        if proc.poll() is not None:
            raise ServiceError(f"the {server.name} stopped (code {proc.returncode}); its log: {server.log}")
