"""The dbt stage: build the train/test marts, items and daily stats for one ds, and their docs.

dbt runs as a subprocess of the project in `dbt/`, with its target and logs in the state directory, so the
checkout stays clean and a run is the same from the CLI, from Airflow and by hand. The target is duckdb by
default; EDGEREC_DBT_TARGET=spark builds the same models with dbt-spark (dbt/profiles.yml).
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from edgerec.config import REPO_ROOT, Settings
from edgerec.errors import ConfigError, EdgeRecError
from edgerec.reports import DbtBuild

log = logging.getLogger(__name__)
DBT_PROJECT = REPO_ROOT / "dbt"


class DbtFailed(EdgeRecError):
    """dbt build or docs generate did not succeed; the message names the failing nodes."""


def _dbt() -> str:
    found = Path(sys.executable).with_name("dbt")
    return str(found) if found.exists() else shutil.which("dbt") or "dbt"


def dbt_vars(settings: Settings, ds: str) -> dict:
    return {"ds": ds, "train_days": settings.marts.train_days, "sample_rate": settings.marts.sample_rate,
            "recall_history": settings.marts.recall_history,
            "recall_history_days": settings.marts.recall_history_days, "warehouse": str(settings.warehouse)}


def check_thrift_server(settings: Settings, timeout_s: float = 5.0) -> None:
    """A Thrift server that accepts no connection fails here at once, naming it and the settings, rather than as a
    database error deep in dbt's log."""
    host, port = settings.dbt.spark_host, settings.dbt.spark_port
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return
    except OSError as error:
        raise ConfigError(f"the Spark Thrift server {host}:{port} accepts no connection ({error.strerror or error}); "
                          "check EDGEREC_DBT_SPARK_HOST and EDGEREC_DBT_SPARK_PORT, or build on duckdb "
                          "(EDGEREC_DBT_TARGET=duckdb)") from None


def dbt_env(settings: Settings, ds: str, environ: Mapping[str, str]) -> dict[str, str]:
    """dbt's environment: dbt/profiles.yml reads the connection from these variables."""
    dbt = settings.dbt
    env = dict(environ, EDGEREC_HOME=str(settings.home), DBT_SEND_ANONYMOUS_USAGE_STATS="false",
               EDGEREC_DBT_SPARK_METHOD=dbt.spark_method, EDGEREC_DBT_SPARK_HOST=dbt.spark_host,
               EDGEREC_DBT_SPARK_PORT=str(dbt.spark_port), EDGEREC_DBT_SPARK_SCHEMA=dbt.spark_schema)
    options = settings.layout(ds).jvm_options
    if dbt.target == "spark" and dbt.spark_method == "session" and options:
        # dbt-spark's session starts a JVM of its own in dbt's process: the options the Spark jobs' would have, ahead
        # of any the caller set (PySpark splits the variable as a command line)
        env["PYSPARK_SUBMIT_ARGS"] = (f"--driver-java-options {shlex.quote(options)} "
                                      + environ.get("PYSPARK_SUBMIT_ARGS", "pyspark-shell"))
    return env


def run_dbt(settings: Settings, ds: str, command: list[str]) -> subprocess.CompletedProcess:
    """Run one dbt command on the project for ds; its target/ and logs/ go to HOME/dbt."""
    state = settings.home / "dbt"
    args = [_dbt(), *command, "--project-dir", str(DBT_PROJECT), "--profiles-dir", str(DBT_PROJECT),
            "--target", settings.dbt.target, "--target-path", str(state / "target"),
            "--log-path", str(state / "logs"), "--vars", json.dumps(dbt_vars(settings, ds))]
    if settings.dbt.target == "spark" and settings.dbt.spark_method == "thrift":
        check_thrift_server(settings)
    env = dbt_env(settings, ds, os.environ)
    log.info("dbt %s ds=%s (target %s)", " ".join(command), ds, settings.dbt.target)
    state.mkdir(parents=True, exist_ok=True)  # the working directory: dbt-spark's session keeps its tables here
    result = subprocess.run(args, env=env, cwd=state, capture_output=True, text=True)
    sys.stdout.write(result.stdout)  # dbt's own progress lines, into the task log or the terminal
    sys.stderr.write(result.stderr)
    return result


def _failures(run_results: Path) -> list[str]:
    if not run_results.exists():
        return []
    results = json.loads(run_results.read_text())["results"]
    return [f"{_node(r['unique_id'])}: {r['status']}: {(r.get('message') or '').strip()}"
            for r in results if r["status"] in ("error", "fail", "runtime error")]


def _node(unique_id: str) -> str:
    """'test.edgerec.unique_x.7462f6d74c' -> 'test unique_x'."""
    kind, _, name, *_ = unique_id.split(".")
    return f"{kind} {name}"


def build_marts(settings: Settings, ds: str) -> dict:
    """`dbt build` (models, data tests, unit tests) for ds; a summary written to the day's `DbtBuild` report."""
    run_results = settings.home / "dbt" / "target" / "run_results.json"
    run_results.unlink(missing_ok=True)  # a run that fails early must not report the previous run's nodes
    result = run_dbt(settings, ds, ["build"])
    failures = _failures(run_results)
    if result.returncode != 0 or failures:
        detail = "\n  ".join(failures) or result.stdout[-2000:]
        raise DbtFailed(f"dbt build failed for ds={ds}:\n  {detail}\nlogs: {settings.home / 'dbt' / 'logs'}")
    results = json.loads(run_results.read_text())
    by_type: dict[str, int] = {}
    for r in results["results"]:
        kind = _node(r["unique_id"]).split()[0]
        by_type[kind] = by_type.get(kind, 0) + 1
    summary = {"ds": ds, "target": settings.dbt.target, "elapsed_s": round(results["elapsed_time"], 2),
               "nodes": by_type, "database": str(settings.duckdb_path),
               "rows": mart_rows(settings) if settings.dbt.target == "duckdb" else {}}
    DbtBuild(**summary).write(settings.layout(ds))
    return summary


def docs_generate(settings: Settings, ds: str) -> Path:
    """dbt docs generate; returns the index.html of the static docs site."""
    result = run_dbt(settings, ds, ["docs", "generate"])
    if result.returncode != 0:
        raise DbtFailed(f"dbt docs generate failed for ds={ds}:\n{result.stdout[-2000:]}")
    return settings.home / "dbt" / "target" / "index.html"


MARTS = ("fct_train_requests", "fct_test_requests", "dim_items", "rpt_daily_stats", "rpt_version_daily",
         "rpt_version_position_daily", "fct_recall_train", "fct_recall_test", "fct_recall_users")


def mart_rows(settings: Settings) -> dict[str, int]:
    import duckdb

    with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
        return {name: con.execute(f"select count(*) from {name}").fetchone()[0] for name in MARTS}
