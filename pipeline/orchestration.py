"""Running the DAGs with Airflow 3 in-process (`airflow dags test`), with its home in the state directory."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgerec.config import DAGS_FOLDER, Settings, check_logical_date


def airflow_env(settings: Settings) -> dict[str, str]:
    """The environment Airflow runs in: home and SQLite metadata inside the state dir, our DAGs only."""
    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": str(settings.airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{settings.airflow_home / 'airflow.db'}",
        "EDGEREC_HOME": str(settings.home),
        "EDGEREC_RUN_TASK_RETRIES": str(settings.run.task_retries),
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


@dataclass(frozen=True)
class TaskRun:
    """One task of a `dags test` run as its output told it."""

    task: str
    seconds: float
    state: str  # success, failed, skipped, up_for_retry, ... (as Airflow names them); "unknown" if it never said
    reason: str = ""  # why it was skipped, as the task said it


@dataclass
class TaskTracker:
    """Follows `airflow dags test` output line by line: a task starts at "[DAG TEST] starting task_id=X", its state
    is the last "new_state=Y" while it runs, and it ends at "[DAG TEST] end task task_id=X"."""

    clock: Callable[[], float] = time.monotonic
    started: dict[str, float] = field(default_factory=dict)
    states: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    current: str | None = None

    STARTING = re.compile(r"\[DAG TEST\] starting task_id=(\S+)")
    ENDED = re.compile(r"\[DAG TEST\] end task task_id=(\S+)")
    STATE = re.compile(r"new_state=(\w+)")
    # structlog quotes the reason or not depending on the renderer; unquoted it runs to the next key or the end
    SKIPPED = re.compile(r"Skipping task\..*?reason=(?:(['\"])(?P<quoted>.*?)\1|(?P<bare>.*?)(?=\s+\w+=|\s*$))")

    def feed(self, line: str) -> TaskRun | None:
        """The task that ended on this line, if one did."""
        if m := self.STARTING.search(line):
            self.current = m.group(1)
            self.started[self.current] = self.clock()
        elif m := self.ENDED.search(line):
            task, now = m.group(1), self.clock()
            self.current = None
            return TaskRun(task, now - self.started.get(task, now), self.states.get(task, "unknown"),
                           self.reasons.get(task, ""))
        elif self.current and (m := self.SKIPPED.search(line)):
            self.reasons[self.current] = m.group("quoted") or m.group("bare")
        elif self.current and (m := self.STATE.search(line)):
            self.states[self.current] = m.group(1)
        return None


@dataclass(frozen=True)
class DagRun:
    """One `dags test` run: airflow's exit code and the tasks that ended, in order."""

    ds: str
    code: int
    tasks: list[TaskRun]

    def count(self, state: str) -> int:
        return sum(t.state == state for t in self.tasks)

    @property
    def failed(self) -> TaskRun | None:
        return next((t for t in self.tasks if t.state not in ("success", "skipped")), None)


def test_dag(settings: Settings, dag_id: str, ds: str, log_path: Path,
             on_task: Callable[[TaskRun], None] | None = None) -> DagRun:
    """Run one DAG for one logical date in-process (`check_logical_date` first). Everything Airflow and the tasks
    print (Spark, dbt, training) goes to `log_path`; `on_task` hears of each task as it ends.

    Retries default to none here: an interactive run should fail fast and say why.
    """
    check_logical_date(ds)
    init_airflow(settings)
    env = airflow_env(settings)
    if "EDGEREC_RUN_TASK_RETRIES" not in os.environ:
        env["EDGEREC_RUN_TASK_RETRIES"] = "0"
    env["PYTHONUNBUFFERED"] = "1"  # a piped stdout is block-buffered: each task's lines would arrive late
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tracker, tasks = TaskTracker(), []
    with log_path.open("w") as log, subprocess.Popen([_airflow(), "dags", "test", dag_id, ds], env=env, text=True,
                                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
        for line in proc.stdout:
            log.write(line)
            ended = tracker.feed(line)
            if ended:
                tasks.append(ended)
                log.flush()
                if on_task:
                    on_task(ended)
    return DagRun(ds, proc.returncode, tasks)


def tail_errors(log_path: Path, lines: int = 25) -> str:
    """The end of a run's log from its last traceback (or its last `lines` lines): what a failure prints."""
    text = log_path.read_text(errors="replace").splitlines() if log_path.exists() else []
    start = max((i for i, line in enumerate(text) if "Traceback (most recent call last)" in line), default=None)
    shown = text[start:start + 60] if start is not None else text[-lines:]
    return "\n".join(shown)
