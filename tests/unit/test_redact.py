"""What may hold a secret is printed without it: URLs without passwords, known secret values masked, in every log
record of the process."""

import logging

import pytest

from edgerec import redact
from edgerec.config import load_settings, redactor
from edgerec.redact import Redactor, host_only, redact_url

pytestmark = pytest.mark.unit


def test_a_url_keeps_what_tells_it_apart_and_loses_its_credentials():
    assert redact_url("redis://:s3cret@cache.internal:6379/0?prefix=a") == "redis://:***@cache.internal:6379/0?prefix=a"
    assert redact_url("postgresql://bob:s3cret@db:5432/mlflow") == "postgresql://bob:***@db:5432/mlflow"
    assert redact_url("https://ml.example.com/api?X-Amz-Signature=abc&token=t0k&region=eu") == \
        "https://ml.example.com/api?X-Amz-Signature=***&token=***&region=eu"
    assert redact_url("redis://cache.internal:6379/0") == "redis://cache.internal:6379/0"
    assert redact_url("/srv/cdn") == "/srv/cdn"


def test_a_webhook_is_shown_by_its_host_alone():
    assert host_only("https://hooks.example.com/services/T0/B0/tok3n") == "https://hooks.example.com/***"
    assert host_only("http://127.0.0.1:9000") == "http://127.0.0.1:9000"


def test_known_secrets_are_replaced_longest_first_and_any_url_password_is_masked():
    scrub = Redactor({"k3y": "***", "https://hooks.example.com/services/T0/B0/tok3n": "https://hooks.example.com/***"})
    assert scrub("posting to https://hooks.example.com/services/T0/B0/tok3n failed; key k3y; "
                 "connect redis://u:other@h:1/0") == \
        "posting to https://hooks.example.com/*** failed; key ***; connect redis://u:***@h:1/0"


def test_the_settings_redactor_knows_every_secret_setting_in_use():
    settings = load_settings({"EDGEREC_KV_URL": "redis://:s3cret@cache:6379/0", "EDGEREC_RELEASE_KEY": "k" * 40,
                              "EDGEREC_ALERT_WEBHOOK_URL": "https://hooks.example.com/services/T0/B0/tok3n"})
    text = redactor(settings)(f"{'k' * 40} https://hooks.example.com/services/T0/B0/tok3n redis://:s3cret@cache:6379/0")
    assert text == "*** https://hooks.example.com/*** redis://:***@cache:6379/0"


def test_every_log_record_is_redacted_once_settings_are_read(caplog):
    load_settings({"EDGEREC_ALERT_WEBHOOK_URL": "https://hooks.example.com/services/T0/B0/tok3n"})
    try:
        with caplog.at_level(logging.INFO):
            logging.getLogger("some.library").info("calling %s", "https://hooks.example.com/services/T0/B0/tok3n")
            try:
                raise ConnectionError("redis://:pw@cache:6379/0 refused")
            except ConnectionError:
                logging.getLogger("another").exception("failed with %s", "redis://:pw@cache:6379/0")
        assert [r.getMessage() for r in caplog.records] == ["calling https://hooks.example.com/***",
                                                            "failed with redis://:***@cache:6379/0"]
        assert "tok3n" not in caplog.text and ":pw@" not in caplog.text and "redis://:***@cache" in caplog.text
    finally:
        redact.uninstall()
    with caplog.at_level(logging.INFO):
        logging.getLogger("some.library").info("plain %s", "redis://:pw@cache")
    assert caplog.records[-1].getMessage() == "plain redis://:pw@cache"  # uninstalled: as logged
