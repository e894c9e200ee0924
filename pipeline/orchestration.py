"""Running the DAGs with Airflow 3 in-process (`airflow dags test`), with its home in the state directory."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
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

    @property
    def final(self) -> list[TaskRun]:
        """Each task's last attempt, in the order the tasks first ended (a retried task ends once per attempt)."""
        return list({t.task: t for t in self.tasks}.values())

    def count(self, state: str) -> int:
        return sum(t.state == state for t in self.final)

    @property
    def failed(self) -> TaskRun | None:
        return next((t for t in self.final if t.state not in ("success", "skipped")), None)

    @property
    def ok(self) -> bool:
        """Airflow said the run succeeded, a task ran, and every task's last attempt succeeded or skipped."""
        return self.code == 0 and bool(self.tasks) and self.failed is None


DAY_LINE = re.compile(r"^\[EDGEREC DAY\] (?:start ds=(?P<start>\S+)|end ds=(?P<end>\S+) code=(?P<code>-?\d+))$")


@dataclass
class DaysTracker:
    """Follows the output of one process that runs several days (`_test_days_here`): each day's `dags test` output
    between "[EDGEREC DAY] start ds=D" and "[EDGEREC DAY] end ds=D code=N", its tasks followed by a TaskTracker."""

    clock: Callable[[], float] = time.monotonic
    days: list[DagRun] = field(default_factory=list)
    current: DagRun | None = None
    tracker: TaskTracker | None = None

    def feed(self, line: str) -> tuple[str, str | TaskRun | DagRun] | None:
        """What this line says: ("start", ds), ("task", the task that ended), ("end", the day) or nothing."""
        if m := DAY_LINE.match(line.rstrip("\n")):
            if m["start"]:
                self._close(1)  # a day still open at the next one's start never said how it ended
                self.current, self.tracker = DagRun(m["start"], 0, []), TaskTracker(self.clock)
                return "start", m["start"]
            if self.current is not None and self.current.ds == m["end"]:
                self._close(int(m["code"]))
                return "end", self.days[-1]
            return None
        if self.tracker and (ended := self.tracker.feed(line)):
            self.current.tasks.append(ended)
            return "task", ended
        return None

    def finish(self, code: int) -> list[DagRun]:
        """The days that ran, given the process's exit code: a day it died in ends with that code (or 1)."""
        self._close(code or 1)
        return self.days

    def _close(self, code: int) -> None:
        if self.current is not None:
            self.days.append(replace(self.current, code=code))
            self.current = self.tracker = None


