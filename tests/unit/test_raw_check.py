"""Onboarding external logs: the worked adapter writes a raw zone the contract accepts, and `edgerec logs check`
says per day what a raw zone holds and what would stop its run, naming the fix."""

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from edgerec.contracts import CATALOG_ARROW_SCHEMA
from edgerec.errors import MissingInput
from edgerec.raw import BadShareExceeded, check_bad_share, check_raw_zone, render_raw_check
from pipeline.cli import app

pytestmark = pytest.mark.unit
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "shop_csv"


@pytest.fixture
def shop_raw(tmp_path) -> Path:
    out = tmp_path / "raw"
    done = subprocess.run([sys.executable, str(EXAMPLE / "adapter.py"), str(EXAMPLE / "events.csv"),
                           str(EXAMPLE / "items.csv"), "--out", str(out)], capture_output=True, text=True,
                          check=True)
    assert done.stdout.splitlines() == [f"ds=2019-03-01: 12 events -> {out}/events/ds=2019-03-01",
                                        f"ds=2019-03-02: 4 events -> {out}/events/ds=2019-03-02"]
    return out


def test_the_worked_adapter_writes_two_days_the_contract_accepts_whole(shop_raw):
    first, second = check_raw_zone(shop_raw, None, max_bad_share=0.0)
    assert first.to_dict() == {
        "ds": "2019-03-01", "files": 1, "rows": 12, "bad_share": 0.0, "bad_by_reason": {}, "unknown_item_rows": 0,
        "events_by_type": {"click": 2, "exposure": 5, "page_request": 3, "page_view": 2}, "page_requests": 3,
        "share_with_logged_reranks": 0.0, "list_length": {"min": 2, "median": 3, "max": 4}, "share_scored": 0.0,
        "share_out_of_stock": 0.0, "share_no_image": 0.0, "explored_reranks": 0, "shared_request_ids": 0,
        "repeated_page_requests": 0, "catalog_items": 6, "items_named": 6, "problems": [], "ready": True,
    }
    assert (second.ds, second.rows, second.problems) == ("2019-03-02", 4, [])
    with gzip.open(shop_raw / "events" / "ds=2019-03-01" / "part-00000.jsonl.gz", "rt") as f:
        views = [e for e in map(json.loads, f) if e["event_type"] == "page_view"]
    # alice opened 102 from L1, put it in the basket 35 s later; opened it again from L2 and bought it
    assert [(v["request_id"], v["ipv_duration_ms"], v["actions"]) for v in views] == [
        ("L1", 35_000, {"cart": True, "buy": False}), ("L2", 17_000, {"cart": False, "buy": True})]
    catalog = pq.read_table(shop_raw / "items" / "ds=2019-03-01" / "items.parquet")
    assert catalog.schema == CATALOG_ARROW_SCHEMA
    assert catalog.column("price_level").to_pylist() == [1, 2, 0, 3, 1, 1]


