"""A service that is not there fails at once, naming its URL (without a password) and the setting to fix."""

import socket

import pytest

from edgerec import registry
from edgerec.config import load_settings
from edgerec.errors import ConfigError
from spark_jobs.session import check_master_reachable

pytestmark = pytest.mark.unit


def closed_port() -> int:
    with socket.socket() as probe:  # a port just free: nothing listens there
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_spark_master_is_named_with_its_setting():
    port = closed_port()
    with pytest.raises(ConfigError) as refused:
        check_master_reachable(f"spark://127.0.0.1:{port},127.0.0.1:{port}", timeout_s=1)
    assert str(refused.value) == (
        f"the Spark master spark://127.0.0.1:{port},127.0.0.1:{port} accepts no connection "
        f"(127.0.0.1:{port}: Connection refused; 127.0.0.1:{port}: Connection refused); check EDGEREC_SPARK_MASTER "
        "and that the cluster runs")


def test_local_masters_need_no_check():
    check_master_reachable("local[*]")
    check_master_reachable("local[2]")


def test_an_unreachable_tracking_server_is_named_with_its_setting(tmp_path):
    port = closed_port()
    settings = load_settings({"EDGEREC_HOME": str(tmp_path),
                              "EDGEREC_MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}"})
    with pytest.raises(ConfigError) as refused:
        registry.connect(settings)
    assert str(refused.value).startswith(f"the MLflow tracking server http://127.0.0.1:{port} does not answer (")
    assert str(refused.value).endswith("); check EDGEREC_MLFLOW_TRACKING_URI")


def test_a_tracking_uri_with_a_password_is_refused_without_showing_it(tmp_path):
    settings = load_settings({"EDGEREC_HOME": str(tmp_path),
                              "EDGEREC_MLFLOW_TRACKING_URI": "https://admin:hunter2@mlflow.example"})
    with pytest.raises(ConfigError) as refused:
        registry.connect(settings)
    assert str(refused.value) == (
        "EDGEREC_MLFLOW_TRACKING_URI holds a password (https://admin:***@mlflow.example): give the tracking server's "
        "credentials in MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD instead")


def test_a_thrift_server_that_refuses_is_named_with_its_settings(tmp_path):
    from edgerec.marts import check_thrift_server

    port = closed_port()
    settings = load_settings({"EDGEREC_HOME": str(tmp_path), "EDGEREC_DBT_TARGET": "spark",
                              "EDGEREC_DBT_SPARK_PORT": str(port)})
    with pytest.raises(ConfigError) as refused:
        check_thrift_server(settings, timeout_s=1)
    assert str(refused.value) == (
        f"the Spark Thrift server 127.0.0.1:{port} accepts no connection (Connection refused); check "
        "EDGEREC_DBT_SPARK_HOST and EDGEREC_DBT_SPARK_PORT, or build on duckdb (EDGEREC_DBT_TARGET=duckdb)")


def test_a_console_script_that_is_not_installed_is_named_with_what_installs_it(monkeypatch, tmp_path):
    from pipeline import services

    (tmp_path / "airflow").touch()
    monkeypatch.setattr(services.sys, "executable", str(tmp_path / "python"))
    assert services.tool("airflow") == str(tmp_path / "airflow")
    with pytest.raises(services.ServiceError) as missing:
        services.tool("moto_server")
    assert str(missing.value) == (
        f"`moto_server` is not installed in {tmp_path}: it comes with moto[server], in the dev extra; `make setup` "
        "installs it (pip install -e '.[dev]')")
