"""Training's worker processes start under any parent, an Airflow task included, whose __main__ script cannot be
imported again (the `airflow` console script needs the metadata database a task may not reach)."""

import os
import subprocess
import sys

import pytest

from edgerec.config import REPO_ROOT

pytestmark = pytest.mark.unit

PARENT = """
import multiprocessing, os, sys
from concurrent.futures import ProcessPoolExecutor
if __name__ != "__main__":
    raise RuntimeError("the parent's script ran again in a worker")
from training.runner import _no_main_script_in_workers
guard = _no_main_script_in_workers() if sys.argv[1] == "guarded" else open(os.devnull)
with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
    with guard:
        future = pool.submit(os.getpid)
    print("worker", future.result() != os.getpid(), "script kept", __file__ == sys.argv[0])
"""


def run_parent(tmp_path, mode: str) -> subprocess.CompletedProcess:
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    return subprocess.run([sys.executable, str(script), mode], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=300)


def test_workers_start_without_running_the_parents_script_again(tmp_path):
    done = run_parent(tmp_path, "guarded")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "worker True script kept True\n"


def test_without_the_guard_the_parents_script_breaks_the_pool(tmp_path):
    done = run_parent(tmp_path, "unguarded")
    assert done.returncode != 0
    assert "the parent's script ran again in a worker" in done.stderr and "BrokenProcessPool" in done.stderr


ALLOCATOR_PARENT = """
import multiprocessing, os
from concurrent.futures import ProcessPoolExecutor
from training.runner import _allocator_kept_in_workers
NAMES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")
def environment():
    return [os.environ.get(name) for name in NAMES]
if __name__ == "__main__":
    os.environ["MALLOC_TOP_PAD_"] = "4096"  # the user's own value
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        with _allocator_kept_in_workers():
            future = pool.submit(environment)
        print("worker", future.result())
    print("parent", environment())
"""


def test_workers_keep_freed_memory_unless_the_user_set_the_allocator_otherwise(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(ALLOCATOR_PARENT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    done = subprocess.run([sys.executable, str(script)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                          env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["worker ['4294967296', '4294967296', '4096']",
                                        "parent [None, None, '4096']"]
