"""Near-real-time user embeddings (`edgerec recall nrt`): a consumer of the client events' stream that re-embeds a
user on every click or page view with the served recall version's user tower, and writes the vector to the
key-value store under that version, where the paging API reads it first.

The stream is a URL (`EDGEREC_RECALL_STREAM`): Redis Streams (`redis://...`) as the embedded default, read by a
consumer group so that several consumers share the work and a restarted one takes its pending messages first. A
message's `event` field is one raw-log event (the contract of edgerec.contracts.raw_log); one that is not a valid
event is counted and acknowledged, never retried and never fatal.

Per user, in the KV under the recall version (keyed rows):
    nrt_history   {"items": [...], "last": [interaction key, item]}: the latest interactions, seeded from the batch
                  history the deploy wrote; a click and the page view it opened (same request and item) count once,
                  as in the marts
    nrt           the vector of that history
    session       {"session": id, "deleted": [...], "shown": {item: times}}: what the paging API leaves out of this
                  session's candidates (deleted items, items shown EDGEREC_RECALL_SHOWN_LIMIT times)
Messages are handled in batches: one KV read, one tower run and one KV write per batch, then one acknowledgement.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from urllib.parse import parse_qs, urlsplit

import numpy as np
from pydantic import ValidationError

from deploy.kv import KVStore
from deploy.recall import HISTORY, NRT, NRT_HISTORY, SESSION, SESSION_SCOPE
from edgerec.contracts.raw_log import Click, Delete, Exposure, PageView, parse_event
from edgerec.errors import ConfigError, EdgeRecError
from edgerec.recall import RecallRuntime, to_bytes
from edgerec.redact import redact_url

# user ids the API accepts and the consumer stores: keys of every KV store (DynamoDB bounds a sort key to 1 KB)
IDENTIFIER = r"^[A-Za-z0-9._:-]{1,128}$"
log = logging.getLogger(__name__)
GROUP = "edgerec-nrt"
MAX_MESSAGE_BYTES = 64 << 10  # an event is a few hundred bytes; a page request with 100 candidates a few KB
HEALTH_STALE_S = 10.0


class StreamError(EdgeRecError):
    """The event stream cannot be reached or answered something unexpected; the message names it (no password)."""


class EventStream:
    """A Redis stream of client events and its consumer group."""

    def __init__(self, url: str, consumer: str | None = None, maxlen: int = 1_000_000):
        import redis

        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            raise ConfigError(f"unknown event stream {redact_url(url)!r}: use redis://host:port/db?key=NAME (Redis "
                              "Streams)")
        options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.key = options.get("key", "edgerec:events")
        self.url = redact_url(url)
        # a name that survives a restart: a restarted consumer reads its unacknowledged messages first
        self.consumer = consumer or options.get("consumer") or socket.gethostname()
        self.maxlen = maxlen
        self._errors = (redis.ConnectionError, redis.TimeoutError, redis.ResponseError)
        self.client = redis.Redis.from_url(url.split("?")[0], socket_timeout=30, socket_connect_timeout=5)
        try:
            self.client.xgroup_create(self.key, GROUP, id="0", mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise StreamError(f"event stream {self.url} ({self.key}): {e}") from None
        except (redis.ConnectionError, redis.TimeoutError) as e:
            raise StreamError(f"event stream {self.url} ({self.key}): {e}") from None

    def _call(self, method, *args, **kwargs):
        try:
            return method(*args, **kwargs)
        except self._errors as e:
            raise StreamError(f"event stream {self.url} ({self.key}): {e}") from None

    def publish(self, events: list[dict | bytes]) -> list[bytes]:
        """Append events (dicts as JSON, or raw bytes as they are); their stream ids."""
        pipe = self.client.pipeline(transaction=False)
        for event in events:
            pipe.xadd(self.key, {"event": event if isinstance(event, bytes) else json.dumps(event)},
                      maxlen=self.maxlen, approximate=True)
        return self._call(pipe.execute)

    def read(self, count: int, block_ms: int, pending: bool = False) -> list[tuple[bytes, dict]]:
        """Up to `count` messages for this consumer: its own unacknowledged ones first when `pending`."""
        answer = self._call(self.client.xreadgroup, GROUP, self.consumer, {self.key: "0" if pending else ">"},
                            count=count, block=None if pending else block_ms)
        return [(mid, fields) for _, messages in answer or [] for mid, fields in messages if fields is not None]

    def ack(self, ids: list[bytes]) -> None:
        if ids:
            self._call(self.client.xack, self.key, GROUP, *ids)

    def lag(self) -> int | None:
        """Messages the group has not read yet (Redis 7 reports it)."""
        for group in self._call(self.client.xinfo_groups, self.key):
            if group["name"] in (GROUP, GROUP.encode()):
                return group.get("lag")
        return None

    def put_health(self, record: dict) -> None:
        self._call(self.client.set, f"{self.key}:nrt-health:{self.consumer}", json.dumps(record), ex=3600)

    def health(self) -> list[dict]:
        keys = self._call(self.client.keys, f"{self.key}:nrt-health:*")
        return [json.loads(raw) for raw in self._call(self.client.mget, keys) if raw] if keys else []

    def close(self) -> None:
        self.client.close()


def _stream_order(message_id: bytes | str) -> tuple[int, int]:
    """A stream id ("milliseconds-sequence") as the pair it is ordered by."""
    ms, seq = (message_id.decode() if isinstance(message_id, bytes) else message_id).split("-")
    return int(ms), int(seq)


def stream_ms(message_id: bytes) -> int:
    """When the stream received a message: the first part of its id."""
    return _stream_order(message_id)[0]


@dataclass
class Counts:
    messages: int = 0
    invalid: int = 0
    interactions: int = 0
    duplicates: int = 0  # a page view of the click it followed (one interaction), or a message delivered again
    embedded: int = 0
    delays_ms: list[float] = field(default_factory=list)  # stream receipt -> vector written, per interaction

    def summary(self) -> dict:
        delays = np.asarray(self.delays_ms) if self.delays_ms else np.zeros(1)
        return {**{k: v for k, v in asdict(self).items() if k != "delays_ms"},
                "delay_ms": {"p50": float(np.percentile(delays, 50)), "p99": float(np.percentile(delays, 99)),
                             "max": float(delays.max())}}


class NearRealTime:
    """Applies batches of stream messages to the KV's per-user state of one recall version."""

    def __init__(self, kv: KVStore, runtime: RecallRuntime, shown_limit: int = 3,
                 clock: Callable[[], float] = time.time):
        self.kv, self.runtime, self.shown_limit, self.clock = kv, runtime, shown_limit, clock
        self.counts = Counts()

    @property
    def version(self) -> str:
        return self.runtime.version

    def _states(self, table: str, users: list[str], scope: str | None = None) -> dict[str, dict]:
        return {u: json.loads(raw) for u, raw in zip(users, self.kv.get_keyed(scope or self.version, table, users),
                                                      strict=True) if raw}

    def apply(self, messages: list[tuple[bytes, dict]]) -> None:
        interactions: dict[str, list[tuple[list, bytes]]] = {}
        sessions: dict[str, list] = {}
        for mid, fields in messages:
            self.counts.messages += 1
            raw = fields.get(b"event", fields.get("event"))
            try:
                if raw is None or len(raw) > MAX_MESSAGE_BYTES:
                    raise ValueError(f"no event field of at most {MAX_MESSAGE_BYTES} bytes")
                event = parse_event(raw)
                if not re.fullmatch(IDENTIFIER, event.user_id):  # a key of the KV store, whose keys are bounded
                    raise ValueError("user_id is not an identifier of at most 128 letters, digits or ._:-")
            except (ValidationError, ValueError) as e:
                self.counts.invalid += 1
                log.warning("stream message %s skipped: not a valid event (%s)", mid.decode(errors="replace"),
                            str(e).splitlines()[0][:200])
                continue
            if isinstance(event, Click | PageView):
                interactions.setdefault(event.user_id, []).append(([event.request_id or event.event_id,
                                                                    event.item_id], mid))
            if isinstance(event, Exposure | Delete) and event.session_id:
                sessions.setdefault(event.user_id, []).append((mid, event))
        if interactions:
            self._embed(interactions)
        if sessions:
            self._sessions(sessions)

    def _embed(self, interactions: dict[str, list[tuple[list, bytes]]]) -> None:
        users = sorted(interactions)
        states = self._states(NRT_HISTORY, users)
        batch = self._states(HISTORY, [u for u in users if u not in states])
        histories, received = [], []
        for user in users:
            state = states.get(user) or {"items": batch.get(user, {}).get("items", []), "last": None}
            for key, mid in interactions[user]:
                if key == state["last"] or not _later(mid, state.get("stream_id")):  # the click's page view, or
                    self.counts.duplicates += 1                                    # a message delivered again
                    continue
                state["items"], state["last"] = [*state["items"], key[1]][-self.runtime.width:], key
                state["stream_id"] = mid.decode()
                self.counts.interactions += 1
                received.append(stream_ms(mid))
            states[user] = state
            histories.append(state["items"])
        vectors, embedded = self.runtime.embed(histories)
        known = [i for i, ok in enumerate(embedded) if ok]
        self.kv.put_keyed(self.version, NRT_HISTORY, users, [json.dumps(states[u]).encode() for u in users])
        self.kv.put_keyed(self.version, NRT, [users[i] for i in known], [to_bytes(vectors[i]) for i in known])
        self.counts.embedded += len(known)
        now_ms = self.clock() * 1000.0
        self.counts.delays_ms += [now_ms - t for t in received]

    def _sessions(self, sessions: dict[str, list]) -> None:
        users = sorted(sessions)
        states = self._states(SESSION, users, SESSION_SCOPE)
        for user in users:
            for mid, event in sessions[user]:
                state = states.get(user)
                if state is not None and not _later(mid, state.get("stream_id")):
                    continue  # delivered again after a crash before its acknowledgement
                if state is None or state["session"] != event.session_id:
                    state = states[user] = {"session": event.session_id, "deleted": [], "shown": {}}
                state["stream_id"] = mid.decode()
                item = str(event.item_id)
                if isinstance(event, Delete):
                    state["deleted"] = sorted({*state["deleted"], event.item_id})
                else:
                    state["shown"][item] = state["shown"].get(item, 0) + 1
        self.kv.put_keyed(SESSION_SCOPE, SESSION, users, [json.dumps(states[u]).encode() for u in users])


