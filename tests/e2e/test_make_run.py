"""The main job end to end, as `make run` runs it, on a tiny world in a private state directory."""

import configparser
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from selenium.webdriver.common.by import By

from deploy.serving.app import embedded_app
from edgerec.config import load_settings
from edgerec.recall import histories_by_user
from edgerec.reports import (
    DbtBuild,
    EvaluationGate,
    QualityChecks,
    RawValidation,
    RecallGate,
    RecallTraining,
    Servability,
    SparkSummary,
    TrainingSummary,
)
from tests.browser import body_text, headless_chromium, send_basic_auth, wait_for_text, wait_until
from tests.conftest import recording_webhook
from tests.e2e.runs import DS, EDGEREC, FIRST, RUN_TIMEOUT_S, alerts_of, day_of, run

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def two_days(tmp_path_factory):
    """FIRST and DS run as `make run` runs them, alerts to a webhook: (tmp_path, the run's result, the webhook's URL,
    the bodies it received). The UI test looks at the same state."""
    tmp_path = tmp_path_factory.mktemp("two_days")
    with recording_webhook() as (url, received):
        # the floors at 0 and no replay: a tiny world's models are noise, and the stages after a blessing are under
        # test here (the replay gate's judgement is tested in tests/integration/deploy/test_replay_gate.py); the
        # servability gate's budgets are counted from the bundle, so a loaded test machine needs no other budgets
        result = run(tmp_path, "--days", "2", EDGEREC_ALERT_WEBHOOK_URL=url, EDGEREC_GATE_MIN_GAUC="0.0",
                     EDGEREC_RECALL_MIN_RECALL_AT_20="0.0", EDGEREC_REPLAY_USERS="0")
        yield tmp_path, result, url, received


