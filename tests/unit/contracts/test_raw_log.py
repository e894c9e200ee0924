import gzip
import io
import json

import pyarrow as pa
import pytest
from pydantic import ValidationError

from edgerec.contracts import CATALOG_ARROW_SCHEMA, LogValidator, parse_event
from edgerec.contracts.flat import flatten
from edgerec.contracts.validate import ds_of_path, find_catalog
from edgerec.errors import ContractError

pytestmark = pytest.mark.unit
TS = 1_761_955_200_000 + 3_600_000  # 2025-11-01 01:00 UTC
BASE = {"event_id": "e1", "user_id": "u1", "session_id": "s1", "device_id": "d1", "ts": TS,
        "app_version": "10.0", "model_version": None}
GOOD = {
    "page_request": {"request_id": "r1", "page_no": 0,
                     "candidates": [{"item_id": 1, "rank": 0, "score": 0.5}, {"item_id": 2, "rank": 1, "score": 0.1}]},
    "exposure": {"request_id": "r1", "item_id": 1, "position": 0, "exposure_duration_ms": 900,
                 "scroll_speed": 1.5, "scroll_duration_ms": 300, "scroll_count": 1},
    "click": {"request_id": "r1", "item_id": 1, "position": 0},
    "page_view": {"request_id": "r1", "item_id": 1, "ipv_duration_ms": 12000,
                  "actions": {"cart": True, "buy": False}},
    "delete": {"request_id": "r1", "item_id": 2, "position": 1, "reason": "not_interested"},
    "rerank": {"request_id": "r1", "trigger": "click", "order": [2, 1]},
}


def line(kind: str, **changes) -> bytes:
    """A good event of `kind` with fields changed; `...` removes a field."""
    event = {**BASE, "event_type": kind, **GOOD[kind], **changes}
    return json.dumps({k: v for k, v in event.items() if v is not ...}).encode()


@pytest.mark.parametrize("event_type", sorted(GOOD))
def test_every_event_type_parses(event_type):
    event = parse_event(line(event_type))
    assert event.event_type == event_type
    assert event.user_id == "u1"


def test_the_optional_flags_of_candidates_and_of_explored_reranks():
    page = parse_event(line("page_request", candidates=[{"item_id": 1, "rank": 0, "out_of_stock": True,
                                                        "no_image": False}, {"item_id": 2, "rank": 1}]))
    assert page.candidates[0]["out_of_stock"] is True and "out_of_stock" not in page.candidates[1]
    assert parse_event(line("rerank")).exploration is None
    explored = parse_event(line("rerank", exploration={"window": 5, "offset": 4})).exploration
    assert (explored.window, explored.offset) == (5, 4)


def test_an_empty_request_or_session_id_flattens_to_null_as_a_missing_one():
    assert [flatten(parse_event(line("click", request_id=v)))["request_id"] for v in ("", None, ..., "r1")] == [
        None, None, None, "r1"]
    assert [flatten(parse_event(line("exposure", session_id=v)))["session_id"] for v in ("", None, ..., "s1")] == [
        None, None, None, "s1"]
    with pytest.raises(ValidationError, match="request_id"):  # a page request's own id is never empty
        parse_event(line("page_request", request_id=""))


def test_minimal_event_needs_only_the_required_fields():
    event = parse_event(json.dumps({"event_id": "e", "event_type": "exposure", "user_id": "u", "ts": 5,
                                    "item_id": 3}))
    assert (event.session_id, event.exposure_duration_ms, event.scroll_speed) == (None, 0, 0.0)
    assert parse_event(line("page_view", actions=...)).actions.cart is False


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (line("click")[:-5], "invalid_json"),
        (line("click", user_id=...), "missing_field"),
        (line("click", event_type=...), "missing_field"),
        (line("exposure", item_id=...), "missing_field"),
        (line("click", ts=str(TS)), "wrong_type"),
        (line("click", item_id="7"), "wrong_type"),
        (line("page_view", actions={"cart": 1}), "wrong_type"),
        (line("exposure", exposure_duration_ms=-5), "out_of_range"),
        (line("page_view", ipv_duration_ms=-1), "out_of_range"),
        (line("delete", reason="angry"), "out_of_range"),
        (line("rerank", trigger="timer"), "out_of_range"),
        (line("page_request", candidates=[{"item_id": 1, "rank": 0}] * 101), "out_of_range"),
        (line("click", event_type="swipe"), "unknown_event_type"),
        (b"[1, 2, 3]", "wrong_type"),
        (b"42", "wrong_type"),
        (b"\xff\xfe{", "invalid_json"),
        (line("click", position=10**20), "out_of_range"),  # would overflow int64 columns downstream
        (line("exposure", scroll_speed=float("inf")).replace(b"Infinity", b"1e400"), "out_of_range"),
        (line("exposure").replace(b'"scroll_speed": 1.5', b'"scroll_speed": NaN'), "out_of_range"),
        (line("page_request").replace(b'"score": 0.5', b'"score": Infinity'), "out_of_range"),
        (line("page_request", candidates=[{"item_id": 1, "rank": 0, "out_of_stock": "yes"}]), "wrong_type"),
        (line("rerank", exploration={"window": 1, "offset": 0}), "out_of_range"),
        (line("rerank", exploration={"window": 5, "offset": 5}), "out_of_range"),
        (line("rerank", exploration={"offset": 0}), "missing_field"),
    ],
)
def test_contract_violations_get_their_reason(raw, reason):
    result = LogValidator().check(raw)
    assert isinstance(result, tuple), f"accepted a bad row: {raw!r}"
    assert result[0] == reason