def _later(stream_id: bytes, than: str | None) -> bool:
    """Whether a stream id comes after another; anything comes after none."""
    return than is None or _stream_order(stream_id) > _stream_order(than)


def hidden_items(kv: KVStore, user_id: str, shown_limit: int) -> set[int]:
    """What the paging API leaves out of the user's candidates in their current session (whichever recall version
    serves it)."""
    raw = kv.get_keyed(SESSION_SCOPE, SESSION, [user_id])[0]
    if not raw:
        return set()
    state = json.loads(raw)
    return {*state["deleted"], *(int(i) for i, n in state["shown"].items() if n >= shown_limit)}


def consume(stream: EventStream, kv: KVStore, runtime_of: Callable[[], RecallRuntime], *, shown_limit: int = 3,
            batch: int = 500, block_ms: int = 100, until: Callable[[Counts], bool] = lambda c: False,
            on_batch: Callable[[Counts], None] | None = None) -> Counts:
    """Read, apply, acknowledge, until `until(counts)`; the served recall version is asked for (`runtime_of`) before
    each batch, so a new one is followed without a restart. Pending messages of this consumer go first."""
    pending = True
    worker: NearRealTime | None = None
    last_health = 0.0
    while True:
        runtime = runtime_of()
        if worker is None or worker.version != runtime.version:
            counts = worker.counts if worker else Counts()
            worker = NearRealTime(kv, runtime, shown_limit)
            worker.counts = counts
            log.info("near-real-time embeddings for recall %s", runtime.version)
        messages = stream.read(batch, block_ms, pending=pending)
        pending = pending and bool(messages)
        if messages:
            worker.apply(messages)
            stream.ack([mid for mid, _ in messages])
            if on_batch:
                on_batch(worker.counts)
        done = until(worker.counts)
        if done or time.monotonic() - last_health >= 1.0:
            stream.put_health({"consumer": stream.consumer, "version": worker.version, "at": time.time(),
                               **worker.counts.summary()})
            worker.counts.delays_ms = worker.counts.delays_ms[-10_000:]  # the recent ones make the percentiles
            last_health = time.monotonic()
        if done:
            return worker.counts


def health(stream: EventStream, now: float | None = None) -> tuple[bool, list[str]]:
    """Whether a consumer reported within HEALTH_STALE_S, and a line per consumer and for the stream's lag."""
    now = time.time() if now is None else now
    lines, fresh = [], False
    for record in stream.health():
        age = now - record["at"]
        fresh |= age <= HEALTH_STALE_S
        lines.append(f"{record['consumer']}: recall {record['version']}, {record['messages']:,} messages "
                     f"({record['invalid']:,} invalid), {record['embedded']:,} embeddings, delay p99 "
                     f"{record['delay_ms']['p99']:.0f} ms, reported {age:.1f} s ago")
    lines.append(f"stream {stream.url} ({stream.key}): {stream.lag()} messages not read yet")
    return fresh, lines
