"""Following `airflow dags test` output: one line per task with its seconds and state, and the error a failed run
shows (the full output goes to the run's log file)."""

import pytest

from pipeline.orchestration import TaskRun, TaskTracker, tail_errors

pytestmark = pytest.mark.unit

OUTPUT = """\
2026-12-02T09:35:47Z [info     ] [DAG TEST] starting task_id=simulate_raw map_index=-1 [airflow.sdk] loc=dag.py:1501
2026-12-02T09:35:48Z [info     ] Task started [routes] previous_state=queued ti_id=1
26/12/02 09:35:49 WARN SparkSession: Using an existing Spark session
2026-12-02T09:35:55Z [info     ] Task instance state updated [routes] new_state=success rows_affected=1 ti_id=1
2026-12-02T09:35:55Z [info     ] [DAG TEST] end task task_id=simulate_raw map_index=-1 [airflow.sdk] loc=dag.py:1563
2026-12-02T09:35:56Z [info     ] [DAG TEST] starting task_id=train map_index=-1 [airflow.sdk] loc=dag.py:1501
2026-12-02T09:35:57Z [info     ] Task instance state updated [routes] new_state=skipped rows_affected=1 ti_id=2
2026-12-02T09:35:57Z [info     ] [DAG TEST] end task task_id=train map_index=-1 [airflow.sdk] loc=dag.py:1563
2026-12-02T09:35:58Z [info     ] [DAG TEST] starting task_id=export map_index=-1 [airflow.sdk] loc=dag.py:1501
2026-12-02T09:35:59Z [info     ] [DAG TEST] end task task_id=export map_index=-1 [airflow.sdk] loc=dag.py:1563
"""


def test_each_task_is_reported_once_as_it_ends_with_its_seconds_and_state():
    ticks = iter([100.0, 107.5, 110.0, 111.0, 120.0, 120.25])
    tracker = TaskTracker(clock=lambda: next(ticks))
    ended = [run for line in OUTPUT.splitlines(keepends=True) if (run := tracker.feed(line))]
    assert ended == [TaskRun("simulate_raw", 7.5, "success"), TaskRun("train", 1.0, "skipped"),
                     TaskRun("export", 0.25, "unknown")]


def test_a_failed_run_shows_its_last_traceback_or_else_its_last_lines(tmp_path):
    log = tmp_path / "run.log"
    log.write_text("starting\nTraceback (most recent call last):\n  File old\nValueError: first\nretrying\n"
                   "Traceback (most recent call last):\n  File \"stages.py\", line 3\nKeyError: 'ds'\nend\n")
    assert tail_errors(log) == "Traceback (most recent call last):\n  File \"stages.py\", line 3\nKeyError: 'ds'\nend"
    log.write_text("".join(f"line {i}\n" for i in range(40)))
    assert tail_errors(log, lines=3) == "line 37\nline 38\nline 39"
    assert tail_errors(tmp_path / "missing.log") == ""
