"""The at-scale twins, started once per test session on 127.0.0.1 (pipeline/stack.py): opt-in, `pytest -m stack`."""

import pytest

from edgerec.config import load_settings
from pipeline import stack


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory):
    return load_settings({"EDGEREC_HOME": str(tmp_path_factory.mktemp("stack-home"))})


@pytest.fixture(scope="session")
def stack_dir(stack_settings):
    return stack.stack_directory(stack_settings)


@pytest.fixture(scope="session")
def spark_cluster(stack_settings, stack_dir):
    """A standalone master and two workers of one core each."""
    with stack.running_spark_cluster(stack_dir, stack_settings.stack.timeout_s) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def mlflow_server(stack_settings, stack_dir):
    """MLflow's tracking server behind its login, on a throwaway PostgreSQL database and moto's S3."""
    with stack.running_mlflow(stack_settings, stack_dir) as server:
        yield server
