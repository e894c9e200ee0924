"""Following `airflow dags test` output: one line per task with its seconds, state and why it was skipped, and the
error a failed run shows (the full output goes to the run's log file); which logical dates the DAGs can run."""

import sys
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from edgerec.config import DAG_START, check_logical_date, load_settings
from edgerec.errors import ConfigError
from edgerec.reports import SparkSummary
from pipeline import orchestration, stages
from pipeline.cli import app
from pipeline.cli.run import _task_figure
from pipeline.orchestration import DagRun, DaysTracker, TaskRun, TaskTracker, tail_errors

pytestmark = pytest.mark.unit

OUTPUT = """\
2026-12-02T09:35:47Z [info     ] [DAG TEST] starting task_id=simulate_raw map_index=-1 [airflow.sdk] loc=dag.py:1501
2026-12-02T09:35:48Z [info     ] Task started [routes] previous_state=queued ti_id=1
26/12/02 09:35:49 WARN SparkSession: Using an existing Spark session
2026-12-02T09:35:55Z [info     ] Task instance state updated [routes] new_state=success rows_affected=1 ti_id=1
2026-12-02T09:35:55Z [info     ] [DAG TEST] end task task_id=simulate_raw map_index=-1 [airflow.sdk] loc=dag.py:1563
2026-12-02T09:35:56Z [info     ] [DAG TEST] starting task_id=train map_index=-1 [airflow.sdk] loc=dag.py:1501
2026-12-02T09:35:57Z [info     ] Skipping task. [task] reason='no train days in the marts yet' loc=task_runner.py:1
2026-12-02T09:35:57Z [info     ] Task instance state updated [routes] new_state=skipped rows_affected=1 ti_id=2
2026-12-02T09:35:57Z [info     ] [DAG TEST] end task task_id=train map_index=-1 [airflow.sdk] loc=dag.py:1563
2026-12-02T09:35:58Z [info     ] [DAG TEST] starting task_id=export map_index=-1 [airflow.sdk] loc=dag.py:1501
2026-12-02T09:35:59Z [info     ] [DAG TEST] end task task_id=export map_index=-1 [airflow.sdk] loc=dag.py:1563
"""


def test_each_task_is_reported_once_as_it_ends_with_its_seconds_and_state():
    ticks = iter([100.0, 107.5, 110.0, 111.0, 120.0, 120.25])
    tracker = TaskTracker(clock=lambda: next(ticks))
    ended = [run for line in OUTPUT.splitlines(keepends=True) if (run := tracker.feed(line))]
    assert ended == [TaskRun("simulate_raw", 7.5, "success"),
                     TaskRun("train", 1.0, "skipped", "no train days in the marts yet"),
                     TaskRun("export", 0.25, "unknown")]


def test_a_day_run_counts_its_tasks_and_names_the_first_that_did_not_succeed_or_skip():
    day = DagRun("2026-11-03", 1, [TaskRun("simulate_raw", 1.0, "success"), TaskRun("train", 1.0, "skipped"),
                                   TaskRun("export", 1.0, "failed"), TaskRun("deploy", 1.0, "upstream_failed")])
    assert (day.count("success"), day.count("skipped"), day.failed) == (1, 1, TaskRun("export", 1.0, "failed"))
    assert DagRun("2026-11-03", 0, [TaskRun("train", 1.0, "success")]).failed is None


def test_any_date_from_the_dags_start_runs_and_others_are_refused_naming_date_and_reason():
    assert str(DAG_START.date()) == "2000-01-01"
    assert check_logical_date("2018-11-08") == "2018-11-08"
    assert check_logical_date("2000-01-01") == "2000-01-01"
    with pytest.raises(ConfigError, match="logical date 1999-12-31 lies before the DAGs' start_date 2000-01-01"):
        check_logical_date("1999-12-31")
    for bad in ("2026-13-01", "yesterday", "20261103"):
        with pytest.raises(ConfigError, match=f"logical date '{bad}' is not"):
            check_logical_date(bad)