def write_day(raw: Path, ds: str, lines: list[dict], catalog: list[int] | None = (1, 2)) -> None:
    folder = raw / "events" / f"ds={ds}"
    folder.mkdir(parents=True)
    (folder / "part-0.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    if catalog is not None:
        (raw / "items" / f"ds={ds}").mkdir(parents=True)
        columns = {f.name: [0.0 if f.type == pa.float64() else 0] * len(catalog) for f in CATALOG_ARROW_SCHEMA}
        pq.write_table(pa.Table.from_pydict(columns | {"item_id": list(catalog)}, schema=CATALOG_ARROW_SCHEMA),
                       raw / "items" / f"ds={ds}" / "items.parquet")


def page(ds_ms: int, n: int, item="1") -> dict:
    return {"event_id": f"p{n}", "user_id": "u", "ts": ds_ms + n, "event_type": "page_request", "request_id": f"r{n}",
            "candidates": [{"item_id": 1, "rank": 0, "score": 0.5}, {"item_id": 2, "rank": 1}]} | (
        {} if item == "1" else {"candidates": [{"item_id": item, "rank": 0}]})


MAR_1, MAR_2, MAR_3 = 1_551_398_400_000, 1_551_484_800_000, 1_551_571_200_000  # 2019-03-01..03 00:00 UTC


def test_each_day_that_would_not_run_is_named_with_its_problem_and_the_fix(tmp_path):
    raw = tmp_path / "raw"
    write_day(raw, "2019-03-01", [page(MAR_1, 1), page(MAR_1, 2), {"event_id": "x", "user_id": "u", "ts": MAR_1,
                                                                     "event_type": "click", "item_id": 7}])
    write_day(raw, "2019-03-02", [page(MAR_2, 1, item="1"), page(MAR_2, 2, item="2"), page(MAR_2, 3, item="2")])
    write_day(raw, "2019-03-03", [page(MAR_3, 1)], catalog=None)
    write_day(raw, "1999-12-31", [page(MAR_1, 1)])
    checks = {c.ds: c for c in check_raw_zone(raw, None, max_bad_share=0.4)}
    assert list(checks) == ["1999-12-31", "2019-03-01", "2019-03-02", "2019-03-03"]
    assert checks["1999-12-31"].problems == [
        "logical date 1999-12-31 lies before the DAGs' start_date 2000-01-01: Airflow would run no task for it"]
    first = checks["2019-03-01"].to_dict()  # one row of three names item 7, which the catalog lacks: 33% < 40%
    assert (first["unknown_item_rows"], first["bad_share"], first["share_scored"], first["ready"]) == (
        1, 0.333333, 0.5, True)
    assert checks["2019-03-02"].problems == [
        "66.67% of the rows are bad, above EDGEREC_QUALITY_MAX_BAD_SHARE 40.00%; most are wrong_type: ids, ranks and "
        "counts are JSON numbers, not strings (\"item_id\": 42, not \"42\"); flags are true or false"]
    assert checks["2019-03-03"].problems == [
        f"no item catalog at {raw}/items/ds=2019-03-03/items.parquet: write the day's snapshot of every item its "
        "events name (item_id, category, brand, ...)"]
    [missing] = check_raw_zone(raw, ["2019-03-05"], max_bad_share=0.4)
    assert missing.problems == [f"no events at {raw}/events/ds=2019-03-05 (the raw zone holds 1999-12-31 .. "
                                "2019-03-03)"]
    with pytest.raises(MissingInput, match="no day in .*/empty/events: a raw zone holds events/ds=YYYY-MM-DD"):
        check_raw_zone(tmp_path / "empty", None, max_bad_share=0.4)


def test_the_check_command_exits_1_on_a_day_that_is_not_ready_and_says_how_to_run_the_ready_ones(shop_raw, tmp_path):
    env = {"EDGEREC_HOME": str(tmp_path / "home")}
    ready = CliRunner().invoke(app, ["logs", "check", str(shop_raw)], env=env)
    assert ready.exit_code == 0, ready.output
    assert ready.output.splitlines()[-1] == (f"ready: EDGEREC_SOURCE=external EDGEREC_RAW_DIR={shop_raw} edgerec run "
                                             "--date 2019-03-02 --days 2")
    assert "2019-03-01          12   0.00%       3        0%        2/3/4      0%         6        6  ready" \
        in ready.output
    beyond = CliRunner().invoke(app, ["logs", "check", str(shop_raw), "--date", "2019-03-03", "--days", "3"], env=env)
    assert beyond.exit_code == 1
    assert "2019-03-03  problem: no events at" in beyond.output
    assert beyond.output.splitlines()[-1] == "error: 1 of 3 day(s) not ready (the problems above)"


def test_a_day_above_the_bad_share_names_the_fix_for_its_most_common_reason(tmp_path):
    with pytest.raises(BadShareExceeded, match=r"most are ts_outside_partition: ts is milliseconds since the epoch, "
                                               r"UTC, and each event goes under the events/ds=D/ of its own UTC day"):
        check_bad_share(10, {"ts_outside_partition": 6, "wrong_type": 1}, 0.01, "raw events ds=2019-03-01",
                        tmp_path / "bad_rows.jsonl")
    check_bad_share(100, {"wrong_type": 1}, 0.01, "raw events ds=2019-03-01", tmp_path / "bad_rows.jsonl")


def test_the_check_counts_flagged_candidates_and_explored_reranks(tmp_path):
    raw = tmp_path / "raw"
    flagged = {"event_id": "p", "user_id": "u", "ts": MAR_1, "event_type": "page_request", "request_id": "r",
               "candidates": [{"item_id": 1, "rank": 0, "out_of_stock": True}, {"item_id": 2, "rank": 1},
                              {"item_id": 1, "rank": 2, "no_image": True}, {"item_id": 2, "rank": 3}]}
    explored = {"event_id": "x", "user_id": "u", "ts": MAR_1 + 1, "event_type": "rerank", "request_id": "r",
                "trigger": "page", "order": [2, 1], "exploration": {"window": 2, "offset": 1}}
    plain = explored | {"event_id": "y", "exploration": None}
    write_day(raw, "2019-03-01", [flagged, explored, plain])
    [day] = check_raw_zone(raw, None, max_bad_share=0.0)
    d = day.to_dict()
    assert (d["share_out_of_stock"], d["share_no_image"], d["explored_reranks"]) == (0.25, 0.25, 1)
    text = render_raw_check(raw, [day])
    assert "2019-03-01  candidates flagged: 25.0% out of stock, 25.0% without an image" in text
    assert "2019-03-01  re-ranks of an exploration bucket: 1; kept out of training" in text


def test_a_request_id_two_users_carry_or_two_page_requests_repeat_is_named_before_any_spark_job(tmp_path):
    raw = tmp_path / "raw"
    shared = page(MAR_1, 1) | {"event_id": "q1", "user_id": "v"}  # another user's list under r1
    click = {"event_id": "c", "user_id": "w", "ts": MAR_1 + 9, "event_type": "click", "item_id": 1,
             "request_id": "r2"}  # a third user clicking on u's list r2
    again = page(MAR_1, 3) | {"event_id": "p3b", "ts": MAR_1 + 30}  # u's list r3, logged as a second page request
    write_day(raw, "2019-03-01", [page(MAR_1, 1), page(MAR_1, 2), page(MAR_1, 3), shared, click, again])
    write_day(raw, "2019-03-02", [page(MAR_2, 1), page(MAR_2, 2) | {"user_id": "v"}])
    first, second = check_raw_zone(raw, None, max_bad_share=0.0)
    assert (first.to_dict()["shared_request_ids"], first.to_dict()["repeated_page_requests"]) == (2, 2)
    assert first.problems == [
        "2 request id(s) carried by more than one user's events (e.g. 'r1'): a request id names one page request of "
        "one user; make the adapter's ids unique per page request (prefix them with the user id, say)",
        "2 page_request event(s) repeat an earlier page request's id: each shown list is one page_request with its "
        "own request id (a list shown again is a new page request)"]
    # two users, each with request ids of their own: ready
    assert (second.to_dict()["shared_request_ids"], second.to_dict()["repeated_page_requests"], second.problems) == (
        0, 0, [])
