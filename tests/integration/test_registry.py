"""The registry's experiment on the embedded store (MLflow on SQLite in the state directory)."""

import subprocess
import sys
import time

import pytest
from mlflow.exceptions import MlflowException

from edgerec import registry
from edgerec.config import load_settings

# a task's process: its imports done, it says so and waits for the start signal, then opens the store
OPEN_AT_SIGNAL = """
import pathlib, sys, time
from edgerec import registry
from edgerec.config import load_settings
settings = load_settings({"EDGEREC_HOME": sys.argv[1]})
pathlib.Path(sys.argv[2]).touch()
while not pathlib.Path(sys.argv[3]).exists():
    time.sleep(0.005)
registry.connect(settings)
"""

pytestmark = pytest.mark.integration


def test_the_task_that_creates_the_experiment_second_takes_the_first_ones(tmp_path):
    """train and train_recall run side by side on a scheduler: both may find the experiment missing on a first day."""
    import mlflow

    registry.connect(load_settings({"EDGEREC_HOME": str(tmp_path)}))  # the first task creates it
    first = mlflow.get_experiment_by_name(registry.EXPERIMENT).experiment_id
    registry.create_experiment(registry.EXPERIMENT, None)  # the second, having found it missing a moment before
    assert [e.experiment_id for e in mlflow.search_experiments() if e.name == registry.EXPERIMENT] == [first]


def test_any_other_refusal_to_create_the_experiment_still_fails(tmp_path):
    registry.connect(load_settings({"EDGEREC_HOME": str(tmp_path)}))
    with pytest.raises(MlflowException, match="name"):
        registry.create_experiment("", None)


def test_tasks_opening_a_new_embedded_store_at_the_same_moment_all_open_it(tmp_path):
    """The first opening creates the SQLite store's tables: four processes at once (each would migrate it; one
    failed so, unlocked) all get the one experiment."""
    import mlflow

    home, go = tmp_path / "home", tmp_path / "go"
    tasks = [subprocess.Popen([sys.executable, "-c", OPEN_AT_SIGNAL, str(home), str(tmp_path / f"ready-{i}"), str(go)],
                              stderr=subprocess.PIPE, text=True) for i in range(4)]
    while not all((tmp_path / f"ready-{i}").exists() for i in range(4)):
        assert all(task.poll() is None for task in tasks), [t.stderr.read() for t in tasks if t.poll() is not None]
        time.sleep(0.05)
    go.touch()
    errors = [task.communicate(timeout=120)[1] for task in tasks]
    assert [task.returncode for task in tasks] == [0] * 4, errors
    registry.connect(load_settings({"EDGEREC_HOME": str(home)}))
    assert len([e for e in mlflow.search_experiments() if e.name == registry.EXPERIMENT]) == 1