@pytest.mark.parametrize(("args", "message"), [
    (["--date", "2000-01-02", "--days", "3"], "error: logical date 1999-12-31 lies before the DAGs' start_date"),
    (["--date", "2026-02-30"], "error: logical date '2026-02-30' is not a date of the form YYYY-MM-DD"),
    (["--days", "0"], "Invalid value for '--days': Input should be greater than or equal to 1"),
])
def test_the_run_command_refuses_dates_it_cannot_run_before_any_day_runs(tmp_path, args, message):
    result = CliRunner().invoke(app, ["run", *args], env={"EDGEREC_HOME": str(tmp_path / "home")})
    assert result.exit_code == 2
    assert message in " ".join(result.output.replace("│", " ").split())  # a usage error comes boxed
    assert "== edgerec_daily_retrain" not in result.output and not (tmp_path / "home").exists()


def test_a_failed_run_shows_its_last_traceback_or_else_its_last_lines(tmp_path):
    log = tmp_path / "run.log"
    log.write_text("starting\nTraceback (most recent call last):\n  File old\nValueError: first\nretrying\n"
                   "Traceback (most recent call last):\n  File \"stages.py\", line 3\nKeyError: 'ds'\nend\n")
    assert tail_errors(log) == "Traceback (most recent call last):\n  File \"stages.py\", line 3\nKeyError: 'ds'\nend"
    log.write_text("".join(f"line {i}\n" for i in range(40)))
    assert tail_errors(log, lines=3) == "line 37\nline 38\nline 39"
    assert tail_errors(tmp_path / "missing.log") == ""


def test_an_external_backfill_whose_days_are_not_in_the_raw_zone_stops_before_any_day_runs(tmp_path):
    (tmp_path / "raw" / "events" / "ds=2019-03-01").mkdir(parents=True)
    env = {"EDGEREC_HOME": str(tmp_path / "home"), "EDGEREC_SOURCE": "external",
           "EDGEREC_RAW_DIR": str(tmp_path / "raw")}
    result = CliRunner().invoke(app, ["run", "--date", "2019-03-03", "--days", "3"], env=env)
    assert result.exit_code == 1
    assert result.output == (f"error: EDGEREC_SOURCE=external, and the raw zone {tmp_path}/raw holds no events for "
                             f"2019-03-02, 2019-03-03 (2019-03-01 .. 2019-03-03 asked); `edgerec logs check "
                             f"{tmp_path}/raw` lists the days it holds\n")
    assert not (tmp_path / "home").exists()


def test_the_spark_tasks_line_gives_each_jobs_figure_that_ran(tmp_path):
    settings = load_settings({"EDGEREC_HOME": str(tmp_path)})
    day = settings.layout("2026-11-03")
    assert _task_figure(settings, "2026-11-03", "spark") == ""  # no summary: no figure, no error
    SparkSummary.record(day, "ingest", {"rows_out": 12345, "bad_share": 0.0012})
    SparkSummary.record(day, "sessionize", {"sessions": 310})
    assert _task_figure(settings, "2026-11-03", "spark") == "12,345 rows (0.12% quarantined), 310 sessions"
    SparkSummary.record(day, "requests", {"requests": 2048})
    assert _task_figure(settings, "2026-11-03", "spark").endswith("310 sessions, 2,048 requests")
    SparkSummary.record(day, "bucketize", {"feature_spec_sha256": "0123456789abcdef", "label_rate": 0.0625})
    assert _task_figure(settings, "2026-11-03", "spark") == (
        "12,345 rows (0.12% quarantined), 310 sessions, 2,048 requests (label rate 0.0625), feature spec 0123456789ab")


