"""The at-scale twin of each embedded default, started on one machine: throwaway PostgreSQL databases, S3 (moto's
server), an MLflow tracking server on both, a Spark standalone cluster with its Thrift server, and Airflow's
scheduler and API server on PostgreSQL. `edgerec stack run` (`make run-stack`) and the tests marked `stack` use it.

Every server listens on 127.0.0.1, on a free port; its output goes to a log in the stack's directory. The servers
that take logins or jobs (MLflow, Airflow, the Spark daemons) check a secret generated for this stack, kept in files
of mode 0600 there and never printed or put on a command line. The exceptions, stand-ins for managed services, are
in docs/stack.md: moto's S3 checks no signature, the Thrift server no login, the Spark web UIs nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from edgerec.config import Settings
from edgerec.redact import MASK, redact_url, scrub
from pipeline.services import HOST, Server, ServiceError, check_alive, free_port, running, tool, write_secret
from pipeline.ui import DAILY_DAG, USER, mlflow_auth_ini

S3_BUCKET = "edgerec-mlflow"  # the tracking server's artifacts
CONNECT_TIMEOUT_S = 10


# -- PostgreSQL -------------------------------------------------------------------------------------------------------


def _admin_connection(admin_url: str):
    import psycopg2

    try:
        conn = psycopg2.connect(admin_url, connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg2.Error as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        reason = scrub(reason).replace(urllib.parse.urlsplit(admin_url).password or MASK, MASK)
        raise ServiceError(f"cannot connect to PostgreSQL at {redact_url(admin_url)} ({reason}); set "
                           "EDGEREC_STACK_POSTGRES_URL to a database whose user may create databases") from None
    conn.autocommit = True  # CREATE/DROP DATABASE cannot run in a transaction
    return conn


@contextlib.contextmanager
def postgres_database(admin_url: str, purpose: str) -> Iterator[str]:
    """A new database on the server of `admin_url`, dropped on the way out; yields its URL."""
    name = f"edgerec_{purpose}_{uuid.uuid4().hex[:10]}"
    _execute(admin_url, f'CREATE DATABASE "{name}"')
    try:
        parts = urllib.parse.urlsplit(admin_url)
        yield urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        try:  # a new connection: the stack may have run for hours; FORCE: a server that died holding the database
            _execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except Exception as error:
            raise ServiceError(f"could not drop the stack's database {name} ({scrub(str(error)).strip()[:200]}); "
                               "drop it by hand") from None


def _execute(admin_url: str, statement: str) -> None:
    conn = _admin_connection(admin_url)
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
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
    write_secret(auth_ini, mlflow_auth_ini(directory / "mlflow-auth.db", password))
    env = {**_base_env(), **s3.env, "MLFLOW_AUTH_CONFIG_PATH": str(auth_ini),
           "MLFLOW_BACKEND_STORE_URI": _sqlalchemy(backend_uri),  # in the environment: `ps` shows a command line
           "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_urlsafe(32), "MLFLOW_DISABLE_TELEMETRY": "true",
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    command = [tool("mlflow"), "server", "--app-name", "basic-auth", "--artifacts-destination",
               f"s3://{S3_BUCKET}/artifacts", "--host", HOST, "--port", str(port), "--workers", "1"]
    server = Server("MLflow server", command, env, port, "/health", "/", directory / "mlflow.log")
    credentials = {"MLFLOW_TRACKING_USERNAME": USER, "MLFLOW_TRACKING_PASSWORD": password}
    return Mlflow(server, backend_uri, server.url, credentials)


def _sqlalchemy(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg2://", 1)


def _base_env() -> dict[str, str]:
    """The environment of a stack server: the parent's, minus the pipeline's own settings (the servers are
    configured by their command lines)."""
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
        return {"EDGEREC_SPARK_MASTER": self.url, "SPARK_CONF_DIR": str(self.conf_dir),
                "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": HOST}  # the driver listens on loopback too

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
    conf_dir = directory / "spark-conf"
    conf_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_secret(conf_dir / "spark-defaults.conf",
                 f"spark.authenticate true\nspark.authenticate.secret {secrets.token_hex(24)}\n"
                 f"spark.pyspark.python {sys.executable}\nspark.pyspark.driver.python {sys.executable}\n")
    env = {**_base_env(), "SPARK_HOME": str(spark_home()), "SPARK_CONF_DIR": str(conf_dir),
           "SPARK_LOCAL_IP": HOST, "PYSPARK_PYTHON": sys.executable,
           # no REST submission endpoint: it takes jobs without the secret (and its fixed port 6067 collides)
           "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false"}
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


def master_state(cluster: SparkCluster) -> dict:
    """The master's own report (its web UI's /json/): workers, active and completed applications."""
    with urllib.request.urlopen(cluster.master.url + "/json/", timeout=5) as response:
        return json.load(response)


def workers_alive(cluster: SparkCluster) -> int:
    return sum(1 for w in master_state(cluster).get("workers", []) if w.get("state") == "ALIVE")


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


def thrift_server(cluster: SparkCluster, directory: Path) -> Server:
    """Spark's Thrift JDBC/ODBC server (HiveServer2 protocol) on the cluster, for dbt's `spark` target: one core of
    the cluster, its metastore (Derby) and tables in `directory`. It listens on loopback only; its own clients
    are not authenticated (hive.server2.authentication NONE: a production server sits behind LDAP or Kerberos)."""
    port = free_port()
    work = directory / "thrift"
    work.mkdir(exist_ok=True)
    command = [str(spark_home() / "bin" / "spark-submit"), "--class",
               "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2", "--name", "edgerec-thrift",
               "--master", cluster.url, "--total-executor-cores", "1", "--executor-memory", "1g",
               "--conf", f"spark.sql.warehouse.dir={work / 'warehouse'}",
               "--conf", f"spark.driver.extraJavaOptions=-Dderby.stream.error.file={work / 'derby.log'}",
               "--hiveconf", f"javax.jdo.option.ConnectionURL=jdbc:derby:;databaseName={work / 'metastore_db'};"
                             "create=true",
               "--hiveconf", f"hive.server2.thrift.bind.host={HOST}", "--hiveconf", f"hive.server2.thrift.port={port}",
               "spark-internal"]
    env = {**cluster.master.env, **cluster.client_env}
    return Server("Spark Thrift server", command, env, port, None, "", directory / "spark-thrift.log", cwd=work)


# -- S3 and MLflow together, the stack's directory -------------------------------------------------------------------


def stack_directory(settings: Settings) -> Path:
    """Logs, generated secrets and the servers' working files of one stack; replaced by the next one."""
    directory = settings.home / "stack"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(mode=0o700, parents=True)
    return directory


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


