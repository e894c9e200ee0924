"""The at-scale twin of each embedded default, started on one machine: throwaway PostgreSQL databases, S3 (moto's
server), an MLflow tracking server on both, a Spark standalone cluster with its Thrift server, and Airflow's
scheduler and API server on PostgreSQL. `edgerec stack run` (`make run-stack`) and the tests marked `stack` use it.

Every server listens on 127.0.0.1, on a free port, behind a secret generated for this stack (kept in files of
mode 0600 under the stack's directory, never printed); its output goes to a log in that directory.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import subprocess
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from edgerec.config import Settings
from edgerec.redact import redact_url
from pipeline.services import HOST, Server, ServiceError, free_port, running, tool, write_secret

S3_BUCKET = "edgerec-mlflow"  # the tracking server's artifacts
CONNECT_TIMEOUT_S = 10


# -- PostgreSQL -------------------------------------------------------------------------------------------------------


def _admin_connection(admin_url: str):
    import psycopg2

    try:
        conn = psycopg2.connect(admin_url, connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg2.Error as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ServiceError(f"cannot connect to PostgreSQL at {redact_url(admin_url)} ({reason}); set "
                           "EDGEREC_STACK_POSTGRES_URL to a database whose user may create databases") from None
    conn.autocommit = True  # CREATE/DROP DATABASE cannot run in a transaction
    return conn


@contextlib.contextmanager
def postgres_database(admin_url: str, purpose: str) -> Iterator[str]:
    """A new database on the server of `admin_url`, dropped on the way out; yields its URL."""
    name = f"edgerec_{purpose}_{uuid.uuid4().hex[:10]}"
    conn = _admin_connection(admin_url)
    try:
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        parts = urllib.parse.urlsplit(admin_url)
        yield urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # FORCE: a server that died holding it
        conn.close()


# -- S3 (moto's server) and the MLflow tracking server ----------------------------------------------------------------


@dataclass(frozen=True)
class S3:
    endpoint: str
    env: dict[str, str]  # what a client needs: endpoint and credentials


def moto_s3(directory: Path) -> tuple[Server, S3]:
    """moto's server standing in for S3. It checks no signature (a local stand-in for a managed service); it listens
    on loopback only."""
    port = free_port()
    endpoint = f"http://{HOST}:{port}"
    env = {"AWS_ACCESS_KEY_ID": "stack", "AWS_SECRET_ACCESS_KEY": secrets.token_urlsafe(18),
           "AWS_DEFAULT_REGION": "us-east-1", "MLFLOW_S3_ENDPOINT_URL": endpoint}
    server = Server("S3 (moto)", [tool("moto_server"), "-H", HOST, "-p", str(port)], {**_base_env(), **env}, port,
                    "/moto-api/", "/", directory / "s3.log")
    return server, S3(endpoint, env)


def create_bucket(s3: S3, bucket: str) -> None:
    import boto3

    boto3.client("s3", endpoint_url=s3.endpoint, aws_access_key_id=s3.env["AWS_ACCESS_KEY_ID"],
                 aws_secret_access_key=s3.env["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1").create_bucket(
        Bucket=bucket)


@dataclass(frozen=True)
class Mlflow:
    server: Server
    backend_uri: str  # the PostgreSQL database of runs and the registry (a secret where it holds a password)
    tracking_uri: str
    env: dict[str, str]  # the client's credentials, in MLflow's own variables (a secret)


def mlflow_server(directory: Path, backend_uri: str, s3: S3) -> Mlflow:
    """MLflow's tracking server behind its basic-auth app: runs and the registry in PostgreSQL, artifacts proxied to
    S3 (only the server holds the S3 credentials)."""
    port = free_port()
    password = secrets.token_urlsafe(18)
    auth_ini = directory / "mlflow-auth.ini"
    write_secret(auth_ini, f"[mlflow]\ndefault_permission = NO_PERMISSIONS\n"
                           f"database_uri = sqlite:///{directory / 'mlflow-auth.db'}\n"
                           f"admin_username = admin\nadmin_password = {password}\n")
    env = {**_base_env(), **s3.env, "MLFLOW_AUTH_CONFIG_PATH": str(auth_ini),
           "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_urlsafe(32), "MLFLOW_DISABLE_TELEMETRY": "true",
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    command = [tool("mlflow"), "server", "--app-name", "basic-auth", "--backend-store-uri", _sqlalchemy(backend_uri),
               "--artifacts-destination", f"s3://{S3_BUCKET}/artifacts", "--host", HOST, "--port", str(port),
               "--workers", "1"]
    server = Server("MLflow server", command, env, port, "/health", "/", directory / "mlflow.log")
    credentials = {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": password}
    return Mlflow(server, backend_uri, server.url, credentials)


def _sqlalchemy(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg2://", 1)


def _base_env() -> dict[str, str]:
    """The environment of a stack server: the parent's, minus the pipeline's own settings (the servers are
    configured by their command lines)."""
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("EDGEREC_")}


# -- Spark standalone cluster ---------------------------------------------------------------------------------------


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


@dataclass(frozen=True)
class SparkCluster:
    master: Server
    workers: list[Server]
    url: str  # spark://127.0.0.1:PORT
    conf_dir: Path  # spark-defaults.conf with the cluster's secret: SPARK_CONF_DIR of every client

    @property
    def client_env(self) -> dict[str, str]:
        """What a driver needs: the cluster, its secret (through the conf dir) and the executors' interpreter."""
        import sys

        return {"EDGEREC_SPARK_MASTER": self.url, "SPARK_CONF_DIR": str(self.conf_dir),
                "PYSPARK_PYTHON": sys.executable}

    def submit(self, script: Path, args: list[str], py_files: Path, env: dict[str, str], log: Path) -> None:
        """spark-submit SCRIPT ARGS in client mode, the driver's output in LOG; ServiceError naming LOG on failure."""
        command = [str(spark_home() / "bin" / "spark-submit"), "--master", self.url, "--py-files", str(py_files),
                   str(script), *args]
        with log.open("a") as out:
            done = subprocess.run(command, env={**env, **self.client_env, "SPARK_HOME": str(spark_home())},
                                  stdout=out, stderr=subprocess.STDOUT, check=False)
        if done.returncode:
            raise ServiceError(f"spark-submit {script.name} {' '.join(args)} failed (code {done.returncode}); "
                               f"its log: {log}")


