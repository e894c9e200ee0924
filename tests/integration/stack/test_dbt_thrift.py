"""dbt's `spark` target through Spark's Thrift server on the standalone cluster: the same models and tests build,
with the row counts of the duckdb target."""

import pytest
from pyhive import hive

from edgerec.marts import build_marts
from pipeline import stack
from pipeline.services import running
from tests.integration.conftest import DAYS

pytestmark = [pytest.mark.integration, pytest.mark.stack]


@pytest.fixture(scope="module")
def thrift(spark_cluster, stack_dir, stack_settings):
    server = stack.thrift_server(spark_cluster, stack_dir)
    with running([server], timeout_s=stack_settings.stack.timeout_s):
        yield server


def test_the_thrift_server_builds_the_marts_of_the_duckdb_target(marts, thrift, tmp_path):
    settings, on_duckdb = marts
    (tmp_path / "warehouse").symlink_to(settings.warehouse)
    on_thrift = settings.replace(home=tmp_path, dbt={"target": "spark", "spark_method": "thrift",
                                                     "spark_port": thrift.port})
    result = build_marts(on_thrift, DAYS[1])
    assert result["target"] == "spark" and result["nodes"] == on_duckdb["nodes"]
    with hive.connect(host="127.0.0.1", port=thrift.port, username="edgerec") as conn:
        cursor = conn.cursor()
        for name in ("fct_train_requests", "fct_test_requests", "dim_items"):
            cursor.execute(f"select count(*) from {settings.dbt.spark_schema}.{name}")
            assert cursor.fetchone()[0] == on_duckdb["rows"][name], name
