"""Running the DAGs with Airflow 3 in-process (`airflow dags test`), with its home in the state directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from edgerec.config import DAGS_FOLDER, Settings


def airflow_env(settings: Settings) -> dict[str, str]:
    """The environment Airflow runs in: home and SQLite metadata inside the state dir, our DAGs only."""
    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": str(settings.airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{settings.airflow_home / 'airflow.db'}",
        "EDGEREC_HOME": str(settings.home),
        "EDGEREC_TASK_RETRIES": str(settings.task_retries),
    })
    if settings.raw_dir:
        env["EDGEREC_RAW_DIR"] = str(settings.raw_dir)
    return env


def _airflow() -> str:
    found = Path(sys.executable).with_name("airflow")
    return str(found) if found.exists() else shutil.which("airflow") or "airflow"


def init_airflow(settings: Settings) -> Path:
    """Create the Airflow home and its metadata database once; quick when already done."""
    db = settings.airflow_home / "airflow.db"
    if not db.exists():
        settings.airflow_home.mkdir(parents=True, exist_ok=True)
        subprocess.run([_airflow(), "db", "migrate"], env=airflow_env(settings), check=True,
                       stdout=subprocess.DEVNULL)
    return settings.airflow_home


def test_dag(settings: Settings, dag_id: str, ds: str) -> int:
    """Run one DAG for one logical date in-process; returns airflow's exit code.

    Retries default to none here: an interactive run should fail fast and say why.
    """
    init_airflow(settings)
    env = airflow_env(settings)
    if "EDGEREC_TASK_RETRIES" not in os.environ:
        env["EDGEREC_TASK_RETRIES"] = "0"
    return subprocess.run([_airflow(), "dags", "test", dag_id, ds], env=env).returncode
