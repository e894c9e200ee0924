"""How the pipeline runs its servers (the UIs, the at-scale stack), with a stand-in server: it waits until each
answers, stops each whole process group on the way out, and fails naming the log of a server that dies. The real UIs:
tests/e2e/test_make_run.py; the real stack: tests/integration/stack."""

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from pipeline import services

pytestmark = pytest.mark.integration


def stand_in(tmp_path, script: str) -> services.Server:
    port = services.free_port()
    return services.Server("stand-in server", ["sh", "-c", script.format(python=sys.executable, port=port)],
                           dict(os.environ), port, "/", "/", tmp_path / "logs" / "stand-in.log")


def running_in_group(pgid: int) -> list[int]:
    """The processes of a process group that still run (a killed orphan may stay a zombie until init reaps it)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, pgrp, ...
        except OSError:  # gone meanwhile
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def group_ended(pgid: int) -> bool:
    """Whether the group's last process ends soon (a SIGKILL is delivered, not waited for, to non-children)."""
    for _ in range(100):
        if not running_in_group(pgid):
            return True
        time.sleep(0.1)
    return False


def test_servers_answer_before_the_block_runs_and_their_whole_process_groups_stop_after_it(tmp_path):
    # a server with a worker of its own, as uvicorn's and gunicorn's
    server = stand_in(tmp_path, "sleep 600 & exec {python} -m http.server {port} --bind 127.0.0.1")
    waited = []
    with services.running([server], waited.append) as [proc]:
        assert waited == [server] and services.answers(server.url + "/")
        assert len(running_in_group(proc.pid)) == 2  # the server and its worker
    assert proc.poll() is not None and group_ended(proc.pid), running_in_group(proc.pid)
    assert not services.answers(server.url + "/")


def test_a_server_that_dies_before_answering_fails_naming_its_log_and_leaves_nothing_running(tmp_path):
    server = stand_in(tmp_path, "echo 'port already in use'; exit 3")
    with pytest.raises(services.ServiceError) as failed, services.running([server], lambda s: None):
        pass
    assert str(failed.value) == f"the stand-in server exited (code 3) before answering; its log: {server.log}"
    assert server.log.read_text() == "port already in use\n"


def test_a_server_that_stops_while_serving_fails_naming_its_log(tmp_path):
    server = stand_in(tmp_path, "exec {python} -m http.server {port} --bind 127.0.0.1")
    stopped = r"the stand-in server stopped \(code -9\); its log: .*stand-in.log"
    with pytest.raises(services.ServiceError, match=stopped), services.running([server], lambda s: None) as [proc]:
        proc.kill()
        services.serve_until_interrupted([server], [proc])


def test_a_worker_in_a_session_of_its_own_is_stopped_too(tmp_path):
    # an Airflow task runner: a descendant of the server outside its process group
    pid_file = tmp_path / "runner.pid"
    server = stand_in(tmp_path, f"setsid sh -c 'echo $$ > {pid_file}; exec sleep 600' & "
                                "exec {python} -m http.server {port} --bind 127.0.0.1")
    with services.running([server]) as [proc]:
        for _ in range(100):
            if pid_file.exists() and pid_file.read_text().strip():
                break
            time.sleep(0.1)
        runner = int(pid_file.read_text())
        assert runner not in running_in_group(proc.pid) and Path(f"/proc/{runner}").exists()
    assert group_ended(runner), f"the runner {runner} still runs"


def test_a_second_ctrl_c_does_not_cut_the_stopping_short(tmp_path, monkeypatch):
    # a server that ignores SIGTERM: stopping it waits STOP_TIMEOUT_S, then kills it
    server = stand_in(tmp_path, "trap '' TERM; exec {python} -m http.server {port} --bind 127.0.0.1")
    monkeypatch.setattr(services, "STOP_TIMEOUT_S", 2.0)
    before = signal.getsignal(signal.SIGINT)
    second = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))  # the second Ctrl-C, while stopping
    try:
        with pytest.raises(KeyboardInterrupt), services.running([server]) as [proc]:
            second.start()
            raise KeyboardInterrupt  # the first Ctrl-C
    finally:
        second.cancel()
        second.join()
    assert proc.poll() is not None and group_ended(proc.pid), running_in_group(proc.pid)
    assert signal.getsignal(signal.SIGINT) is before
