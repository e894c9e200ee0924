"""The reference edge runtime: what the phone does with a bundle, as the simulator's re-ranking policy.

- Every client event is encoded as it happens, one step of its behaviour encoder, and stored (SQLite). An exposure
  is complete once the user moves on (its delete, if any, comes right after it), so it is encoded at the user's next
  event or trigger; a page view is encoded when it arrives, with its time of end.
- At every trigger the unexposed cached candidates, in the cloud's order, are scored with the stored encodings and
  each event's age at the trigger, and shown best first; an optional diversity step (maximal marginal relevance
  over item attributes) follows, and the business rules of the bundle's manifest (edgerec.edge.rules: demote
  before the order, remove and cap after it).
- The item rows arrive with the candidates, looked up for the runtime's model version (here: from the bundle's
  shards, the cloud's copy of them).
- A bundle that fails verification is refused and the runtime keeps serving the one it has.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from edgerec.contracts.bundle import BundleError
from edgerec.contracts.policy import RerankContext
from edgerec.contracts.rules import BusinessRules, manifest_rules
from edgerec.edge.onnx_model import BundleModel, Encoded
from edgerec.edge.rules import RuleCounts, apply_after_order, demoted
from edgerec.edge.store import BehaviourStore
from edgerec.errors import ConfigError
from edgerec.features import (
    AGE_FEATURE,
    ITEM_CATEGORICAL,
    ITEM_FEATURES,
    MATCH_FEATURES,
    NO_DELETE,
    encode,
    encode_group,
    match_codes,
)

log = logging.getLogger(__name__)
DAY_MS = 86_400_000
OUT_OF_STOCK, NO_IMAGE = 1, 2  # bits of a page's candidate flags


class ItemCatalog:
    """Item features by item id (the catalog snapshot the cloud sends candidates with)."""

    def __init__(self, table: pa.Table):
        ids = table.column("item_id").to_numpy()
        self.size = int(ids.max()) + 1
        self.columns = {}
        for name in ITEM_FEATURES:
            column = np.full(self.size, np.nan)
            column[ids] = table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
            self.columns[name] = column

    def features(self, item_ids: np.ndarray) -> dict[str, np.ndarray]:
        ids = np.asarray(item_ids, dtype=np.int64)
        known = (ids >= 0) & (ids < self.size)
        return {name: np.where(known, col[np.where(known, ids, 0)], np.nan) for name, col in self.columns.items()}


@dataclass
class RuntimeStats:
    """What the replay reports: re-rank wall time and the delay from an event to its first use."""

    rerank_ms: list[float] = field(default_factory=list)
    first_use_delay_ms: list[int] = field(default_factory=list)
    reranks: int = 0
    events_encoded: int = 0
    rules: RuleCounts = field(default_factory=RuleCounts)


def mmr_order(relevance: np.ndarray, attributes: np.ndarray, lam: float) -> np.ndarray:
    """Maximal marginal relevance: repeatedly pick argmax lam * rel - (1 - lam) * max similarity to the picked,
    where similarity is the share of equal attributes. relevance [K] in [0, 1], attributes [K, A] -> order [K]."""
    k = len(relevance)
    picked: list[int] = []
    max_sim = np.zeros(k)
    left = np.ones(k, dtype=bool)
    for _ in range(k):
        gain = np.where(left, lam * relevance - (1.0 - lam) * max_sim, -np.inf)
        best = int(np.argmax(gain))
        picked.append(best)
        left[best] = False
        max_sim = np.maximum(max_sim, (attributes == attributes[best]).mean(axis=1))
    return np.array(picked, dtype=np.int64)


class EdgeRuntime:
    """A RerankPolicy (edgerec.contracts.policy) running a bundle on the device."""

    def __init__(self, bundle: Path, items: ItemCatalog, store: Path | str = ":memory:", lookback_days: int = 3,
                 diversity: float | None = None, threads: int = 1, trusted: dict | None = None,
                 rules: BusinessRules | None = None):
        """`trusted`: the public keys (by key id) a bundle must be signed with, as the app ships them; None
        checks the files against the manifest only (a bundle of one's own, as in the servability gate).
        `rules`: these business rules instead of the manifest's (a what-if in the replay; the phone has no such
        option)."""
        if diversity is not None and not 0.0 <= diversity <= 1.0:
            raise ConfigError(f"diversity lambda must be within [0, 1], not {diversity}")
        self.items, self.store, self.diversity, self.threads = items, BehaviourStore(store), diversity, threads
        self.trusted = trusted
        self.lookback_ms = lookback_days * DAY_MS
        self.model: BundleModel = BundleModel(bundle, threads, trusted)
        self.rules_override = rules
        self.rules = rules if rules is not None else manifest_rules(self.model.manifest)
        self.stats = RuntimeStats()
        self._pending: dict[str, dict] = {}  # user -> the exposure not yet encoded (its delete may follow)
        # request_id -> item_id -> (rank, score, flags: OUT_OF_STOCK | NO_IMAGE bits)
        self._pages: dict[str, dict[int, tuple[int, float | None, int]]] = {}
        self._page_of: dict[str, str] = {}  # user -> request_id of the current page
        self._last_use: dict[str, tuple[str, int]] = {}  # user -> (session, time) of the last re-rank

    @property
    def model_version(self) -> str:
        return self.model.version

    def load(self, bundle: Path) -> None:
        """Switch to another bundle; a bundle that fails verification is refused and the current one stays."""
        try:
            model = BundleModel(bundle, self.threads, self.trusted)
        except BundleError:
            log.error("refused bundle %s; still serving %s", bundle, self.model.version)
            raise
        if model.spec["sha256"] != self.model.spec["sha256"]:
            log.info("bundle %s uses another feature spec", model.version)
        self.model = model
        self.rules = self.rules_override if self.rules_override is not None else manifest_rules(model.manifest)

    # -- events ------------------------------------------------------------------------------------------
    def observe(self, event: dict) -> None:
        user, kind = event["user_id"], event["event_type"]
        pending = self._pending.get(user)
        if kind == "delete" and pending is not None and pending["item_id"] == event["item_id"]:
            pending["reason"] = event["reason"]
        if pending is not None:
            self._encode_exposure(self._pending.pop(user))
        if kind == "page_request":  # only the current page's candidates can still be re-ranked
            self._pages.pop(self._page_of.get(user), None)
            self._page_of[user] = event["request_id"]
            # the score is optional in the contract (rank-only lists): a missing one encodes as missing, as in training
            self._pages[event["request_id"]] = {
                c["item_id"]: (c["rank"], c.get("score"),
                               OUT_OF_STOCK * bool(c.get("out_of_stock")) | NO_IMAGE * bool(c.get("no_image")))
                for c in event["candidates"]}
        elif kind == "exposure":
            counters = self.store.count_exposure(user, event["item_id"], event["exposure_duration_ms"],
                                                 event["scroll_speed"], event["scroll_duration_ms"],
                                                 event["scroll_count"])
            self._pending[user] = {"user_id": user, "ts": event["ts"], "item_id": event["item_id"],
                                   "counters": counters, "reason": NO_DELETE}
        elif kind == "page_view":
            actions = event["actions"]
            values = {name: [float(bool(actions.get(name)))] for name in actions}
            values |= {"d1_duration_ms": [event["ipv_duration_ms"]], AGE_FEATURE["ipv"]: [0.0]}
            self._encode(user, "ipv", event["ts"] + event["ipv_duration_ms"], event["item_id"], values)

    def _encode_exposure(self, e: dict) -> None:
        names = ("e1_duration_ms", "e2_count", "e3_max_scroll_speed", "e4_max_scroll_duration_ms", "e5_scroll_count")
        values = {n: [float(v)] for n, v in zip(names, e["counters"], strict=True)}
        values |= {"e6_delete_reason": [e["reason"]], AGE_FEATURE["ie"]: [0.0]}
        self._encode(e["user_id"], "ie", e["ts"], e["item_id"], values)

    def _encode(self, user: str, behaviour: str, ts: int, item_id: int, values: dict) -> None:
        """One step of the behaviour's encoder from the stored state; the age is not read (it is the trigger's)."""
        m = self.model
        ids = np.array([item_id])
        codes = encode_group(m.spec, behaviour, self.items.features(ids) | values)
        state = self.store.state(user, behaviour, m.version)
        state = m.zero_state() if state is None else state.reshape(m.zero_state().shape)
        state, item, fused = m.step(behaviour, m.rows(codes, ids)[0], codes[0], state)
        self.store.append(user, behaviour, m.version, ts, item_id, item, fused, match_codes(ids, codes)[0], state,
                          ts - self.lookback_ms)
        self.stats.events_encoded += 1

    # -- triggers ----------------------------------------------------------------------------------------
    def rerank(self, ctx: RerankContext) -> np.ndarray | None:
        started = time.perf_counter()
        if ctx.user_id in self._pending:
            self._encode_exposure(self._pending.pop(ctx.user_id))
        page = self._pages.get(ctx.request_id)
        if page is None:
            return None
        if len(ctx.item_ids) < 2:  # nothing to order; the rules still say whether it may be shown
            if self.rules.remove_out_of_stock and len(ctx.item_ids) and _flags(page, ctx.item_ids)[0] & OUT_OF_STOCK:
                self.stats.rules.removed_out_of_stock += 1
                return np.zeros(0, dtype=np.int64)
            return None
        m, t = self.model, ctx.ts
        ranks = np.array([page.get(int(i), (10**9,))[0] for i in ctx.item_ids])
        by_rank = np.argsort(ranks, kind="stable")  # the cloud's order: the model's input order
        cloud, rest = np.split(by_rank, [m.spec["sequence_lengths"]["candidates"]])
        ids = ctx.item_ids[cloud]
        values = self.items.features(ids) | {"cloud_score": np.array([page[int(i)][1] for i in ids], dtype=np.float64)}
        codes = encode_group(m.spec, "candidate", values)
        # events after the session's previous trigger are new to this one (the first trigger of a session, its page
        # request, comes before any of its behaviour: nothing earlier counts as delayed)
        session, last = self._last_use.get(ctx.user_id, (None, t))
        last = last if session == ctx.session_id else t
        encoded, ages = {}, {}
        for b in m.behaviours:
            until = t - 1 if b == "ie" else t  # exposures strictly before the trigger, page views ended by it
            ts, item, fused, matches = self.store.recent(ctx.user_id, b, m.version, t - self.lookback_ms, until,
                                                         m.spec["sequence_lengths"][b])
            encoded[b] = Encoded(item.reshape(len(ts), m.hidden), fused.reshape(len(ts), 2 * m.hidden),
                                 matches.reshape(len(ts), len(MATCH_FEATURES)))
            ages[b] = encode(m.spec["features"][AGE_FEATURE[b]], (t - ts) / 1000.0)
            self.stats.first_use_delay_ms += (t - ts[ts > last]).tolist()
        scores = m.rerank(m.rows(codes, ids), codes, ids, encoded, ages)
        shown = self._order(ctx.item_ids, scores, cloud, rest, values, page)
        self._last_use[ctx.user_id] = (ctx.session_id, t)
        self.stats.reranks += 1
        self.stats.rerank_ms.append((time.perf_counter() - started) * 1000.0)
        return shown

    def _order(self, item_ids: np.ndarray, scores: np.ndarray, cloud: np.ndarray, rest: np.ndarray, values: dict,
               page: dict) -> np.ndarray:
        """What is shown, as indices into item_ids: the scored candidates (`cloud`) best first (or by maximal marginal
        relevance), then those beyond the model's list length (`rest`) in the cloud's order, under the rules."""
        def ordered(log_p: np.ndarray | None) -> np.ndarray:
            best = np.argsort(-scores if log_p is None else -log_p, kind="stable")
            if self.diversity is not None:
                relevance = 1.0 / (1.0 + np.exp(-scores)) if log_p is None else np.exp(log_p)
                best = mmr_order(relevance, np.stack([values[n] for n in ITEM_CATEGORICAL], axis=1), self.diversity)
            return np.concatenate([cloud[best], rest])

        rules = self.rules
        if not rules.active:
            return ordered(None)
        counts = self.stats.rules
        flags = _flags(page, item_ids)
        no_image = (flags[cloud] & NO_IMAGE > 0) & (rules.demote_no_image < 1.0)
        counts.demoted_no_image += int(no_image.sum())
        unruled = ordered(None)
        before = ordered(demoted(scores, no_image, rules.demote_no_image)) if no_image.any() else unruled
        shown = apply_after_order(before, flags & OUT_OF_STOCK > 0, self.items.features(item_ids)["category"], rules,
                                  counts)
        counts.reranks += 1
        counts.reranks_changed += int(not np.array_equal(shown, unruled))
        return shown


def _flags(page: dict, item_ids: np.ndarray) -> np.ndarray:
    """The OUT_OF_STOCK | NO_IMAGE bits the page's candidates carry, for item_ids [N] (0: unflagged or unknown)."""
    return np.array([page.get(int(i), (0, None, 0))[2] for i in item_ids], dtype=np.int64)
