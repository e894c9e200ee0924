"""MLflow as a server: runs and the registry in PostgreSQL, artifacts in S3 (moto's server), behind a login.
Training registers, the gates tag and export downloads as with the embedded store; the password reaches no output."""

import json
import shutil

import boto3
import psycopg2
import pytest

from edgerec import registry
from edgerec.errors import ConfigError
from pipeline import stack
from pipeline.services import ServiceError
from tests.integration.conftest import DAYS
from training.pipeline import export_day, gate_day, train_day

pytestmark = [pytest.mark.integration, pytest.mark.stack]


@pytest.fixture
def on_server(marts, mlflow_server, tmp_path, monkeypatch):
    """Settings of a state directory whose registry is the tracking server (the marts copied in)."""
    shared, home = marts[0], tmp_path / "state"
    home.mkdir()
    shutil.copy(shared.duckdb_path, home / shared.duckdb_path.name)
    shutil.copytree(shared.warehouse / "feature_spec", home / "warehouse" / "feature_spec")
    for name, value in mlflow_server.env.items():
        monkeypatch.setenv(name, value)
    return shared.replace(home=home, train={"epochs": 1, "models": "crban_hubsm_ie_ipv"}, gate={"min_gauc": 0.0},
                          mlflow={"tracking_uri": mlflow_server.tracking_uri})


def test_training_registers_the_gates_tag_and_export_downloads_through_the_server(on_server, mlflow_server):
    settings = on_server
    summary = train_day(settings, DAYS[1])
    assert gate_day(settings, DAYS[1]).blessed
    bundle = export_day(settings, DAYS[1])
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["mlflow"]["version"] == summary["version"]

    version = registry.get_version(registry.connect(settings), summary["version"])
    assert version.tags[registry.BLESSED] == "true" and version.id == summary["version_id"]
    with psycopg2.connect(mlflow_server.backend_uri) as conn, conn.cursor() as cur:  # the store is PostgreSQL
        cur.execute("select tags.value from model_version_tags tags where tags.key = %s and tags.version = %s",
                    (registry.VERSION_TAG, int(summary["version"])))
        assert cur.fetchall() == [(summary["version_id"],)]
    s3 = boto3.client("s3", endpoint_url=mlflow_server.server.env["MLFLOW_S3_ENDPOINT_URL"],
                      region_name="us-east-1", aws_access_key_id=mlflow_server.server.env["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=mlflow_server.server.env["AWS_SECRET_ACCESS_KEY"])
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=stack.S3_BUCKET)["Contents"]]
    assert any(key.endswith(f"{version.run_id}/artifacts/{registry.CHECKPOINT}") for key in keys), keys

    password = mlflow_server.env["MLFLOW_TRACKING_PASSWORD"]
    leaked = [p for p in settings.home.rglob("*") if p.is_file() and password.encode() in p.read_bytes()]
    assert leaked == []


def test_a_wrong_password_is_refused_naming_the_server_and_the_settings(on_server, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-the-password")
    with pytest.raises(ConfigError) as refused:
        registry.connect(on_server)
    assert f"cannot open the MLflow store {on_server.mlflow.tracking_uri}" in str(refused.value)
    assert "MLFLOW_TRACKING_USERNAME/PASSWORD" in str(refused.value) and "not-the-password" not in str(refused.value)


def test_a_postgresql_server_that_refuses_fails_naming_the_url_without_its_password():
    with pytest.raises(ServiceError) as refused, \
            stack.postgres_database("postgresql://postgres:hunter2@127.0.0.1:5432/no_such_database", "test"):
        pass
    message = str(refused.value)
    assert message.startswith("cannot connect to PostgreSQL at postgresql://postgres:***@127.0.0.1:5432/"
                              "no_such_database (") and "EDGEREC_STACK_POSTGRES_URL" in message
    assert "hunter2" not in message