def test_days(settings: Settings, dag_id: str, days: list[str], on_day: Callable[[str], None] | None = None,
              on_task: Callable[[str, TaskRun], None] | None = None) -> list[DagRun]:
    """Run one DAG for each logical date, oldest first, with Airflow in-process (`dags test`), all the days in one
    process: they share its imports and the Spark driver's JVM, warm after the first day. The first day that does
    not end `ok` stops it. Everything a day prints (Airflow, Spark, dbt, training) goes to its `run_log`; `on_day`
    hears of each day as it starts, `on_task` of each task as it ends.

    Retries default to none here: an interactive run should fail fast and say why.
    """
    for ds in days:
        check_logical_date(ds)
    init_airflow(settings)
    env = airflow_env(settings)
    if "EDGEREC_RUN_TASK_RETRIES" not in os.environ:
        env["EDGEREC_RUN_TASK_RETRIES"] = "0"
    env["PYTHONUNBUFFERED"] = "1"  # a piped stdout is block-buffered: each task's lines would arrive late
    shared = settings.spark.shared_jvm_options([settings.layout(ds).raw_events_bytes for ds in days])
    if shared is not None:  # the days share one JVM: its options suit the largest of them, not only the first
        env["EDGEREC_SPARK_JAVA_OPTIONS"] = shared
    tracker, early, log, stopped = DaysTracker(), [], None, False
    proc = subprocess.Popen(_days_command(dag_id, days), env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        for line in proc.stdout:
            said = tracker.feed(line)
            if said and said[0] == "start":
                if log is not None:
                    log.close()
                log = _open_log(settings, said[1], "w")
                log.writelines(early)  # what the process printed before its first day (Airflow's start)
                early = []
                if on_day:
                    on_day(said[1])
            elif log is None:
                early.append(line)
            else:
                log.write(line)
                if said and said[0] == "task":
                    log.flush()
                    if on_task:
                        on_task(tracker.current.ds, said[1])
                elif said and said[0] == "end":
                    log.close()
                    log = None
                    if not said[1].ok:  # as the run judges a day: the days after it need its outputs
                        stopped = True
                        break
    except BaseException:
        proc.kill()  # the caller failed or was interrupted: no day runs on without it
        raise
    finally:
        if log is not None:
            log.close()
        if stopped:
            proc.kill()
        proc.stdout.close()
        code = proc.wait()
    ran = tracker.finish(code)
    if ran and ran[-1].code == 0 and code != 0 and not stopped:  # it failed after its last day said it succeeded
        ran[-1] = replace(ran[-1], code=code)
    if early:  # printed after the last day that ran (or before any): its log says why the process ended
        with _open_log(settings, ran[-1].ds if ran else days[0], "a" if ran else "w") as log:
            log.writelines(early)
    return ran


def _open_log(settings: Settings, ds: str, mode: str):
    path = settings.layout(ds).run_log
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open(mode)


def _days_command(dag_id: str, days: list[str]) -> list[str]:
    # -P: the user's working directory must not shadow the project's packages in the process that runs every task
    return [sys.executable, "-P", "-m", "pipeline.orchestration", dag_id, *days]


def _test_days_here(dag_id: str, days: list[str]) -> int:
    """In the process test_days starts: `airflow dags test` for each day in turn, between the lines DaysTracker
    reads; the exit code of the first day that fails, 0 when all succeed."""
    from airflow.cli import cli_parser
    from airflow.configuration import write_default_airflow_configuration_if_needed

    write_default_airflow_configuration_if_needed()  # as `airflow`'s own entry point does before a command
    parser = cli_parser.get_parser()

    def dags_test(ds: str) -> None:
        args = parser.parse_args(["dags", "test", dag_id, ds])
        args.func(args)

    for ds in days:
        print(f"\n[EDGEREC DAY] start ds={ds}", flush=True)  # on a line of its own, whatever came before
        code = _exit_code(functools.partial(dags_test, ds))
        sys.stderr.flush()
        print(f"\n[EDGEREC DAY] end ds={ds} code={code}", flush=True)
        if code:
            return code
    return 0


def _exit_code(command: Callable[[], object]) -> int:
    """A command's exit code as a process would have it: 0 on return, SystemExit's code, 1 on an exception (its
    traceback or SystemExit's message printed)."""
    try:
        command()
    except SystemExit as exit_:  # "DagRun failed" (printed, as the interpreter prints it), or argparse's code
        if exit_.code is None or isinstance(exit_.code, int):
            return int(exit_.code or 0)
        print(exit_.code, file=sys.stderr)
        return 1
    except Exception:  # told in the day's log; the day ends failed
        traceback.print_exc()
        return 1
    return 0


def tail_errors(log_path: Path, lines: int = 25) -> str:
    """The end of a run's log from its last traceback (or its last `lines` lines): what a failure prints."""
    text = log_path.read_text(errors="replace").splitlines() if log_path.exists() else []
    start = max((i for i, line in enumerate(text) if "Traceback (most recent call last)" in line), default=None)
    shown = text[start:start + 60] if start is not None else text[-lines:]
    return "\n".join(shown)


if __name__ == "__main__":
    sys.exit(_test_days_here(sys.argv[1], sys.argv[2:]))
