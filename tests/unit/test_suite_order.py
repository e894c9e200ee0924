"""The order in which `make test`'s workers take the test files: the long end-to-end files first."""

import pytest

from tests.conftest import TESTS, suite_rank

pytestmark = pytest.mark.unit


def test_end_to_end_files_go_first_then_integration_then_unit_then_the_rest():
    unit, e2e = TESTS / "unit" / "test_config.py", TESTS / "e2e" / "test_past_logs.py"
    spark, elsewhere = TESTS / "integration" / "spark" / "test_ingest.py", TESTS.parent / "bench" / "test_x.py"
    helper = TESTS / "test_top_level.py"
    assert sorted([unit, helper, elsewhere, spark, e2e], key=suite_rank) == [e2e, spark, unit, helper, elsewhere]
