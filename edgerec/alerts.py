"""Alerts to the on-call engineer: what failed, what was observed, the threshold, the ds and where to look.

Notifiers are pluggable: the log always, a webhook (JSON POST; its `text` field is what chat incoming
webhooks show) when EDGEREC_ALERT_WEBHOOK_URL is set, SMTP email when EDGEREC_ALERT_EMAIL_TO is set.
A notifier that cannot deliver logs the error (never the webhook's token: its URL is shown as scheme and host) and
returns it, and never hides the failure it was reporting.
"""

from __future__ import annotations

import json
import logging
import smtplib
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from email.message import EmailMessage
from typing import Any, Literal, Protocol

from edgerec.config import Settings, load_settings
from edgerec.errors import EdgeRecError, with_notes
from edgerec.redact import host_only, scrub

log = logging.getLogger("edgerec.alerts")

Level = Literal["block", "warn", "error"]


@dataclass(frozen=True)
class Alert:
    """One failed check (or failed task). `level`: block stops the day, warn does not, error is a task failure."""

    level: Level
    check: str
    observed: Any
    threshold: str
    ds: str
    docs: str | None = None
    source: str = "edgerec"

    def line(self) -> str:
        where = f" - see {self.docs}" if self.docs else ""
        return (f"[{self.level.upper()}] {self.source} ds={self.ds}: {self.check}: observed {self.observed}, "
                f"expected {self.threshold}{where}")

    def to_dict(self) -> dict:
        return asdict(self)


def summary_line(alerts: Sequence[Alert]) -> str:
    levels = sorted({a.level for a in alerts})
    days = sorted({a.ds for a in alerts})
    return f"edgerec: {len(alerts)} alert(s) ({', '.join(levels)}) for ds={', '.join(days)}"


class Notifier(Protocol):
    name: str

    def send(self, alerts: Sequence[Alert]) -> str | None:
        """Deliver; None when delivered, else why not (already logged)."""


class LogNotifier:
    name = "log"

    def send(self, alerts: Sequence[Alert]) -> str | None:
        for alert in alerts:
            log.log(logging.WARNING if alert.level == "warn" else logging.ERROR, "%s", alert.line())
        return None


class WebhookNotifier:
    """POST {"text": ..., "alerts": [...]} as JSON; retried with backoff on network errors."""

    name = "webhook"

    def __init__(self, url: str, attempts: int = 3, timeout_s: float = 10.0):
        self.url, self.attempts, self.timeout_s = url, attempts, timeout_s

    def payload(self, alerts: Sequence[Alert]) -> dict:
        text = "\n".join([summary_line(alerts), *(a.line() for a in alerts)])
        return {"text": text, "alerts": [a.to_dict() for a in alerts]}

    def send(self, alerts: Sequence[Alert]) -> str | None:
        body = json.dumps(self.payload(alerts), default=str).encode()
        request = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        for attempt in range(1, self.attempts + 1):
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    response.read()
                return None
            except OSError as error:  # URLError, HTTPError and timeouts are all OSErrors
                if attempt == self.attempts:
                    failure = f"alert webhook {host_only(self.url)} failed after {attempt} attempts: {error}"
                    log.error("%s", failure)
                    return failure
                time.sleep(0.5 * 2 ** (attempt - 1))
        return None


class SmtpNotifier:
    name = "email"

    def __init__(self, host: str, port: int, sender: str, recipients: Sequence[str], timeout_s: float = 10.0):
        self.host, self.port, self.sender, self.recipients = host, port, sender, list(recipients)
        self.timeout_s = timeout_s

    def message(self, alerts: Sequence[Alert]) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = summary_line(alerts)
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message.set_content("\n\n".join(a.line() for a in alerts) + "\n")
        return message

    def send(self, alerts: Sequence[Alert]) -> str | None:
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
                smtp.send_message(self.message(alerts))
        except (OSError, smtplib.SMTPException) as error:
            failure = f"alert email via {self.host}:{self.port} failed: {error}"
            log.error("%s", failure)
            return failure
        return None


class FanOut:
    def __init__(self, notifiers: Sequence[Notifier]):
        self.notifiers = list(notifiers)

    @property
    def names(self) -> list[str]:
        return [n.name for n in self.notifiers]

    def send(self, alerts: Sequence[Alert]) -> dict[str, str]:
        """Every notifier tries, whatever the others do; the failures by notifier name."""
        failures = {}
        for notifier in self.notifiers if alerts else ():
            if (failure := notifier.send(alerts)) is not None:
                failures[notifier.name] = failure
        return failures


def notifier_from_settings(settings: Settings) -> FanOut:
    notifiers: list[Notifier] = [LogNotifier()]
    if settings.alert.webhook_url:
        notifiers.append(WebhookNotifier(settings.alert.webhook_url))
    if settings.alert.email_to:
        recipients = [a.strip() for a in settings.alert.email_to.split(",") if a.strip()]
        notifiers.append(SmtpNotifier(settings.alert.smtp_host, settings.alert.smtp_port,
                                      settings.alert.email_from, recipients))
    return FanOut(notifiers)


class AlertedFailure(EdgeRecError):
    """A failure whose alerts were already sent with their details; the task-failure alert skips it."""


def task_failure_alert(context: Mapping[str, Any]) -> Alert | None:
    """The alert for a failed Airflow task (None when the failure already alerted on its own)."""
    error = context.get("exception")
    if isinstance(error, AlertedFailure):
        return None
    ti = context.get("ti") or context.get("task_instance")
    dag_id = getattr(ti, "dag_id", "?")
    task_id = getattr(ti, "task_id", "?")
    return Alert(level="error", check=f"task {dag_id}.{task_id} failed",
                 observed=scrub(f"{type(error).__name__}: {with_notes(error)}"), threshold="success",
                 ds=str(context.get("ds", "?")), docs=getattr(ti, "log_url", None), source=dag_id)


def on_task_failure(context: Mapping[str, Any]) -> None:
    """Airflow on_failure_callback: alert through the configured notifiers."""
    alert = task_failure_alert(context)
    if alert is not None:
        notifier_from_settings(load_settings()).send([alert])