def test_run_builds_marts_and_data_docs_and_a_drifted_day_alerts_and_stops(two_days):
    tmp_path, result, url, received = two_days
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"edgerec_daily_retrain ds={DS} succeeded" in result.stdout
    # the run's last lines: what each day did, the first day's train skipped and why
    assert "the first day of a deployment has no train days" in result.stdout
    vid = TrainingSummary.read(day_of(tmp_path / "state", DS)).version_id
    table = result.stdout[result.stdout.index("== 2 days of edgerec_daily_retrain =="):].splitlines()
    assert table[1].split() == ["ds", "ran", "skipped", "failed", "outcome"]
    assert table[2].split()[0] == FIRST and table[2].split()[3:] == ["0", "no", "version", "trained"]
    assert table[3].split()[0] == DS and table[3].split()[3:] == ["0", vid, "on", "canary"]
    # one line per task; Airflow's, Spark's and dbt's own output only in the day's log
    log = tmp_path / "state" / "logs" / f"run_ds={DS}.log"
    assert f"(full log: {log})" in result.stdout and "[DAG TEST]" in log.read_text()
    assert "[DAG TEST]" not in result.stdout and "SparkSession" not in result.stdout
    task_lines = [line.split() for line in result.stdout.splitlines() if line.startswith("  ") and " s  " in line]
    assert [t[0] for t in task_lines if t[0] in ("train", "servability_gate", "promote_canary")][-3:] == [
        "train", "servability_gate", "promote_canary"]
    assert result.stdout.count("| CRBAN+HUBSM(IE&IPV) |") == 1  # the comparison table, once, in the summary
    assert "replay gate      PASSED: not judged: EDGEREC_REPLAY_USERS=0" in result.stdout
    assert "release decision none: no canary" in result.stdout  # the first version reached canary after the logs
    assert "CTR by display position" in result.stdout
    state = tmp_path / "state"
    for ds in (FIRST, DS):
        assert (state / "raw" / "events" / f"ds={ds}" / "part-00000.jsonl.gz").exists()
    assert (state / "raw" / "items" / f"ds={DS}" / "items.parquet").exists()
    report = RawValidation.read(day_of(state, DS))
    assert report.good > 1000 and report.bad == 0
    assert (state / "airflow" / "airflow.db").exists()
    for dataset in ("events", "sessionized_events", "sessions", "requests", "features", "items"):
        assert (state / "warehouse" / dataset / f"ds={DS}").is_dir(), dataset
    spec = json.loads((state / "warehouse" / "feature_spec" / f"ds={DS}" / "feature_spec.json").read_text())
    assert spec["sequence_lengths"] == {"ie": 50, "ipv": 30, "candidates": 100}
    summary = SparkSummary.read(day_of(state, DS))
    assert summary.ingest["rows_out"] == report.good
    assert summary.ingest["quarantined_by_reason"] == {}  # a clean day: nothing quarantined
    assert summary.requests["requests"] > 100
    assert "re-ranking requests" in result.stdout
    marts = DbtBuild.read(day_of(state, DS))
    assert marts.rows["fct_train_requests"] > 100 and marts.rows["fct_test_requests"] > 100
    assert marts.rows["rpt_daily_stats"] == 2
    for layer in ("raw", "features", "marts"):
        quality = QualityChecks.read(day_of(state, DS), layer=layer)
        assert quality.passed and quality.failed_block == 0, layer
    assert (state / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html").exists()
    assert "quality marts    passed" in result.stdout
    # Training ran on the second day (the first had no train days), registered a version and judged it.
    training = TrainingSummary.read(day_of(state, DS))
    assert training.version == "1" and training.version_id.startswith("v20261105-")
    gate = EvaluationGate.read(day_of(state, DS))
    assert gate.version == "1" and gate.champion is None and "judged by the floor alone" in gate.reason
    assert gate.blessed and f"evaluation gate  BLESSED: {gate.reason}" in result.stdout
    assert "| CRBAN+HUBSM(IE&IPV) |" in result.stdout and "| DNN-rank |" in result.stdout
    assert not day_of(state, FIRST).training.exists()
    # ... and the cloud's recall beside it: trained, compared, registered and judged by its own gate
    recall = RecallTraining.read(day_of(state, DS))
    assert recall.version == "1" and recall.registered_model == "edgerec-recall" and recall.test_clicks > 0
    assert RecallGate.read(day_of(state, DS)).version_id == recall.version_id
    assert f"recall version   edgerec-recall version 1 ({recall.version_id})" in result.stdout
    # The blessed version was exported and went through the servability gate (its latency figures depend on the
    # machine's load, so only the checks of the bundle itself are asserted here).
    bundle = state / "bundles" / training.version_id
    assert json.loads((bundle / "manifest.json").read_text())["version"] == training.version_id
    servability = Servability.read(day_of(state, DS))
    assert servability.passed, servability.checks
    # ... deployed (KV and CDN) and put on the canary channel for 10% of devices
    vid = training.version_id
    assert (state / "cdn" / "models" / vid / "manifest.json").exists()
    canary = json.loads((state / "cdn" / "channels" / "canary.json").read_text())
    assert (canary["version"], canary["previous"], canary["rollout_percent"]) == (vid, None, 10.0)
    assert f"channel canary   {vid} for 10% of devices" in result.stdout
    audit = [json.loads(line) for line in (state / "release" / "audit.jsonl").read_text().splitlines()]
    reranker = [a for a in audit if a.get("model") is None and a.get("channel", "canary") == "canary"]
    assert [(a["action"], a.get("phase")) for a in reranker] == [("deploy", None), ("promote", "intent"),
                                                                ("promote", "done")]
    assert (canary["channel"], canary["sequence"], reranker[-1]["sequence"]) == ("canary", 1, 1)
    # ... and the recall deployed beside it, on its own channel: the paging API serves its candidates with the
    # embedding rows of the client's re-ranker version
    pointer = json.loads((state / "cdn" / "channels" / "recall.json").read_text())
    assert (pointer["version"], pointer["rollout_percent"]) == (recall.version_id, 100.0)
    assert [(a["action"], a.get("phase")) for a in audit if a.get("model") == "edgerec-recall"
            or a.get("channel") == "recall"] == [("deploy", None), ("promote", "intent"), ("promote", "done")]
    settings = load_settings({"EDGEREC_HOME": str(state), "EDGEREC_SIM_USERS": "25"})
    user = next(iter(histories_by_user(settings.duckdb_path)))
    page = TestClient(embedded_app(settings, users=25)).post("/v1/page", json={
        "user_id": user, "device_id": "dev-e2e", "model_version": vid}).json()
    assert page["candidates_from"] == {"source": "batch", "recall_version": recall.version_id}
    assert len(page["candidates"]) == 100 and len(page["rows"]["base64"]) == 100
    assert f"servability of {training.version_id}: " in result.stdout
    # The first day had no train days yet: a warning, sent to the webhook too (a tiny world may warn on more).
    assert {"level": "warn", "check": "marts.day.train_requests", "ds": FIRST} in [
        {k: a[k] for k in ("level", "check", "ds")} for a in alerts_of(received)]
    assert {a["level"] for a in alerts_of(received)} == {"warn"}

    # The next day clicks jump (as if a client logged every click several times): the CTR drift blocks it.
    received.clear()
    drifted = tmp_path / "drifted.json"
    drifted.write_text(json.dumps({"behaviour": {"base_click_logit": -3.3}}))
    result = subprocess.run([EDGEREC, "run", "--date", "2026-11-06", "--days", "1"], capture_output=True, text=True,
                            timeout=RUN_TIMEOUT_S,
                            env=dict(os.environ, EDGEREC_HOME=str(state), EDGEREC_SIM_USERS="25",
                                     EDGEREC_SIM_CONFIG=str(drifted), EDGEREC_ALERT_WEBHOOK_URL=url))
    assert result.returncode != 0
    assert "the daily DAG failed for ds=2026-11-06" in result.stderr
    blocking = [a for a in alerts_of(received) if a["level"] == "block"]
    assert blocking and all(".drift." in a["check"] and a["ds"] == "2026-11-06" for a in blocking), blocking
    for alert in blocking:  # e.g. raw.drift.event_volume_change<=block: observed 1.2, expected <= 0.8
        assert alert["observed"] > float(alert["threshold"].removeprefix("<= "))
        assert os.path.exists(alert["docs"]) and alert["docs"].endswith(".html")
    marts = QualityChecks.read(day_of(state, "2026-11-06"), layer="marts")  # the last gate before training
    assert marts is None or marts.passed is False


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def ui_serving(state: Path, out: Path):
    """`edgerec ui` over state, once it printed the addresses: (the process, Airflow's URL, MLflow's URL). Stopped
    with SIGINT, as Ctrl-C stops it."""
    airflow_port, mlflow_port = free_port(), free_port()
    with out.open("w") as stdout:
        proc = subprocess.Popen([EDGEREC, "ui", "--airflow-port", str(airflow_port), "--mlflow-port", str(mlflow_port)],
                                env={**os.environ, "EDGEREC_HOME": str(state)}, stdout=stdout,
                                stderr=subprocess.STDOUT)
    try:
        polls = 900  # a hang guard: the command fails by itself when a server does not answer
        while "Ctrl-C stops both." not in out.read_text() and proc.poll() is None and polls:
            time.sleep(1)
            polls -= 1
        assert "Ctrl-C stops both." in out.read_text(), out.read_text()
        yield proc, f"http://127.0.0.1:{airflow_port}", f"http://127.0.0.1:{mlflow_port}"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)


