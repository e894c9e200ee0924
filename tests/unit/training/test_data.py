"""Padding list columns to the feature spec and streaming the marts in list-wise batches."""

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from edgerec.errors import MissingInput
from edgerec.features import GROUPS
from training.data import EXPLORED, DayData, count_requests, load_split, pad, read_batches

pytestmark = pytest.mark.unit
SPEC = {"sequence_lengths": {"candidates": 4, "ie": 3, "ipv": 2}}


def test_pad_fills_with_zero_cuts_long_lists_and_handles_slices_and_nulls():
    column = pa.array([[7, 8], [], None, [1, 2, 3, 4, 5]], type=pa.list_(pa.int64()))
    values, lengths = pad(column, 3)
    assert values.tolist() == [[7, 8, 0], [0, 0, 0], [0, 0, 0], [1, 2, 3]]
    assert lengths.tolist() == [2, 0, 0, 3]
    values, lengths = pad(column.slice(3, 1), 6)
    assert values.tolist() == [[1, 2, 3, 4, 5, 0]] and lengths.tolist() == [5]


def request(i: int, n_candidates: int, n_ie: int) -> dict:
    row = {"rerank_id": f"r{i}", "trigger_origin": "logged", "label": [1] + [0] * (n_candidates - 1),
           "mask": [1, 1] + [0] * (n_candidates - 2), "shown_position": [7, 3] + [0] * (n_candidates - 2),
           "cart": [1] + [0] * (n_candidates - 1), "buy": [0] * n_candidates}
    for group, prefix in (("candidate", "cand"), ("ie", "ie"), ("ipv", "ipv")):
        length = {"candidate": n_candidates, "ie": n_ie, "ipv": 1}[group]
        row[f"{prefix}_item_id"] = [100 * i + j for j in range(1, length + 1)]
        for f, name in enumerate(GROUPS[group]):
            row[f"{prefix}_{name}"] = [f + 1] * length
    return row


def test_marts_stream_in_whole_requests_padded_to_the_spec(tmp_path):
    database = tmp_path / "marts.duckdb"
    rows = [request(i, n_candidates=2 + i, n_ie=i) for i in range(5)]  # r4 has 6 candidates, 4 IE: cut
    table = pa.Table.from_pylist(rows)
    with duckdb.connect(str(database)) as con:
        con.register("rows", table)
        con.execute("create table fct_test_requests as select * from rows")
    batches = list(read_batches(database, "test", SPEC, batch_requests=2))
    assert [b.rerank_id for b in batches] == [["r0", "r1"], ["r2", "r3"], ["r4"]]
    first, last = batches[0], batches[-1]
    assert first.candidate_item.tolist() == [[1, 2, 0, 0], [101, 102, 103, 0]]
    assert first.candidates.tolist() == [2, 3]
    assert first.candidate.shape == (2, 4, len(GROUPS["candidate"]))
    assert first.candidate[1, :, 0].tolist() == [1, 1, 1, 0]  # the first feature's codes, then padding
    assert first.label.tolist() == [[1, 0, 0, 0], [1, 0, 0, 0]] and first.mask.tolist() == [[1, 1, 0, 0], [1, 1, 0, 0]]
    assert first.shown_position.tolist() == [[7, 3, 0, 0], [7, 3, 0, 0]]
    assert first.cart.tolist() == [[1, 0, 0, 0], [1, 0, 0, 0]] and not first.buy.any()
    assert first.ie_length.tolist() == [0, 1] and first.ie.shape == (2, 3, len(GROUPS["ie"]))
    assert last.candidate_item.tolist() == [[401, 402, 403, 404]] and last.ie_length.tolist() == [3]
    assert last.ipv.shape == (1, 2, len(GROUPS["ipv"])) and last.ipv_length.tolist() == [1]
    assert np.all(last.ipv[0, 1] == 0)
    with pytest.raises(ValueError, match="unknown split 'valid'"):
        next(read_batches(database, "valid", SPEC))


def write_marts(database, train_rows: list[dict], test_rows: list[dict] | None = None) -> None:
    with duckdb.connect(str(database)) as con:
        for name, rows in (("fct_train_requests", train_rows), ("fct_test_requests", test_rows)):
            if rows is not None:
                con.register("rows", pa.Table.from_pylist(rows))
                con.execute(f"create table {name} as select * from rows")
                con.unregister("rows")


def users_of_four(n: int) -> list[dict]:
    return [request(i % 5, n_candidates=2, n_ie=0) | {"rerank_id": f"r{i:03d}", "user_id": f"u{i // 4}"}
            for i in range(n)]


