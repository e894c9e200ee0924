import gzip
import json

import pytest

from edgerec.contracts import LogValidator
from edgerec.contracts.validate import day_bounds_ms
from spark_jobs import ingest
from spark_jobs.ingest import (
    check_contract,
    found_later_copies,
    later_copies,
    mark_duplicates,
    read_raw_lines,
    split_good_bad,
)

pytestmark = pytest.mark.integration
DS = "2026-11-10"
TS = day_bounds_ms(DS)[0] + 1000


def line(**changes):
    event = {"event_id": "e1", "event_type": "click", "user_id": "u1", "ts": TS, "item_id": 7, **changes}
    return json.dumps({k: v for k, v in event.items() if v is not ...})


def marked(checked):
    return mark_duplicates(checked, found_later_copies(checked)[0])


def test_contract_check_and_duplicates_on_inline_lines(spark):
    lines = [
        ("f1", 0, line()),
        ("f1", 1, line()),                                   # a client retry of e1
        ("f1", 2, line(event_id="e2", ts="soon")),
        ("f1", 3, line(event_id="e3", item_id=99)),
        ("f1", 4, line(event_id="e4", ts=TS + 86_400_000)),
        ("f1", 5, '{"event_id": "e5", "event_type": "cli'),
        ("f1", 6, line(event_id="e6", user_id=...)),
        ("f2", 0, line(event_id="e7", event_type="exposure", exposure_duration_ms=-3)),
        ("f2", 1, line(event_id="e8", event_type="delete", reason="not_interested")),
        ("f2", 2, line(event_id="e9", position=10**20)),             # beyond int64
        ("f2", 3, '{"event_id": "e10", "event_type": "click", "user_id": "\udcff"}'),  # not UTF-8 once encoded
    ]
    encoded = [(v.encode("utf-8", errors="surrogateescape"), DS, s, i) for s, i, v in lines]
    df = spark.createDataFrame(encoded, "value binary, ds string, source string, line_id long")
    good, bad = split_good_bad(marked(check_contract(df, known=spark.sparkContext.broadcast([7]))))
    assert sorted((r.event_id, r.event_type, r.item_id, r.reason) for r in good.collect()) == [
        ("e1", "click", 7, None), ("e8", "delete", 7, "not_interested")]
    assert sorted((r.source, r.line_id, r.reason) for r in bad.collect()) == [
        ("f1", 1, "duplicate_event_id"), ("f1", 2, "wrong_type"), ("f1", 3, "unknown_item_id"),
        ("f1", 4, "ts_outside_partition"), ("f1", 5, "invalid_json"), ("f1", 6, "missing_field"),
        ("f2", 0, "out_of_range"), ("f2", 2, "out_of_range"), ("f2", 3, "invalid_json")]
    row = bad.where("line_id = 2").first()
    assert (row.raw, row.detail) == (lines[2][2], "click.ts: Input should be a valid integer")
    # a line that is not UTF-8 is quarantined as the validator decoded it
    assert bad.where("source = 'f2' and line_id = 3").first().raw == lines[10][2].replace("\udcff", "\ufffd")


def test_spark_splits_lines_as_the_validator_does(spark, tmp_path):
    day = tmp_path / "events" / f"ds={DS}"
    day.mkdir(parents=True)
    crlf = line(event_id="e2").replace(', "user_id"', ',\r"user_id"')  # a bare \r: JSON whitespace inside the line
    indented = " \t" + line(event_id="e3")  # leading whitespace before the object: a line, and good JSON
    blanks = ["", " ", "\t \r", "\x0b\x0c  "]  # whitespace only, as bytes.strip() knows it: skipped
    (day / "part-0.jsonl").write_text("\n".join([line(), *blanks, crlf + "\r", indented, "\t"]) + "\n")
    lines = read_raw_lines(spark, str(tmp_path / "events"), [DS])
    assert lines.count() == 3
    good, bad = split_good_bad(marked(check_contract(lines, known=spark.sparkContext.broadcast([7]))))
    assert sorted(r.event_id for r in good.collect()) == ["e1", "e2", "e3"] and bad.count() == 0
    report = LogValidator(known_items=[7]).validate_path(tmp_path / "events")
    assert (report.rows, report.good, report.bad) == (3, 3, 0)


def test_a_truncated_file_gives_spark_the_lines_the_validator_read(spark, tmp_path):
    day = tmp_path / "events" / f"ds={DS}"
    day.mkdir(parents=True)
    whole = gzip.compress("".join(line(event_id=f"e{i}") + "\n" for i in range(3000)).encode())
    (day / "part-0.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    (day / "part-1.jsonl").write_text(line(event_id="last") + "\n")
    report = LogValidator(known_items=[7]).validate_path(tmp_path / "events")
    good, bad = split_good_bad(marked(check_contract(read_raw_lines(spark, str(tmp_path / "events"), [DS]),
                                                              known=spark.sparkContext.broadcast([7]))))
    assert bad.count() == 0 and report.bad_by_reason == {"unreadable_file": 1}
    assert good.count() == report.good and 1 < report.good < 3001


@pytest.mark.parametrize("found", ["collected", "too many to collect", "as a DataFrame"])
def test_the_first_good_copy_is_kept_and_bad_copies_do_not_count(spark, monkeypatch, found):
    next_day = "2026-11-11"
    lines = [
        (DS, "f2", 0, line()),                            # a good copy, but after f1's in (source, line) order
        (DS, "f1", 1, line(ts="soon")),                   # a bad copy comes first: it is quarantined for itself
        (DS, "f1", 5, line()),                            # the first good copy: kept
        (DS, "f1", 6, line(event_id="e2")),               # an id seen once
        (DS, "f1", 7, line(ts="late")),                   # a bad copy after the kept one: still its own reason
        (DS, "f3", 0, line()),                            # a third copy
        (next_day, "f0", 0, line(ts=TS + 86_400_000)),    # a copy on the next day: later, whatever its file
    ]
    encoded = [(v.encode(), ds, s, i) for ds, s, i, v in lines]
    df = spark.createDataFrame(encoded, "value binary, ds string, source string, line_id long")
    checked = check_contract(df, known=spark.sparkContext.broadcast([7]))
    if found == "as a DataFrame":
        copies = later_copies(checked)
    else:
        # a retry storm's copies stay a DataFrame (joined by a shuffle), their count unknown
        monkeypatch.setattr(ingest, "BROADCAST_MAX_COPIES", 3 if found == "collected" else 2)
        copies, count = found_later_copies(checked)
        assert count == (3 if found == "collected" else None)
    assert sorted((r.source, r.line_id) for r in copies.collect()) == [("f0", 0), ("f2", 0), ("f3", 0)]
    good, bad = split_good_bad(mark_duplicates(checked, copies))
    assert sorted((r.event_id, r.ts, r.ds) for r in good.collect()) == [("e1", TS, DS), ("e2", TS, DS)]
    seen = "event_id e1 seen before"
    assert sorted((r.ds, r.source, r.line_id, r.reason, r.detail) for r in bad.collect()) == [
        (DS, "f1", 1, "wrong_type", "click.ts: Input should be a valid integer"),
        (DS, "f1", 7, "wrong_type", "click.ts: Input should be a valid integer"),
        (DS, "f2", 0, "duplicate_event_id", seen),
        (DS, "f3", 0, "duplicate_event_id", seen),
        (next_day, "f0", 0, "duplicate_event_id", seen)]
    assert bad.where("line_id = 0 and source = 'f3'").first().raw == lines[5][3]