def status_without_login(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_ui_shows_the_days_run_on_the_dag_page_and_its_version_on_the_model_page_behind_logins(two_days, tmp_path):
    state = two_days[0] / "state"
    assert two_days[1].returncode == 0, "the run before left no finished day to look at"
    with sqlite3.connect(state / "airflow" / "airflow.db") as db:
        [(run_id, run_state)] = db.execute("select run_id, state from dag_run where dag_id = 'edgerec_daily_retrain' "
                                           "and logical_date like ?", (f"{DS}%",)).fetchall()
    assert run_state == "success"
    training = TrainingSummary.read(day_of(state, DS))
    out, evidence = tmp_path / "ui.out", tmp_path / "browser"
    with ui_serving(state, out) as (proc, airflow, mlflow):
        printed = out.read_text()
        passwords, auth_config = state / "ui" / "airflow-passwords.json", state / "ui" / "mlflow-auth.ini"
        assert f"Airflow UI  {airflow}/dags/edgerec_daily_retrain\n            user admin, password in {passwords}" \
            in printed
        assert f"MLflow UI   {mlflow}/#/models/edgerec-reranker\n            user admin, password in {auth_config}" \
            in printed
        assert f"Data Docs   {state / 'gx' / 'uncommitted' / 'data_docs' / 'local_site' / 'index.html'}\n" in printed
        assert f"dbt docs    {state / 'dbt' / 'target' / 'index.html'}\n" in printed
        assert (state / "dbt" / "target" / "index.html").exists()
        # every network service asks who is calling
        assert status_without_login(f"{airflow}/api/v2/dags") == 401
        assert status_without_login(f"{mlflow}/api/2.0/mlflow/registered-models/search?max_results=1") == 401
        airflow_password = json.loads(passwords.read_text())["admin"]
        config = configparser.ConfigParser()
        config.read(auth_config)
        mlflow_password = config["mlflow"]["admin_password"]

        with headless_chromium() as browser:
            browser.get(f"{airflow}/dags/edgerec_daily_retrain/runs")
            wait_until(browser, lambda d: "/auth/login" in d.current_url and d.find_elements(By.NAME, "password"),
                       "the Airflow login form", evidence)
            browser.find_element(By.NAME, "username").send_keys("admin")
            browser.find_element(By.NAME, "password").send_keys(airflow_password)
            browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
            row = wait_until(browser, lambda d: d.find_elements(By.XPATH, f"//tr[contains(., '{run_id}')]"),
                             f"the run of ds={DS} ({run_id}) on the DAG's runs page", evidence)
            assert "/dags/edgerec_daily_retrain/runs" in browser.current_url and "Success" in row[0].text, row[0].text

            send_basic_auth(browser, "admin", mlflow_password)
            browser.get(f"{mlflow}/#/models/edgerec-reranker")
            wait_for_text(browser, training.version_id, evidence)  # the edgerec.version tag: the day and the run
            assert f"Version {training.version}" in body_text(browser)
    assert proc.returncode == 0 and out.read_text().endswith("stopped the UIs\n"), out.read_text()
    # the passwords are in their files only: never printed, never logged
    shown = [out, *(state / "logs").glob("ui-*.log")]
    assert all(secret not in path.read_text() for path in shown for secret in (airflow_password, mlflow_password))