def test_partition_catalog_and_duplicate_checks():
    validator = LogValidator(known_items={1, 2})
    assert validator.check(line("click"), ds="2025-11-01").event_id == "e1"
    assert validator.check(line("click"), ds="2025-11-01")[0] == "duplicate_event_id"
    assert validator.check(line("click", event_id="e2", ts=TS + 86_400_000), ds="2025-11-01")[0] == \
        "ts_outside_partition"
    assert validator.check(line("click", event_id="e3", item_id=99), ds="2025-11-01")[0] == "unknown_item_id"
    assert validator.check(line("rerank", event_id="e4", order=[2, 99]))[0] == "unknown_item_id"
    # the first copy of an event id that was bad does not make a later good copy a duplicate
    assert validator.check(line("click", event_id="e5", ts="x"))[0] == "wrong_type"
    assert validator.check(line("click", event_id="e5")).event_id == "e5"


def test_validator_counts_and_quarantines_without_stopping(tmp_path):
    part = tmp_path / "events" / "ds=2025-11-01" / "part-0.jsonl.gz"
    part.parent.mkdir(parents=True)
    rows = [line("click"), line("click"), b"{not json", line("exposure", event_id="e9", exposure_duration_ms=-1),
            b"", line("delete", event_id="e10")]
    part.write_bytes(gzip.compress(b"\n".join(rows) + b"\n"))
    sink = io.StringIO()
    report = LogValidator(known_items={1, 2}, quarantine=sink).validate_path(tmp_path / "events")
    assert report.to_dict() == {
        "files": 1, "rows": 5, "good": 2, "bad": 3, "bad_share": 0.6,
        "good_by_type": {"click": 1, "delete": 1},
        "bad_by_reason": {"duplicate_event_id": 1, "invalid_json": 1, "out_of_range": 1},
    }
    quarantined = [json.loads(x) for x in sink.getvalue().splitlines()]
    assert [q["reason"] for q in quarantined] == ["duplicate_event_id", "invalid_json", "out_of_range"]
    assert [q["line"] for q in quarantined] == [2, 3, 4]
    assert quarantined[1]["raw"] == "{not json"
    assert "exposure_duration_ms" in quarantined[2]["detail"]


def test_a_truncated_file_and_a_file_of_another_name_are_counted_quarantined_and_the_rest_read(tmp_path):
    day = tmp_path / "events" / "ds=2025-11-01"
    day.mkdir(parents=True)
    whole = gzip.compress(b"\n".join(line("click", event_id=f"e{i}") for i in range(200)) + b"\n")
    (day / "part-0.jsonl.gz").write_bytes(whole[: len(whole) // 2])  # the upload broke off half-way
    (day / "part-1.jsonl.gz").write_bytes(gzip.compress(line("delete", event_id="d1") + b"\n"))
    (day / "part-3.json.gz").write_bytes(gzip.compress(line("click", event_id="x1") + b"\n"))
    (day / "_SUCCESS").write_bytes(b"")  # a writer's marker: not a log file, not a problem
    sink = io.StringIO()
    report = LogValidator(known_items={1, 2}, quarantine=sink).validate_path(tmp_path / "events")
    quarantined = [json.loads(x) for x in sink.getvalue().splitlines()]
    assert [(q["reason"], q["source"].rsplit("/", 1)[1]) for q in quarantined] == [
        ("unexpected_file", "part-3.json.gz"), ("unreadable_file", "part-0.jsonl.gz")]
    assert quarantined[0]["detail"] == "part-3.json.gz is not a log file (*.jsonl.gz or *.jsonl): not read"
    assert quarantined[1]["detail"].startswith("part-0.jsonl.gz breaks off after ")
    read = report.good_by_type["click"]
    assert 0 < read < 200 and f"after {read:,} good events: EOFError" in quarantined[1]["detail"]
    assert (report.files, report.good_by_type["delete"], report.bad) == (2, 1, 2)  # the next file was read


def test_a_bare_carriage_return_inside_a_line_is_part_of_it():
    raw = line("click").replace(b', "user_id"', b',\r"user_id"')  # JSON whitespace, as some clients write it
    assert not isinstance(LogValidator(known_items={1}).check(raw, None), tuple)


def test_a_partition_that_is_no_date_is_named_once(tmp_path):
    part = tmp_path / "events" / "ds=2026-02-30" / "part-0.jsonl"
    part.parent.mkdir(parents=True)
    part.write_bytes(line("click") + b"\n")
    with pytest.raises(ContractError, match=r"partition ds=2026-02-30 is not a date"):
        LogValidator().validate_path(tmp_path / "events")


def test_paths_and_catalog_lookup(tmp_path):
    assert ds_of_path("raw/events/ds=2026-11-03/part-0.jsonl.gz") == "2026-11-03"
    assert ds_of_path("somewhere/else.jsonl") is None
    items = tmp_path / "raw" / "items" / "ds=2026-11-03" / "items.parquet"
    items.parent.mkdir(parents=True)
    items.write_bytes(b"")
    events = tmp_path / "raw" / "events" / "ds=2026-11-03"
    events.mkdir(parents=True)
    assert find_catalog(events) == items
    assert find_catalog(tmp_path) is None


def test_catalog_schema_is_derived_from_the_record():
    assert CATALOG_ARROW_SCHEMA.names == ["item_id", "category", "brand", "gender", "price_level", "age_level",
                                          "bc_type", "ctr_score", "cvr_score"]
    assert CATALOG_ARROW_SCHEMA.field("ctr_score").type == pa.float64()
    assert CATALOG_ARROW_SCHEMA.field("brand").type == pa.int64()