# -- Airflow: scheduler (LocalExecutor), DAG processor and API server on PostgreSQL -----------------------------------

AIRFLOW_USER = USER


@dataclass(frozen=True)
class Airflow:
    servers: list[Server]  # the API server first
    env: dict[str, str]
    password_file: Path  # {"admin": password}, mode 0600

    @property
    def url(self) -> str:
        return self.servers[0].url


def airflow_stack(settings: Settings, directory: Path, database_url: str, pipeline_env: dict[str, str]) -> Airflow:
    """Airflow as it runs in production, on one machine: the scheduler with the LocalExecutor, the DAG processor and
    the API server, sharing a PostgreSQL metadata database; the DAG tasks get `pipeline_env` (EDGEREC_* settings and
    clients' credentials). Logins through the simple auth manager; the execution API's tokens are signed with a
    secret generated here."""
    from cryptography.fernet import Fernet

    from pipeline.orchestration import airflow_env

    home = directory / "airflow"
    home.mkdir(mode=0o700)
    password_file = home / "passwords.json"
    write_secret(password_file, json.dumps({AIRFLOW_USER: secrets.token_urlsafe(18)}))
    port = free_port()
    url = f"http://{HOST}:{port}"
    # the DAG's tasks get this process's EDGEREC_* settings (what `edgerec stack run` was given), pipeline_env over
    # them; not the stack's own (its PostgreSQL admin URL)
    env = {k: v for k, v in airflow_env(settings).items() if not k.startswith("EDGEREC_STACK_")}
    env.update(pipeline_env)
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": _sqlalchemy(database_url),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager."
                                       "SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{AIRFLOW_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(password_file),
        "AIRFLOW__API__HOST": HOST, "AIRFLOW__API__PORT": str(port), "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),  # HS512 wants 64 bytes; every process the same
        # new DAG files seen in seconds, not minutes; a finished task reported within a second
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5", "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "300",  # our DAG files change only with a release
        "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
        "AIRFLOW__CORE__PARALLELISM": "2",  # two cores: the DAG's tasks already use both
        # runs come from the API only (the days asked for), not from the schedule's latest interval (today)
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
    })
    airflow = tool("airflow")
    servers = [
        Server("Airflow API server", [airflow, "api-server", "--host", HOST, "--port", str(port), "--workers", "1"],
               env, port, "/api/v2/monitor/health", "/dags", home / "api-server.log"),
        # no log server: it listens on every interface; the API server reads the task logs from this disk
        Server("Airflow scheduler", [airflow, "scheduler", "--skip-serve-logs"], env, None, None, "",
               home / "scheduler.log"),
        Server("Airflow DAG processor", [airflow, "dag-processor"], env, None, None, "", home / "dag-processor.log"),
    ]
    return Airflow(servers, env, password_file)