def spark_cluster(directory: Path, workers: int = 2, worker_memory: str = "2g") -> SparkCluster:
    """A master and `workers` workers of one core each from the pyspark installation, on loopback. Clients and
    daemons authenticate with a secret generated here (`spark.authenticate`), read from SPARK_CONF_DIR."""
    import sys

    conf_dir = directory / "spark-conf"
    conf_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_secret(conf_dir / "spark-defaults.conf",
                 f"spark.authenticate true\nspark.authenticate.secret {secrets.token_hex(24)}\n"
                 f"spark.pyspark.python {sys.executable}\nspark.pyspark.driver.python {sys.executable}\n")
    env = {**_base_env(), "SPARK_HOME": str(spark_home()), "SPARK_CONF_DIR": str(conf_dir),
           "SPARK_LOCAL_IP": HOST, "PYSPARK_PYTHON": sys.executable}
    spark_class = str(spark_home() / "bin" / "spark-class")
    port, ui_port = free_port(), free_port()
    url = f"spark://{HOST}:{port}"
    master = Server("Spark master", [spark_class, "org.apache.spark.deploy.master.Master", "--host", HOST, "--port",
                                     str(port), "--webui-port", str(ui_port)],
                    env, ui_port, "/json/", "/", directory / "spark-master.log")
    nodes = []
    for i in range(workers):
        work = directory / f"spark-worker-{i}"
        work.mkdir(exist_ok=True)
        ui = free_port()
        nodes.append(Server(f"Spark worker {i}", [spark_class, "org.apache.spark.deploy.worker.Worker", url,
                                                   "--host", HOST, "--cores", "1", "--memory", worker_memory,
                                                   "--webui-port", str(ui), "--work-dir", str(work)],
                            env, ui, "/json/", "/", directory / f"spark-worker-{i}.log"))
    return SparkCluster(master, nodes, url, conf_dir)


def workers_alive(cluster: SparkCluster) -> int:
    import json
    import urllib.request

    with urllib.request.urlopen(cluster.master.url + "/json/", timeout=5) as response:
        state = json.load(response)
    return sum(1 for w in state.get("workers", []) if w.get("state") == "ALIVE")


def wait_for_workers(cluster: SparkCluster, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while workers_alive(cluster) < len(cluster.workers):
        if time.monotonic() > deadline:
            raise ServiceError(f"only {workers_alive(cluster)} of {len(cluster.workers)} Spark workers registered "
                               f"with {cluster.url} within {timeout_s:.0f} s; logs in {cluster.master.log.parent}")
        time.sleep(0.5)


@contextlib.contextmanager
def running_spark_cluster(directory: Path, timeout_s: float, workers: int = 2) -> Iterator[SparkCluster]:
    cluster = spark_cluster(directory, workers)
    with running([cluster.master], timeout_s=timeout_s), running(cluster.workers, timeout_s=timeout_s):
        wait_for_workers(cluster, timeout_s)
        yield cluster


# -- the whole stack ------------------------------------------------------------------------------------------------


def stack_directory(settings: Settings) -> Path:
    """Logs, generated secrets and the servers' working files of one stack; replaced by the next one."""
    directory = settings.home / "stack"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(mode=0o700, parents=True)
    return directory


@dataclass
class Stack:
    """What a running stack offers its clients: the settings (EDGEREC_*) and the environment they need."""

    directory: Path
    env: dict[str, str] = field(default_factory=dict)
    spark: SparkCluster | None = None
    mlflow: Mlflow | None = None


@contextlib.contextmanager
def running_mlflow(settings: Settings, directory: Path) -> Iterator[Mlflow]:
    """S3, a PostgreSQL database and the MLflow server over both."""
    s3_server, s3 = moto_s3(directory)
    with postgres_database(settings.stack.postgres_url, "mlflow") as db, \
            running([s3_server], timeout_s=settings.stack.timeout_s):
        create_bucket(s3, S3_BUCKET)
        mlflow = mlflow_server(directory, db, s3)
        with running([mlflow.server], timeout_s=settings.stack.timeout_s):
            yield mlflow
