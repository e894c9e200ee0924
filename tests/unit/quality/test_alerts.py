"""Alerts: what they say, and that each notifier delivers (or logs why it could not)."""

import logging
import socket

import pytest

from edgerec.alerts import (
    Alert,
    AlertedFailure,
    SmtpNotifier,
    WebhookNotifier,
    notifier_from_settings,
    task_failure_alert,
)
from edgerec.config import load_settings

pytestmark = pytest.mark.unit

ALERT = Alert(level="block", check="features.day.label_rate", observed=0.0, threshold="in [0.005, 0.5]",
              ds="2026-11-05", docs="/state/gx/uncommitted/data_docs/local_site/validations/x.html",
              source="quality:features")


def test_alert_line_names_check_observed_threshold_ds_and_docs():
    assert ALERT.line() == (
        "[BLOCK] quality:features ds=2026-11-05: features.day.label_rate: observed 0.0, expected in [0.005, 0.5]"
        " - see /state/gx/uncommitted/data_docs/local_site/validations/x.html")


def test_webhook_receives_the_alert_fields(webhook):
    url, received = webhook
    WebhookNotifier(url).send([ALERT])
    assert len(received) == 1
    body = received[0]
    assert body["alerts"] == [{"level": "block", "check": "features.day.label_rate", "observed": 0.0,
                               "threshold": "in [0.005, 0.5]", "ds": "2026-11-05",
                               "docs": "/state/gx/uncommitted/data_docs/local_site/validations/x.html",
                               "source": "quality:features"}]
    assert body["text"].splitlines() == ["edgerec: 1 alert(s) (block) for ds=2026-11-05", ALERT.line()]


def test_settings_wire_the_webhook_beside_the_log(webhook, caplog):
    url, received = webhook
    notifier = notifier_from_settings(load_settings({"EDGEREC_ALERT_WEBHOOK_URL": url}))
    with caplog.at_level(logging.WARNING, logger="edgerec.alerts"):
        notifier.send([ALERT])
    assert [r.getMessage() for r in caplog.records] == [ALERT.line()]
    assert received[0]["alerts"][0]["check"] == "features.day.label_rate"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_webhook_is_logged_and_reported_not_raised_and_its_token_stays_out(caplog):
    port = _closed_port()
    notifier = WebhookNotifier(f"http://127.0.0.1:{port}/services/T0/B0/tok3n", attempts=2)
    with caplog.at_level(logging.ERROR, logger="edgerec.alerts"):
        failure = notifier.send([ALERT])
    assert failure.startswith(f"alert webhook http://127.0.0.1:{port}/*** failed after 2 attempts: ")
    assert "failed after 2 attempts" in caplog.text and "tok3n" not in caplog.text


def test_email_names_the_alerts_and_an_unreachable_server_is_logged(caplog):
    notifier = SmtpNotifier("127.0.0.1", _closed_port(), "edgerec@localhost", ["oncall@example.com"])
    message = notifier.message([ALERT])
    assert message["Subject"] == "edgerec: 1 alert(s) (block) for ds=2026-11-05"
    assert message["To"] == "oncall@example.com"
    assert ALERT.line() in message.get_content()
    with caplog.at_level(logging.ERROR, logger="edgerec.alerts"):
        failure = notifier.send([ALERT])
    assert "alert email via 127.0.0.1" in caplog.text and failure.startswith("alert email via 127.0.0.1:")


class _TaskInstance:
    dag_id, task_id, log_url = "edgerec_daily_retrain", "spark", "http://airflow/log"


def test_a_failed_task_alerts_with_its_error_unless_it_already_alerted():
    alert = task_failure_alert({"ti": _TaskInstance(), "ds": "2026-11-05", "exception": ValueError("bad day")})
    assert alert == Alert(level="error", check="task edgerec_daily_retrain.spark failed",
                          observed="ValueError: bad day", threshold="success", ds="2026-11-05",
                          docs="http://airflow/log", source="edgerec_daily_retrain")
    noted = ValueError("bad day")
    noted.add_note("in the Spark job requests for ds=2026-11-05")
    alert = task_failure_alert({"ti": _TaskInstance(), "ds": "2026-11-05", "exception": noted})
    assert alert.observed == "ValueError: bad day (in the Spark job requests for ds=2026-11-05)"
    leaky = ConnectionError("cannot reach postgresql://edgerec:s3cret@db:5432/marts")
    alert = task_failure_alert({"ti": _TaskInstance(), "ds": "2026-11-05", "exception": leaky})
    assert "s3cret" not in alert.observed and alert.observed.startswith("ConnectionError: cannot reach postgresql://")
    assert task_failure_alert({"ti": _TaskInstance(), "ds": "2026-11-05",
                               "exception": AlertedFailure("quality gate")}) is None