def migrate_airflow(airflow: Airflow) -> None:
    log = airflow.servers[0].log.with_name("db-migrate.log")
    with log.open("w") as out:
        done = subprocess.run([tool("airflow"), "db", "migrate"], env=airflow.env, stdout=out,
                              stderr=subprocess.STDOUT, check=False)
    if done.returncode:
        raise ServiceError(f"airflow db migrate failed (code {done.returncode}); its log: {log}")


TASK_ENDED = {"success", "failed", "skipped", "upstream_failed", "removed"}


class AirflowApi:
    """Airflow's REST API (v2) as a logged-in admin: trigger, follow and answer runs."""

    def __init__(self, airflow: Airflow, timeout_s: float, procs: list[subprocess.Popen]):
        import httpx

        self.airflow, self.timeout_s, self.procs = airflow, timeout_s, procs
        password = json.loads(airflow.password_file.read_text())[AIRFLOW_USER]
        token = httpx.post(f"{airflow.url}/auth/token", json={"username": AIRFLOW_USER, "password": password},
                           timeout=30)
        if token.status_code >= 400:
            raise ServiceError(f"Airflow refused the stack's login ({token.status_code}) at {airflow.url}")
        self.client = httpx.Client(base_url=f"{airflow.url}/api/v2", timeout=30,
                                   headers={"Authorization": f"Bearer {token.json()['access_token']}"})

    def call(self, method: str, path: str, **kwargs):
        response = self.client.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise ServiceError(f"Airflow API {method} {path}: {response.status_code} {response.text[:300]}")
        return response.json()

    def until(self, what: str, done, pause_s: float = 1.0, timeout_s: float | None = None):
        """done()'s first truthy value, polled every pause_s; fails naming `what` past the timeout or when a server
        died."""
        timeout_s = timeout_s or self.timeout_s
        deadline = time.monotonic() + timeout_s
        while not (found := done()):
            check_alive(self.airflow.servers, self.procs)  # a dead scheduler fails now, not at the deadline
            if time.monotonic() > deadline:
                raise ServiceError(f"{what} not within {timeout_s:.0f} s; logs in {self.airflow.url} and "
                                   f"{self.airflow.servers[0].log.parent}")
            time.sleep(pause_s)
        return found

    def wait_healthy(self) -> None:
        def healthy():
            state = self.client.get("/monitor/health").json()
            return all((state.get(part) or {}).get("status") == "healthy" for part in ("scheduler", "dag_processor"))

        self.until("the Airflow scheduler and DAG processor healthy", healthy)

    def unpause(self, dag_id: str) -> None:
        self.until(f"DAG {dag_id} parsed", lambda: self.client.get(f"/dags/{dag_id}").status_code == 200)
        self.call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, logical_date: str | None, conf: dict | None = None) -> str:
        body = {"logical_date": logical_date, "conf": conf or {}}
        return self.call("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"]

    def runs(self, dag_id: str) -> list[dict]:
        """The DAG's runs (run_id, logical_date, run_type, state, ...), oldest first."""
        return self.call("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100, "order_by": "logical_date"})[
            "dag_runs"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        found = self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100})
        return {ti["task_id"]: ti["state"] for ti in found["task_instances"]}

    def wait_run(self, dag_id: str, run_id: str, timeout_s: float | None = None,
                 on_task=lambda task, state: None) -> str:
        """The run's final state: success or failed. `on_task(task, state)` hears of each task as it ends."""
        told: set[str] = set()

        def finished():
            state = self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
            for task, task_state in self.task_states(dag_id, run_id).items():
                if task_state in TASK_ENDED and task not in told:
                    told.add(task)
                    on_task(task, task_state)
            return state if state in ("success", "failed") else None

        return self.until(f"run {run_id} of {dag_id} finished", finished, pause_s=2.0, timeout_s=timeout_s)

    def answer_approval(self, dag_id: str, run_id: str, task_id: str, option: str) -> dict:
        """Answer a human-in-the-loop task once it waits for input."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
        self.until(f"{task_id} of {run_id} awaiting input",
                   lambda: self.call("GET", path)["state"] == "awaiting_input")
        # Airflow 3.3 fails the task when the answer lands before the scheduler has seen it park (its own log
        # says so): wait for that line, as a person answering in the UI always does
        parked = f"task_id={task_id}, run_id={run_id}"
        log = next(s for s in self.airflow.servers if s.name == "Airflow scheduler").log
        self.until(f"{task_id} of {run_id} parked", lambda: any(
            parked in line and "state=awaiting_input" in line for line in log.read_text().splitlines()), 0.5)
        return self.call("PATCH", f"{path}/-1/hitlDetails", json={"chosen_options": [option], "params_input": {}})


@contextlib.contextmanager
def running_airflow(settings: Settings, directory: Path, pipeline_env: dict[str, str]) -> Iterator[AirflowApi]:
    """A throwaway metadata database, `airflow db migrate`, the three servers; yields the logged-in API."""
    with postgres_database(settings.stack.postgres_url, "airflow") as db:
        airflow = airflow_stack(settings, directory, db, pipeline_env)
        migrate_airflow(airflow)
        with running(airflow.servers, timeout_s=settings.stack.timeout_s) as procs:
            api = AirflowApi(airflow, settings.stack.timeout_s, procs)
            api.wait_healthy()
            yield api


# -- the whole stack: `edgerec stack run` ---------------------------------------------------------------------------

@contextlib.contextmanager
def whole_stack(settings: Settings, on_start=lambda name: None) -> Iterator[AirflowApi]:
    """The Spark cluster, S3, the MLflow server and Airflow, the DAG's tasks pointed at the cluster and the server;
    everything stopped and the databases dropped on the way out."""
    directory = stack_directory(settings)
    timeout = settings.stack.timeout_s
    on_start(f"a Spark master and two workers (logs: {directory})")
    with running_spark_cluster(directory, timeout) as cluster:
        on_start("S3 (moto) and the MLflow server on a new PostgreSQL database")
        with running_mlflow(settings, directory) as mlflow:
            env = {"EDGEREC_HOME": str(settings.home), "EDGEREC_MLFLOW_TRACKING_URI": mlflow.tracking_uri,
                   **mlflow.env, **cluster.client_env}
            on_start("Airflow: scheduler, DAG processor and API server on a new PostgreSQL database")
            with running_airflow(settings, directory, env) as api:
                yield api


def run_day(api: AirflowApi, ds: str, timeout_s: float,
            on_task=lambda task, state: None) -> tuple[str, dict[str, str | None]]:
    """Trigger the daily DAG for ds and wait: (the run's state, each task's state)."""
    api.unpause(DAILY_DAG)
    run = api.trigger(DAILY_DAG, f"{ds}T00:00:00Z")
    state = api.wait_run(DAILY_DAG, run, timeout_s, on_task)
    return state, api.task_states(DAILY_DAG, run)
