"""The key-value and CDN backends against real servers: the same behaviour from each."""

from __future__ import annotations

import hashlib

import boto3
import numpy as np
import pytest

from deploy.cdn import IMMUTABLE, SHORT, ImmutableObjectError, open_cdn
from deploy.kv import KVError, open_kv
from deploy.kv.dynamodb import batch_write
from deploy.kv.redis import pack_hset

pytestmark = pytest.mark.integration

ROWS = np.arange(5 * 3, dtype=np.float16).reshape(5, 3)  # ids 0..4, 6 bytes each


@pytest.fixture(params=["sqlite", "redis", "dynamodb"])
def kv(request, tmp_path, moto_endpoint):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'kv.sqlite'}"
    elif request.param == "redis":
        url = request.getfixturevalue("redis_kv_url")
    else:
        url = f"dynamodb://edgerec-{tmp_path.name[-20:].replace('_', '-')}?endpoint_url={moto_endpoint}"
    store = open_kv(url)
    yield store
    store.close()


def test_rows_round_trip_and_missing_rows_are_counted(kv):
    kv.put_rows("v1", "brand", 0, ROWS[:2])
    kv.put_rows("v1", "brand", 2, ROWS[2:])
    full = kv.scan("v1", "brand", 5, 6)
    assert full.present == 5 and full.sha256 == hashlib.sha256(ROWS.tobytes()).hexdigest()
    got = kv.get_rows("v1", "brand", np.array([4, 0, 4, 9]), 6)
    assert got[:3] == [ROWS[4].tobytes(), ROWS[0].tobytes(), ROWS[4].tobytes()] and got[3] is None
    assert kv.get_rows("v2", "brand", np.array([0]), 6) == [None]  # versions are apart
    short = kv.scan("v1", "brand", 7, 6)  # two rows the table should have are not there
    assert short.present == 5 and short.sha256 != full.sha256


def test_index_records_versions_and_delete(kv):
    kv.put_rows("v1", "brand", 0, ROWS)
    kv.put_rows("v2", "brand", 0, ROWS)
    kv.put_index("v1", {"tables": {"brand": {"rows": 5}}})
    kv.put_index("v2", {"tables": {"brand": {"rows": 5}}})
    assert kv.versions() == ["v1", "v2"] and kv.get_index("v1") == {"tables": {"brand": {"rows": 5}}}
    kv.delete_version("v1", {"brand": 5})
    assert kv.versions() == ["v2"] and kv.get_index("v1") is None
    assert kv.scan("v1", "brand", 5, 6).present == 0 and kv.scan("v2", "brand", 5, 6).present == 5


def test_keyed_rows_round_trip_replace_and_delete_per_table(kv):
    kv.put_keyed("v1", "batch", ["u1", "u2"], [b"\x00\x01", b"\x02\x03"])
    kv.put_keyed("v1", "nrt", ["u1"], [b"\x09"])
    kv.put_keyed("v1", "batch", ["u2"], [b"\x04\x05"])  # replaced
    assert kv.get_keyed("v1", "batch", ["u2", "u1", "u3", "u2"]) == [b"\x04\x05", b"\x00\x01", None, b"\x04\x05"]
    assert kv.get_keyed("v2", "batch", ["u1"]) == [None] and kv.get_keyed("v1", "batch", []) == []
    kv.delete_keyed("v1", "batch")
    assert kv.get_keyed("v1", "batch", ["u1", "u2"]) == [None, None] and kv.get_keyed("v1", "nrt", ["u1"]) == [b"\x09"]
    assert kv.versions() == []  # keyed rows are not a version's index record


def test_redis_hset_is_packed_as_resp():
    rows = np.array([[1.0], [2.0]], dtype=np.float16).view("V2").reshape(2)
    expected = (b"*6\r\n$4\r\nHSET\r\n$3\r\nk:0\r\n$10\r\n0000000007\r\n$2\r\n\x00<\r\n"
                b"$10\r\n0000000008\r\n$2\r\n\x00@\r\n")
    assert pack_hset(b"k:0", np.array([7, 8]), rows) == expected


