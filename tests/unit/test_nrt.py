"""The near-real-time consumer's handling of a batch of stream messages, on a tiny recall bundle and a SQLite
key-value store: interactions re-embed the user from the batch history on, a click and its page view count once,
deleted and over-shown items are hidden for the session, and bad messages are counted and skipped."""

import json

import numpy as np
import pytest

from deploy.kv.sqlite import SQLiteKV
from deploy.nrt import MAX_MESSAGE_BYTES, NearRealTime, hidden_items, stream_ms
from deploy.recall import HISTORY, NRT, NRT_HISTORY
from edgerec.recall import RecallRuntime, from_bytes
from tests.unit.training.recall.test_export import exported  # noqa: F401 (a fixture)

pytestmark = pytest.mark.unit


def message(n: int, **event) -> tuple[bytes, dict]:
    base = {"event_id": f"e{n}", "user_id": "u1", "ts": 1_000 + n, "session_id": "s1"}
    return f"{1_000_000 + n}-0".encode(), {b"event": json.dumps(base | event).encode()}


@pytest.fixture
def nrt(exported, tmp_path):  # noqa: F811
    _, root, _, trusted, _ = exported
    runtime = RecallRuntime(root, trusted=trusted)
    kv = SQLiteKV(tmp_path / "kv.sqlite")
    kv.put_keyed(runtime.version, HISTORY, ["u1"], [json.dumps({"items": [100, 101]}).encode()])
    return NearRealTime(kv, runtime, shown_limit=2, clock=lambda: 1_000.5), kv, runtime


def test_interactions_extend_the_batch_history_and_the_vector_follows(nrt):
    worker, kv, runtime = nrt
    worker.apply([message(1, event_type="click", item_id=105, request_id="r1"),
                  message(2, event_type="page_view", item_id=105, request_id="r1"),  # the click's page view: once
                  message(3, event_type="page_view", item_id=107),
                  message(4, event_type="exposure", item_id=103)])  # not an interaction
    state = json.loads(kv.get_keyed("v1", NRT_HISTORY, ["u1"])[0])
    assert state == {"items": [100, 101, 105, 107], "last": ["e3", 107], "stream_id": "1000003-0"}
    vector = from_bytes(kv.get_keyed("v1", NRT, ["u1"])[0])
    assert np.abs(vector - runtime.embed([[100, 101, 105, 107]])[0][0]).max() < 1e-6
    assert (worker.counts.interactions, worker.counts.duplicates, worker.counts.embedded) == (2, 1, 1)
    assert worker.counts.delays_ms == [1_000_500.0 - 1_000_001, 1_000_500.0 - 1_000_003]

    worker.apply([message(5, event_type="click", item_id=108), message(6, event_type="click", item_id=109),
                  message(7, event_type="click", item_id=110)])
    state = json.loads(kv.get_keyed("v1", NRT_HISTORY, ["u1"])[0])
    assert state["items"] == [105, 107, 108, 109, 110]  # the last WIDTH=5 interactions


def test_messages_delivered_again_after_a_crash_count_once(nrt):
    worker, kv, _ = nrt
    batch = [message(1, event_type="click", item_id=105), message(2, event_type="exposure", item_id=103),
             message(3, event_type="click", item_id=106), message(4, event_type="exposure", item_id=103)]
    worker.apply(batch)
    worker.apply(batch)  # written, then the consumer died before acknowledging: the stream sends them again
    assert json.loads(kv.get_keyed("v1", NRT_HISTORY, ["u1"])[0])["items"] == [100, 101, 105, 106]
    assert (worker.counts.interactions, worker.counts.duplicates) == (2, 2)
    assert hidden_items(kv, "u1", shown_limit=2) == {103}
    assert hidden_items(kv, "u1", shown_limit=3) == set()  # shown twice, not four times


def test_a_user_without_any_history_starts_from_the_stream(nrt):
    worker, kv, _ = nrt
    worker.apply([message(1, event_type="click", item_id=104, user_id="u2")])
    assert json.loads(kv.get_keyed("v1", NRT_HISTORY, ["u2"])[0])["items"] == [104]
    assert kv.get_keyed("v1", NRT, ["u2"])[0] is not None


def test_deleted_and_over_shown_items_are_hidden_for_the_session_only(nrt):
    worker, kv, _ = nrt
    worker.apply([message(1, event_type="delete", item_id=102), message(2, event_type="exposure", item_id=103),
                  message(3, event_type="exposure", item_id=103), message(4, event_type="exposure", item_id=104)])
    assert hidden_items(kv, "u1", shown_limit=2) == {102, 103}
    worker.apply([message(5, event_type="exposure", item_id=104, session_id="s2")])  # a new session starts clean
    assert hidden_items(kv, "u1", shown_limit=2) == set()
    assert hidden_items(kv, "nobody", shown_limit=2) == set()


def test_bad_messages_are_counted_and_skipped_never_fatal(nrt):
    worker, kv, _ = nrt
    worker.apply([(b"1-0", {b"event": b"not json"}), (b"2-0", {b"other": b"{}"}),
                  (b"3-0", {b"event": b"x" * (MAX_MESSAGE_BYTES + 1)}),
                  message(4, event_type="click", item_id=-5),  # outside the contract
                  message(5, event_type="click", item_id=106),
                  message(6, event_type="click", item_id=107, user_id="u" * 129),  # no key of any KV store
                  message(7, event_type="click", item_id=107, user_id="u 1")])
    assert (worker.counts.messages, worker.counts.invalid, worker.counts.interactions) == (7, 6, 1)
    assert json.loads(kv.get_keyed("v1", NRT_HISTORY, ["u1"])[0])["items"] == [100, 101, 106]


def test_a_stream_id_says_when_the_stream_received_the_message():
    assert stream_ms(b"1733400000123-7") == 1733400000123
