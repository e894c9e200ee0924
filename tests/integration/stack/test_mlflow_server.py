"""MLflow as a server: runs and the registry in PostgreSQL, artifacts in S3 (moto's server), behind a login. The
daily run on the stack (conftest.daily_run) trained, registered, tagged and exported through it; the password
reached none of its outputs or logs."""

import boto3
import psycopg2
import pytest

from edgerec import registry
from edgerec.errors import ConfigError
from pipeline import stack
from pipeline.services import ServiceError
from tests.integration.conftest import DAYS

pytestmark = [pytest.mark.integration, pytest.mark.stack]


def test_the_daily_run_registered_tagged_and_exported_through_the_server(on_stack, daily_run, mlflow_server,
                                                                          stack_dir, mlflow_client_env):
    settings, _ = on_stack
    assert daily_run[1] == "success"
    version = registry.version_of_day(registry.connect(settings), DAYS[1])
    assert version.tags[registry.BLESSED] == "true" and version.tags[registry.SERVABLE] == "true"
    with psycopg2.connect(mlflow_server.backend_uri) as conn, conn.cursor() as cur:  # the store is PostgreSQL
        cur.execute("select value from model_version_tags where key = %s and version = %s and name = %s",
                    (registry.VERSION_TAG, int(version.number), registry.REGISTERED_MODEL))
        assert cur.fetchall() == [(version.id,)]
    env = mlflow_server.server.env
    s3 = boto3.client("s3", endpoint_url=env["MLFLOW_S3_ENDPOINT_URL"], region_name="us-east-1",
                      aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=stack.S3_BUCKET)["Contents"]]
    assert any(key.endswith(f"{version.run_id}/artifacts/{registry.CHECKPOINT}") for key in keys), keys
    assert (settings.bundles_dir / version.id / "manifest.json").exists()  # export downloaded the checkpoint

    password = mlflow_server.env["MLFLOW_TRACKING_PASSWORD"].encode()
    written = [*settings.home.rglob("*"), *stack_dir.rglob("*.log")]  # outputs, the servers' and tasks' logs
    assert [p for p in written if p.is_file() and password in p.read_bytes()] == []


def test_a_wrong_password_is_refused_naming_the_server_and_the_settings(on_stack, mlflow_client_env, monkeypatch):
    settings, _ = on_stack
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-the-password")
    with pytest.raises(ConfigError) as refused:
        registry.connect(settings)
    assert f"cannot open the MLflow store {settings.mlflow.tracking_uri}" in str(refused.value)
    assert "MLFLOW_TRACKING_USERNAME/PASSWORD" in str(refused.value) and "not-the-password" not in str(refused.value)


def test_a_postgresql_server_that_refuses_fails_naming_the_url_without_its_password():
    with pytest.raises(ServiceError) as refused, \
            stack.postgres_database("postgresql://postgres:hunter2@127.0.0.1:5432/no_such_database", "test"):
        pass
    message = str(refused.value)
    assert message.startswith("cannot connect to PostgreSQL at postgresql://postgres:***@127.0.0.1:5432/"
                              "no_such_database (") and "EDGEREC_STACK_POSTGRES_URL" in message
    assert "hunter2" not in message