def test_the_dags_spark_task_runs_the_four_jobs_in_order_in_one_call(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("spark_jobs.jobs.run_jobs",
                        lambda settings, ds, names: calls.append((ds, names)) or {"ran": names})
    assert stages.spark(load_settings({"EDGEREC_HOME": str(tmp_path)}), "2026-11-03") == {
        "ran": ["ingest", "sessionize", "requests", "bucketize"]}
    assert calls == [("2026-11-03", ["ingest", "sessionize", "requests", "bucketize"])]


def day_output(ds: str, code: int | None, tasks: str = OUTPUT) -> str:
    """What the days' process prints for one day (code None: it died in the day)."""
    return f"[EDGEREC DAY] start ds={ds}\n{tasks}" + (f"[EDGEREC DAY] end ds={ds} code={code}\n" if code is not None
                                                      else "")


DONE = "".join(OUTPUT.splitlines(True)[:5])  # a day whose one task succeeded


def told(what) -> str:
    return what if isinstance(what, str) else what.task if isinstance(what, TaskRun) else f"{what.ds} {what.code}"


def test_a_process_of_several_days_tells_each_day_its_tasks_and_exit_code():
    tracker, said = DaysTracker(clock=iter(range(100)).__next__), []
    first_line = OUTPUT.splitlines(True)[0]  # a task that started and never ended
    output = ("Airflow starting\n" + day_output("2026-11-01", 0) + "[EDGEREC DAY] end ds=2026-11-01 code=0\n"
              + day_output("2026-11-02", 1, first_line))
    for line in output.splitlines(True):
        if got := tracker.feed(line):
            said.append((got[0], told(got[1])))
    assert said == [("start", "2026-11-01"), ("task", "simulate_raw"), ("task", "train"), ("task", "export"),
                    ("end", "2026-11-01 0"), ("start", "2026-11-02"), ("end", "2026-11-02 1")]  # a stray end: none
    days = tracker.finish(1)
    assert [(d.ds, d.code, [t.task for t in d.tasks]) for d in days] == [
        ("2026-11-01", 0, ["simulate_raw", "train", "export"]), ("2026-11-02", 1, [])]
    assert [(t.state, t.reason) for t in days[0].tasks] == [
        ("success", ""), ("skipped", "no train days in the marts yet"), ("unknown", "")]


def test_a_day_the_process_died_in_ends_with_its_exit_code_or_else_1_and_one_never_ended_with_1():
    for code, expected in ((-9, -9), (0, 1)):
        tracker = DaysTracker()
        for line in day_output("2026-11-01", None).splitlines(True):
            tracker.feed(line)
        assert [(d.ds, d.code, len(d.tasks)) for d in tracker.finish(code)] == [("2026-11-01", expected, 3)]
    tracker = DaysTracker()
    for line in (day_output("2026-11-01", None) + day_output("2026-11-02", 0)).splitlines(True):
        tracker.feed(line)
    assert [(d.ds, d.code) for d in tracker.finish(0)] == [("2026-11-01", 1), ("2026-11-02", 0)]


def test_a_retried_task_counts_by_its_last_attempt_and_a_day_is_ok_when_airflow_and_each_task_say_so():
    retried = DagRun("2026-11-03", 0, [TaskRun("spark", 1.0, "up_for_retry"), TaskRun("spark", 1.0, "success"),
                                       TaskRun("train", 1.0, "skipped")])
    assert (retried.count("success"), retried.count("up_for_retry"), retried.failed, retried.ok) == (1, 0, None, True)
    assert not replace(retried, code=1).ok and not DagRun("2026-11-03", 0, []).ok
    assert not DagRun("2026-11-03", 0, [TaskRun("spark", 1.0, "success"), TaskRun("train", 1.0, "failed")]).ok


def fake_process(monkeypatch, printed: str, code: int) -> None:
    """test_days' process replaced by one that prints `printed` and exits with `code`."""
    script = "import sys; sys.stdout.write(sys.argv[1]); sys.exit(int(sys.argv[2]))"
    monkeypatch.setattr(orchestration, "init_airflow", lambda settings: None)
    monkeypatch.setattr(orchestration, "_days_command",
                        lambda dag, days: [sys.executable, "-c", script, printed, str(code)])


def test_each_day_s_output_goes_to_its_log_and_what_came_before_to_the_first(tmp_path, monkeypatch):
    settings = load_settings({"EDGEREC_HOME": str(tmp_path)})
    fake_process(monkeypatch, "Airflow starting\n" + day_output("2026-11-01", 0, DONE)
                 + day_output("2026-11-02", None), 3)
    heard = []
    days = orchestration.test_days(settings, "edgerec_daily_retrain", ["2026-11-01", "2026-11-02", "2026-11-03"],
                                   on_day=heard.append, on_task=lambda ds, task: heard.append((ds, task.task)))
    assert [(d.ds, d.code) for d in days] == [("2026-11-01", 0), ("2026-11-02", 3)]
    assert heard == ["2026-11-01", ("2026-11-01", "simulate_raw"), "2026-11-02", ("2026-11-02", "simulate_raw"),
                     ("2026-11-02", "train"), ("2026-11-02", "export")]
    first = settings.layout("2026-11-01").run_log.read_text()
    assert first.startswith("Airflow starting\n2026-12-02T09:35:47Z") and first.endswith("code=0\n")
    assert settings.layout("2026-11-02").run_log.read_text() == OUTPUT
    assert not settings.layout("2026-11-03").run_log.exists()


def test_what_the_process_printed_after_its_last_day_goes_to_that_day_s_log_and_its_exit_code_fails_it(
        tmp_path, monkeypatch):
    settings = load_settings({"EDGEREC_HOME": str(tmp_path)})
    settings.layout("2026-11-02").run_log.parent.mkdir(parents=True)
    settings.layout("2026-11-02").run_log.write_text("the log of an earlier run\n")
    fake_process(monkeypatch, day_output("2026-11-01", 0, DONE) + "MemoryError\n", 1)
    days = orchestration.test_days(settings, "edgerec_daily_retrain", ["2026-11-01", "2026-11-02"])
    assert [(d.ds, d.code) for d in days] == [("2026-11-01", 1)]
    assert settings.layout("2026-11-01").run_log.read_text().endswith("code=0\nMemoryError\n")
    assert settings.layout("2026-11-02").run_log.read_text() == "the log of an earlier run\n"


def test_a_day_that_is_not_ok_stops_the_days_after_it(tmp_path, monkeypatch):
    settings = load_settings({"EDGEREC_HOME": str(tmp_path)})
    failed_task = OUTPUT.replace("new_state=success", "new_state=failed")
    fake_process(monkeypatch, day_output("2026-11-01", 0, failed_task) + "the next day starting\n"
                 + day_output("2026-11-02", 0), 0)
    days = orchestration.test_days(settings, "edgerec_daily_retrain", ["2026-11-01", "2026-11-02"])
    assert [(d.ds, d.code, d.failed.task) for d in days] == [("2026-11-01", 0, "simulate_raw")]
    assert not settings.layout("2026-11-02").run_log.exists()


@pytest.mark.parametrize(("raised", "code", "printed"), [
    (None, 0, ""), (SystemExit(None), 0, ""), (SystemExit(0), 0, ""), (SystemExit(2), 2, ""),
    (SystemExit("DagRun failed"), 1, "DagRun failed\n"), (KeyError("ds"), 1, "KeyError: 'ds'\n")])
def test_a_day_s_command_ends_with_the_exit_code_a_process_would_have(raised, code, printed, capsys):
    def command():
        if raised is not None:
            raise raised

    assert orchestration._exit_code(command) == code
    assert capsys.readouterr().err.endswith(printed)


def test_the_days_process_starts_spark_with_the_options_of_the_run_s_largest_day(tmp_path, monkeypatch):
    settings = load_settings({"EDGEREC_HOME": str(tmp_path)})
    for ds, size in (("2026-11-01", 2**20), ("2026-11-02", 64 * 2**20)):
        settings.layout(ds).raw_events.mkdir(parents=True)
        with (settings.layout(ds).raw_events / "part-0.jsonl.gz").open("wb") as events:
            events.truncate(size)  # sparse: its size is what counts
    monkeypatch.delenv("EDGEREC_SPARK_JAVA_OPTIONS", raising=False)
    monkeypatch.setattr(orchestration, "init_airflow", lambda settings: None)
    monkeypatch.setattr(orchestration, "_days_command", lambda dag, days: [sys.executable, "-c", (
        "import os; print('[EDGEREC DAY] start ds=2026-11-01'); print(os.environ['EDGEREC_SPARK_JAVA_OPTIONS'])")])
    orchestration.test_days(settings, "edgerec_daily_retrain", ["2026-11-01", "2026-11-02"])
    assert settings.layout("2026-11-01").run_log.read_text() == "-XX:+UseParallelGC\n"