def test_dynamodb_batch_writes_retry_unprocessed_items_then_give_up():
    calls, sleeps = [], []
    answers = iter([{"UnprocessedItems": {"t": ["b"]}}, {"UnprocessedItems": {"t": ["b"]}}, {}])

    def write(items):
        calls.append(items["t"])
        return next(answers)

    batch_write(write, "t", ["a", "b"], sleep=sleeps.append)
    assert calls == [["a", "b"], ["b"], ["b"]] and len(sleeps) == 2 and sleeps[1] > sleeps[0] * 0.5
    with pytest.raises(KVError, match="1 writes still unprocessed after 3 attempts"):
        batch_write(lambda items: {"UnprocessedItems": {"t": ["b"]}}, "t", ["b"], sleep=lambda s: None, attempts=3)


def test_an_unreachable_kv_names_the_store(own_redis):
    url = own_redis.url
    own_redis.stop()
    with pytest.raises(KVError, match=f"key-value store {url}"):
        open_kv(url).put_rows("v1", "brand", 0, ROWS)


@pytest.fixture(params=["local", "s3"])
def cdn(request, tmp_path, moto_endpoint):
    if request.param == "local":
        return open_cdn(str(tmp_path / "cdn"))
    bucket = f"edgerec-{tmp_path.name[-20:].replace('_', '-')}"
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=bucket)
    return open_cdn(f"s3://{bucket}/cdn?endpoint_url={moto_endpoint}")


def test_immutable_objects_are_uploaded_once_and_never_rewritten(cdn, tmp_path):
    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    a.write_bytes(b"model a")
    b.write_bytes(b"model b")
    sha_a, sha_b = (hashlib.sha256(p.read_bytes()).hexdigest() for p in (a, b))
    assert cdn.put_immutable("models/v1/reranker.onnx", a, sha_a) is True
    assert cdn.put_immutable("models/v1/reranker.onnx", a, sha_a) is False  # already there: skipped
    with pytest.raises(ImmutableObjectError, match="models/v1/reranker.onnx exists with sha256"):
        cdn.put_immutable("models/v1/reranker.onnx", b, sha_b)
    assert cdn.get_bytes("models/v1/reranker.onnx") == b"model a"
    assert cdn.recorded_sha256("models/v1/reranker.onnx") == sha_a


def test_pointers_locks_listing_and_delete(cdn):
    cdn.put_bytes("channels/canary.json", b"{1}")
    cdn.put_bytes("channels/canary.json", b"{2}")
    assert cdn.get_bytes("channels/canary.json") == b"{2}" and cdn.get_bytes("channels/stable.json") is None
    assert cdn.create_exclusive("locks/release", b"me") is True
    assert cdn.create_exclusive("locks/release", b"you") is False and cdn.get_bytes("locks/release") == b"me"
    cdn.put_bytes("models/v1/x", b"x")
    cdn.put_bytes("models/v10/y", b"y")
    assert cdn.list("models/v1/") == ["models/v1/x"]
    assert cdn.list("models/") == ["models/v1/x", "models/v10/y"]
    cdn.delete(["models/v1/x", "locks/release"])
    assert cdn.list("models/") == ["models/v10/y"] and cdn.get_bytes("locks/release") is None


def test_s3_objects_carry_their_cache_control(moto_endpoint, tmp_path):
    s3 = boto3.client("s3", endpoint_url=moto_endpoint)
    s3.create_bucket(Bucket="edgerec-cache")
    cdn = open_cdn(f"s3://edgerec-cache?endpoint_url={moto_endpoint}")
    path = tmp_path / "m"
    path.write_bytes(b"m")
    cdn.put_immutable("models/v1/m", path, hashlib.sha256(b"m").hexdigest())
    cdn.put_bytes("channels/stable.json", b"{}")
    assert s3.head_object(Bucket="edgerec-cache", Key="models/v1/m")["CacheControl"] == IMMUTABLE
    assert s3.head_object(Bucket="edgerec-cache", Key="channels/stable.json")["CacheControl"] == SHORT