def test_the_held_out_requests_are_a_fixed_share_apart_from_the_fit_requests(tmp_path):
    database = tmp_path / "marts.duckdb"
    write_marts(database, [r | {"rerank_id": f"r{i}"} for i, r in enumerate(users_of_four(800))])  # 200 users

    def ids(part: str | None, share: float) -> set[str]:
        return {r for b in read_batches(database, "train", SPEC, 64, part=part, share=share) for r in b.rerank_id}

    held_out, fit_part = ids("validation", 0.25), ids("fit", 0.25)
    assert held_out.isdisjoint(fit_part) and held_out | fit_part == ids(None, 0.25)
    assert 120 <= len(held_out) <= 280  # a hash share of a quarter of 200 users, 4 requests each
    users = {int(r[1:]) // 4 for r in held_out}
    assert {f"r{4 * u + j}" for u in users for j in range(4)} == held_out  # whole users
    assert count_requests(database, "train", "validation", 0.25) == len(held_out)
    assert ids("validation", 0.25) == held_out  # the same requests on every read
    assert ids("validation", 0.0) == set() and count_requests(database, "train", "fit", 0.0) == 800
    with pytest.raises(ValueError, match="unknown part 'test'"):
        next(read_batches(database, "train", SPEC, part="test", share=0.1))


def test_a_split_in_memory_is_the_streamed_split_and_batches_anew_from_a_seed(tmp_path):
    """Five requests in memory equal the streamed ones; batches of 2 in order are r0 r1 | r2 r3 | r4; a seed
    permutes them the same way every time, each request once, and another seed otherwise."""
    database = tmp_path / "marts.duckdb"
    write_marts(database, [request(i, n_candidates=2 + i, n_ie=i) for i in range(5)],
                [request(i, n_candidates=2, n_ie=1) for i in range(2)])
    split = load_split(database, "train", SPEC)
    streamed = list(read_batches(database, "train", SPEC, batch_requests=2))
    assert [b.rerank_id for b in split.batches(2)] == [b.rerank_id for b in streamed]
    first = next(split.batches(2))  # r0 r1: 2 and 3 candidates, 0 and 1 exposures, cut to the longest of each
    assert first.candidate_item.tolist() == [[1, 2, 0], [101, 102, 103]] and first.ie_item.tolist() == [[0], [101]]
    assert np.array_equal(first.candidate, streamed[0].candidate[:, :3])
    taken = split.take(np.array([4, 0]))
    assert taken.rerank_id == ["r4", "r0"] and taken.candidates.tolist() == [4, 2]
    assert taken.candidate_item.tolist() == [[401, 402, 403, 404], [1, 2, 0, 0]]
    shuffled = [b.rerank_id for b in split.batches(2, seed=3)]
    assert shuffled == [b.rerank_id for b in split.batches(2, seed=3)]
    assert sorted(sum(shuffled, [])) == ["r0", "r1", "r2", "r3", "r4"] and [len(b) for b in shuffled] == [2, 2, 1]
    assert any(shuffled != [b.rerank_id for b in split.batches(2, seed=s)] for s in range(4, 8))


def test_a_day_in_memory_holds_out_whole_users_or_none(tmp_path):
    database = tmp_path / "marts.duckdb"
    write_marts(database, users_of_four(400), users_of_four(8))
    day = DayData.load(database, SPEC, share=0.25)
    assert set(day.fit.rerank_id).isdisjoint(day.validation.rerank_id)
    assert len(day.fit) + len(day.validation) == 400 and len(day.test) == 8
    assert len(day.validation) == count_requests(database, "train", "validation", 0.25)
    without = DayData.load(database, SPEC, share=0.0)  # no early stopping: every request trained on
    assert without.validation is None and len(without.fit) == 400
    everyone = DayData.load(database, SPEC, share=0.999)  # all users held out would leave nothing to train on
    assert everyone.validation is None and len(everyone.fit) == 400
    assert day.explored is None  # no device of the test day explored


def test_a_day_keeps_the_exploration_bucket_s_test_requests_apart_too(tmp_path):
    database = tmp_path / "marts.duckdb"
    test = [r | {"trigger_origin": "explored" if i in (1, 4) else "logged"} for i, r in enumerate(users_of_four(6))]
    write_marts(database, users_of_four(8), test)
    day = DayData.load(database, SPEC, share=0.0)
    assert len(day.test) == 6 and day.explored.rerank_id == ["r001", "r004"]
    assert count_requests(database, "test", where=EXPLORED) == 2


def test_an_empty_split_is_refused_naming_it(tmp_path):
    database = tmp_path / "marts.duckdb"
    write_marts(database, users_of_four(8))
    with pytest.raises(MissingInput, match=r"no train requests in the validation part in .*marts.duckdb"):
        load_split(database, "train", SPEC, part="validation", share=0.0)
