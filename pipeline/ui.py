"""`edgerec ui`: the Airflow UI and the MLflow UI over the state directory, on 127.0.0.1, each behind a login.

Both servers run as child processes in sessions of their own (a Ctrl-C reaches only `edgerec ui`, which then stops
them), with their output in HOME/logs. Their credentials are generated once into HOME/ui, mode 0600; only the paths
of those files are ever printed.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgerec.config import Settings
from edgerec.errors import EdgeRecError
from edgerec.registry import REGISTERED_MODEL
from pipeline.orchestration import airflow_env
from pipeline.services import HOST, Server, tool, write_secret

USER = "admin"  # the one login of each UI
DAILY_DAG = "edgerec_daily_retrain"


class UiError(EdgeRecError):
    """The UIs cannot start; the message says why and what to do."""


@dataclass(frozen=True)
class Credentials:
    """The generated secrets of the two UIs, each in a file of its own that only the owner can read."""

    airflow_passwords: Path  # {"admin": password}: Airflow's simple auth manager reads it as is
    mlflow_auth_config: Path  # MLflow's basic-auth ini: auth database, admin user and admin_password
    mlflow_secret_key: Path  # the Flask secret key of MLflow's CSRF protection


def run_days(settings: Settings) -> list[str]:
    """The days `edgerec run` ran in this state directory (each leaves its log), oldest first."""
    logs = settings.home / "logs"
    return sorted(p.name.removeprefix("run_ds=").removesuffix(".log") for p in logs.glob("run_ds=*.log"))


def last_run_day(settings: Settings) -> str:
    days = run_days(settings)
    if not days:
        raise UiError(f"no run in {settings.home} yet (no logs/run_ds=*.log): run `make run` first")
    return days[-1]


def mlflow_auth_ini(database: Path, password: str) -> str:
    # users other than the admin see nothing until granted (mlflow/server/auth/basic_auth.ini lists the keys)
    return (f"[mlflow]\ndefault_permission = NO_PERMISSIONS\ndatabase_uri = sqlite:///{database}\n"
            f"admin_username = {USER}\nadmin_password = {password}\n")


def ensure_credentials(settings: Settings, token: Callable[[int], str] = secrets.token_urlsafe) -> Credentials:
    """The UIs' credentials, generated on first use and kept: a password changes only when its file is deleted."""
    directory = settings.home / "ui"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    creds = Credentials(directory / "airflow-passwords.json", directory / "mlflow-auth.ini",
                        directory / "mlflow-secret-key")
    if not creds.airflow_passwords.exists():
        write_secret(creds.airflow_passwords, json.dumps({USER: token(18)}) + "\n")
    if not creds.mlflow_auth_config.exists():
        database = directory / "mlflow-auth.db"
        # MLflow sets the admin password only when it creates the user: a database without its ini is forgotten
        database.unlink(missing_ok=True)
        write_secret(creds.mlflow_auth_config, mlflow_auth_ini(database, token(18)))
    if not creds.mlflow_secret_key.exists():
        write_secret(creds.mlflow_secret_key, token(32))
    return creds


def airflow_server(settings: Settings, port: int, creds: Credentials) -> Server:
    """Airflow's API server (its UI and REST API, no execution API) behind the simple auth manager."""
    env = airflow_env(settings)
    env.update({
        "AIRFLOW__CORE__AUTH_MANAGER":
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(creds.airflow_passwords),
        "AIRFLOW__API__HOST": HOST,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://{HOST}:{port}",
    })
    return Server("Airflow UI", [tool("airflow"), "api-server", "--host", HOST, "--port", str(port), "--workers", "1",
                              "--apps", "core"],
                  env, port, "/api/v2/monitor/health", f"/dags/{DAILY_DAG}",
                  settings.home / "logs" / "ui-airflow.log")


def mlflow_store(settings: Settings) -> str:
    uri = settings.mlflow.tracking_uri
    if uri is None:
        return f"sqlite:///{settings.mlflow_dir / 'mlflow.db'}"
    if uri.startswith(("http://", "https://")):
        raise UiError(f"EDGEREC_MLFLOW_TRACKING_URI is a tracking server ({uri}): open its own UI; "
                      "`edgerec ui` serves a store (the embedded SQLite one or a database URI)")
    return uri


def mlflow_server(settings: Settings, port: int, creds: Credentials) -> Server:
    """MLflow's tracking server with its basic-auth app, reading the pipeline's store (artifacts stay where the runs
    logged them, so the server does not proxy artifacts)."""
    env = {name: value for name, value in os.environ.items()
           if name not in ("MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD")}  # the ini decides
    env.update({
        "MLFLOW_AUTH_CONFIG_PATH": str(creds.mlflow_auth_config),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": creds.mlflow_secret_key.read_text(),
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # a UI over a store runs no server-side jobs
        "MLFLOW_DISABLE_TELEMETRY": "true",
    })
    command = [tool("mlflow"), "server", "--app-name", "basic-auth", "--backend-store-uri", mlflow_store(settings),
               "--default-artifact-root", (settings.mlflow_dir / "artifacts").as_uri(), "--no-serve-artifacts",
               "--host", HOST, "--port", str(port), "--workers", "1"]
    return Server("MLflow UI", command, env, port, "/health", f"/#/models/{REGISTERED_MODEL}",
                  settings.home / "logs" / "ui-mlflow.log")


def check_port_free(port: int, name: str, option: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # as the servers bind: a port whose last server just stopped (connections in TIME_WAIT) is free
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as error:
            raise UiError(f"port {port} on {HOST} is taken ({error.strerror}): the {name} UI cannot listen there; "
                          f"stop what holds it or choose another port with {option}") from None


def data_docs_index(settings: Settings) -> Path:
    """Great Expectations' Data Docs site of the quality gates (edgerec.quality.gate builds it)."""
    return settings.home / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"


def dbt_docs_index(settings: Settings, ds: str) -> Path:
    """dbt's docs site of the marts, generated once (dbt's output to HOME/logs/ui-dbt-docs.log)."""
    from edgerec.marts import DbtFailed, docs_generate

    index = settings.home / "dbt" / "target" / "index.html"
    if index.exists():
        return index
    log = settings.home / "logs" / "ui-dbt-docs.log"
    with log.open("w") as out, contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            return docs_generate(settings, ds)
        except DbtFailed:
            raise UiError(f"dbt docs generate failed (its output: {log}); retry with "
                          f"`edgerec dbt docs --ds {ds}`") from None


def summary(settings: Settings, servers: list[Server], creds: Credentials, dbt_docs: str) -> str:
    """What `edgerec ui` prints once both UIs answer: where to look, and where the passwords are (never what)."""
    airflow, mlflow = servers
    data_docs = data_docs_index(settings)
    return (f"Airflow UI  {airflow.url}{airflow.page}\n"
            f"            user {USER}, password in {creds.airflow_passwords}\n"
            f"MLflow UI   {mlflow.url}{mlflow.page}\n"
            f"            user {USER}, password in {creds.mlflow_auth_config} (admin_password)\n"
            f"Data Docs   {data_docs}{'' if data_docs.exists() else ' (not built yet)'}\n"
            f"dbt docs    {dbt_docs}\n"
            "Ctrl-C stops both.")
