"""The model version the stages hand each other: typed verdicts, and a plain-JSON form for Airflow's XComs."""

import json

import pytest

from edgerec.registry import BLESSED, SERVABLE, VERSION_TAG, Blessing, ModelVersion

pytestmark = pytest.mark.unit


def test_a_version_survives_the_json_of_an_xcom_and_reads_its_verdicts_as_enums():
    version = ModelVersion("7", "0123456789abcdef", {VERSION_TAG: "v20261103-01234567", "ds": "2026-11-03",
                                                     BLESSED: "true", SERVABLE: "false", "git_sha": "abcdef1234567"})
    again = ModelVersion.from_dict(json.loads(json.dumps(version.to_dict())))
    assert again == version
    assert (again.id, again.ds, again.number) == ("v20261103-01234567", "2026-11-03", "7")
    assert again.blessing is Blessing.PASSED and again.servable is Blessing.REFUSED
    assert again.label == "version 7 (v20261103-01234567, git abcdef1234)"


def test_an_unjudged_or_unknown_verdict_is_pending_never_passed():
    assert ModelVersion("1", "r", {}).blessing is Blessing.PENDING
    assert ModelVersion("1", "r", {BLESSED: "pending", SERVABLE: "yes"}).servable is Blessing.PENDING
    assert ModelVersion("1", "r", {}).id == "#1"  # registered without its id tag
