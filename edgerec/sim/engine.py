"""The behaviour simulator: page requests, scrolling, clicks, page views, deletes and client re-ranks.

Ground truth per exposure: a click logit made of the user's long-term utility, short-term boosts from
recent clicks (sudden preference, decaying with a half-life), minus fatigue from unclicked exposures of
the same category (a fast scroll tires more than a long look), times a position-dependent examination
probability. The cloud ranks from long-term interests and sees in-session clicks only after a delay.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable
from typing import NamedTuple

import numpy as np

from edgerec.contracts import ACTION_NAMES
from edgerec.contracts.policy import CloudOrder, RerankContext, RerankPolicy
from edgerec.edge.exploration import explore_order, in_bucket
from edgerec.sim.config import SimConfig
from edgerec.sim.world import (
    _SESSION,
    Catalog,
    User,
    build_catalog,
    build_user,
    long_term_utility,
    rng_for,
)

Emit = Callable[[dict], None]

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
SESSION_GAP_MS = 31 * 60_000  # sessions of one user stay apart by more than the default inactivity gap
# page-view action logits: intercept, per unit of utility, per price level of fit (ACTION_NAMES order)
_ACTION_INTERCEPT = np.array([-2.2, -3.2, -2.6, -3.6, -1.6, -3.4, -4.0, -0.6, -2.0, -1.5])
_ACTION_UTILITY = np.array([0.6, 0.6, 0.5, 0.3, 0.4, 0.3, 0.2, 0.3, 0.4, 0.2])
_ACTION_PRICE_FIT = np.array([0.5, 0.8, 0.2, 0.1, 0.4, 0.2, 0.2, 0.0, 0.1, 0.0])
_DEEP_ACTIONS = (0, 1, 2)  # cart, buy, favorite


class Trigger(NamedTuple):
    """What the simulator alone knows at a re-rank, for measuring how much a re-ranker could gain there
    (bench/oracle.py). Lists are over the unexposed candidates in display order."""

    request_id: str
    ts: int
    items: list[int]
    appeal: list[float]  # the click logit less the base, before the position's examination (`appeal` in `_session`)
    utility: list[float]  # its long-term part: the user's taste for the item, which no log shows
    cloud_score: list[float]  # the cloud's estimate, by which it ranked the page
    exposed_before: int  # the page's items exposed before the trigger: the first candidate's display position


Oracle = Callable[[Trigger], None]


class _DayOver(Exception):
    """A session reached the end of its day: it stops there, so every event stays in its ds partition."""


def _within_cap(categories: np.ndarray, cap: int) -> np.ndarray:
    """Mask keeping at most `cap` rows per category, first come first kept (the cloud's scatter rule)."""
    order = np.argsort(categories, kind="stable")
    sorted_cats = categories[order]
    starts = np.searchsorted(sorted_cats, sorted_cats, side="left")
    keep = np.empty(len(categories), dtype=bool)
    keep[order] = (np.arange(len(categories)) - starts) < cap
    return keep


def day_start_ms(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)


# (user id, time, the session's events so far, how many) -> item ids and their scores, best first
CandidateHook = Callable[[str, int, list[dict], int], tuple[np.ndarray, np.ndarray]]


class Simulator:
    """Simulates users' days; events go to `emit` as raw-log dicts in the order they happen per user."""

    def __init__(self, cfg: SimConfig, policy: RerankPolicy | None = None, oracle: Oracle | None = None,
                 policy_of: Callable[[str], RerankPolicy] | None = None, candidates: CandidateHook | None = None):
        """`policy`: what every device runs (default: the cloud's order); `policy_of`: instead, each device's own
        by its device id (the release channels' assignment, `deploy.fleet`); `candidates`: another source of each
        page's candidates than the simulated cloud ranker (a recall model, in the replay)."""
        self.cfg = cfg
        self.candidates = candidates
        self.oracle = oracle
        self.catalog: Catalog = build_catalog(cfg.world, cfg.seed)
        self.policy: RerankPolicy = policy or CloudOrder()
        self.policy_of: Callable[[str], RerankPolicy] = policy_of or (lambda _device_id: self.policy)
        cat = self.catalog
        self._cat_count = np.diff(cat.cat_start)
        self._q_est = (np.log(cat.ctr_score / (1 - cat.ctr_score)) + 3.0) / 0.8  # the cloud's quality estimate
        self._users: dict[int, User] = {}  # users are fixed across days; days are not kept
        self._exam = [math.exp(-cfg.behaviour.position_decay * p) for p in range(cfg.client.page_size)]

    def user(self, index: int) -> User:
        user = self._users.get(index)
        if user is None:
            user = self._users[index] = build_user(self.cfg.world, self.catalog, self.cfg.seed, index)
        return user

    def cloud_candidates(self, user_index: int, t: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """The cloud's answer to a user's fresh page request (no session behaviour yet): item ids and scores, best
        first. What the paging API serves in the embedded world."""
        rows, scores, _ = self._cloud_page(self.user(user_index), np.random.default_rng([self.cfg.seed, seed, t]), t,
                                           np.zeros(len(self.catalog), dtype=bool), [])
        return self.catalog.item_id[rows], scores

    def simulate_day(self, day: dt.date, emit: Emit, users: Iterable[int] | None = None) -> None:
        for index in users if users is not None else range(self.cfg.users):
            self.simulate_user_day(self.user(index), day, emit)

    def simulate_user_day(self, user: User, day: dt.date, emit: Emit) -> None:
        beh = self.cfg.behaviour
        rng = rng_for(self.cfg.seed, _SESSION, user.index, day.toordinal())
        n_sessions = int(rng.poisson(beh.sessions_per_day))
        lo = day_start_ms(day)
        starts = np.sort(rng.integers(lo, lo + DAY_MS - HOUR_MS, size=n_sessions))
        not_before = lo
        for s, start in enumerate(starts.tolist()):
            start = max(start, not_before)
            if start >= lo + DAY_MS - HOUR_MS:
                break
            session_id = f"{user.user_id}-{day:%Y%m%d}-{s}"
            try:
                end = self._session(user, session_id, start, lo + DAY_MS - 1000, rng, emit)
            except _DayOver:
                break
            not_before = end + SESSION_GAP_MS

    # -- one session -------------------------------------------------------------------------------------
    def _session(self, user: User, session_id: str, t: int, t_max: int, rng, emit: Emit) -> int:
        beh, client, cat = self.cfg.behaviour, self.cfg.client, self.catalog
        policy, oracle = self.policy_of(user.device_id), self.oracle
        observes = not isinstance(policy, CloudOrder)
        half_life_ms, cap = beh.short_term_half_life_s * 1000.0, beh.short_term_cap
        history: list[dict] = []
        n_event = 0
        # knobs as locals: this loop runs once per exposure
        fatigue_w, base_logit, exam = beh.fatigue_per_exposure, beh.base_click_logit, self._exam
        long_ms, long_fatigue, delete_rate = beh.long_exposure_ms, beh.long_exposure_fatigue, beh.delete_rate
        leave_base, leave_per_miss = beh.leave_base, beh.leave_per_miss
        trigger_k, page_size = client.trigger_k, client.page_size
        user_id, device_id, app_version = user.user_id, user.device_id, client.app_version
        model_version = policy.model_version
        explores = in_bucket(device_id, client.exploration_share)
        offset = 0  # of the current page's exploration windows

        def record(ev: dict) -> dict:
            history.append(ev)
            emit(ev)
            if observes:
                policy.observe(ev)
            return ev

        def event(kind: str, ts: int, **fields) -> dict:
            nonlocal n_event
            if ts > t_max:
                raise _DayOver
            ev = {"event_id": f"{session_id}-{n_event:05d}", "event_type": kind, "user_id": user_id,
                  "session_id": session_id, "device_id": device_id, "ts": ts, "app_version": app_version,
                  "model_version": model_version}
            ev.update(fields)
            n_event += 1
            return record(ev)

        st_cat: dict[int, tuple[float, int]] = {}  # short-term boosts: value at time
        st_brand: dict[int, tuple[float, int]] = {}
        fatigue: dict[int, float] = {}
        visible: list[tuple[int, int, int, float]] = []  # (ts, category, brand, delta) the cloud learns of
        exposed = np.zeros(len(cat), dtype=bool)  # catalog rows exposed in this session
        viewed: dict[int, tuple[float, int]] = {}  # catalog row -> (revisit boost, at time) of the items viewed
        revisit_boost = beh.revisit_boost

        def boost(store: dict, key: int, delta: float, now: int) -> None:
            value, t0 = store.get(key, (0.0, now))
            store[key] = (min(cap, value * 0.5 ** ((now - t0) / half_life_ms) + delta), now)

        order: list[int] = []  # the unexposed candidates of the current page, in display order

        def appeal(i: int, now: int) -> float:
            """The logit of candidate i of the page at time `now`, before the position's examination: its long-term
            utility, less the fatigue of its category, plus the decayed short-term boosts of its category and brand
            and of an earlier view of the item itself."""
            c, b = cats[i], brands[i]
            z = utility[i] - fatigue_w * fatigue.get(c, 0.0)
            if c in st_cat:
                value, t0 = st_cat[c]
                z += value * 0.5 ** ((now - t0) / half_life_ms)
            if b in st_brand:
                value, t0 = st_brand[b]
                z += value * 0.5 ** ((now - t0) / half_life_ms)
            if revisit_boost and row_list[i] in viewed:
                value, t0 = viewed[row_list[i]]
                z += value * 0.5 ** ((now - t0) / half_life_ms)
            return z

        def rerank(trigger: str, now: int, page: tuple, shown: int) -> None:
            """The policy's order of the page's unexposed candidates (shown from display position `shown` on), shuffled
            within windows on a device of the exploration bucket, logged."""
            nonlocal order, since_rerank, offset
            request_id, item_ids, scores = page
            since_rerank = 0
            previous = order
            new = policy.rerank(RerankContext(
                user_id, device_id, session_id, request_id, now, trigger,
                np.array([item_ids[i] for i in order], dtype=np.int64), scores[order], history,
            )) if observes else None
            if new is not None:
                picked = new.tolist()
                if len(set(picked)) != len(picked) or not all(0 <= j < len(order) for j in picked):
                    raise ValueError(f"policy returned no permutation of (a subset of) {len(order)} candidates")
                order = [order[j] for j in picked]  # those left out are not shown
            logged = {}
            if explores:
                window = client.exploration_window
                offset = int(rng.integers(window)) if shown == 0 else offset
                order = explore_order(previous, order, shown, window, offset, rng)
                logged["exploration"] = {"window": window, "offset": offset}
            event("rerank", now, request_id=request_id, trigger=trigger, order=[item_ids[i] for i in order], **logged)
            if oracle is not None:
                oracle(Trigger(request_id, now, [item_ids[i] for i in order], [appeal(i, now) for i in order],
                               [utility[i] for i in order], [float(scores[i]) for i in order],
                               len(item_ids) - len(order)))

        misses = 0  # exposures in a row without a click (the user's patience)
        since_rerank = 0  # exposures since the last re-rank, none clicked (the client's exposed_k rule)
        for page_no in range(client.max_pages):
            request_id = f"{session_id}-p{page_no}"
            if self.candidates is None:
                rows, scores, utility = self._cloud_page(user, rng, t, exposed, visible, viewed)
            else:
                rows, scores, utility = self._hooked_page(user, t, exposed, history)
            if len(rows) == 0:
                break
            row_list, item_ids = rows.tolist(), cat.item_id[rows].tolist()
            out_of_stock, no_image = cat.out_of_stock[rows].tolist(), cat.no_image[rows]
            event("page_request", t, request_id=request_id, page_no=page_no, candidates=[
                self._candidate(i, r, s, oos, ni) for r, (i, s, oos, ni) in enumerate(zip(
                    item_ids, np.round(scores, 5).tolist(), out_of_stock, no_image.tolist(), strict=True))])
            # an item shown without an image draws fewer clicks; the cloud's ranker does not know it
            utility = (utility - beh.no_image_penalty * no_image).tolist()
            cats, brands = cat.category[rows].tolist(), cat.brand[rows].tolist()
            quality = cat.quality[rows].tolist()
            price_gap = np.abs(cat.price_level[rows] - user.price_level).tolist()
            uniform = rng.random((len(rows), 5)).tolist()
            normal = rng.standard_normal((len(rows), 2))
            dwell_noise = (700.0 * np.exp(0.35 * normal[:, 0])).tolist()
            speed_noise = (1.2 * np.exp(0.3 * normal[:, 1])).tolist()
            order = list(range(len(rows)))

            page = (request_id, item_ids, scores)
            rerank("page", t, page, 0)
            for position in range(page_size):
                if not order or t >= t_max:
                    break
                i = order.pop(0)
                c, b = cats[i], brands[i]
                exposed[row_list[i]] = True
                u_click, u_delete, u_leave, u_scroll, u_count = uniform[i]
                z = appeal(i, t)
                interest = math.exp(0.35 * z)
                duration = int(min(20_000.0, max(120.0, dwell_noise[i] * interest)))
                # built inline, not through event(): exposures are most events, and kwargs cost here;
                # the loop's own t < t_max check stands in for event()'s end-of-day check
                record({"event_id": f"{session_id}-{n_event:05d}", "event_type": "exposure", "user_id": user_id,
                        "session_id": session_id, "device_id": device_id, "ts": t, "app_version": app_version,
                        "model_version": model_version, "request_id": request_id, "item_id": item_ids[i],
                        "position": position, "exposure_duration_ms": duration,
                        "scroll_speed": round(speed_noise[i] / interest ** 0.857, 4),
                        "scroll_duration_ms": int(duration * (0.2 + 0.3 * u_scroll)),
                        "scroll_count": 1 + int(u_count * duration / 600)})
                n_event += 1
                t += duration
                p_click = exam[position] / (1.0 + math.exp(-(base_logit + z)))
                trigger = None
                if u_click < p_click:
                    misses = 0
                    event("click", t, request_id=request_id, item_id=item_ids[i], position=position)
                    t = self._page_view(user, item_ids[i], z, price_gap[i], request_id, t + 200, rng, event,
                                        out_of_stock[i])
                    deep = beh.deep_action_boost if any(history[-1]["actions"][ACTION_NAMES[a]]
                                                        for a in _DEEP_ACTIONS) else 0.0
                    boost(st_cat, c, beh.click_boost_category + deep, t)
                    boost(st_brand, b, beh.click_boost_brand, t)
                    if revisit_boost:
                        viewed[row_list[i]] = (revisit_boost, t)
                    fatigue[c] = 0.5 * fatigue.get(c, 0.0)
                    visible.append((t, c, b, beh.click_boost_category))
                    trigger = "click"
                else:
                    misses += 1
                    since_rerank += 1
                    weight = long_fatigue if duration >= long_ms else 1.0
                    fatigue[c] = fatigue.get(c, 0.0) + weight
                    if u_delete < delete_rate / (1.0 + math.exp(2.0 * (z + 1.0))):
                        reason = ("low_quality" if quality[i] < -1.0 else
                                  "seen_before" if fatigue[c] >= 2.0 else "not_interested")
                        t += 800
                        event("delete", t, request_id=request_id, item_id=item_ids[i], position=position,
                              reason=reason)
                        boost(st_cat, c, -beh.delete_penalty, t)
                        visible.append((t, c, b, -beh.delete_penalty))
                        trigger = "delete"
                    elif since_rerank >= trigger_k:
                        trigger = "exposed_k"
                if u_leave < leave_base + leave_per_miss * misses:
                    return t
                if trigger is not None and order:
                    rerank(trigger, t, page, position + 1)
            t += 400  # the next page loads
            if t >= t_max:
                break
        return t

    def _hooked_page(self, user: User, t: int, exposed: np.ndarray, history: list[dict]) -> tuple:
        """The `candidates` hook's answer to a page request, without the items already exposed in the session:
        candidate rows, the hook's scores and the true long-term utility, in the hook's order."""
        cat, want = self.catalog, self.cfg.client.candidates_per_request
        ids, scores = self.candidates(user.user_id, t, history, want + int(exposed.sum()))
        at = np.minimum(np.searchsorted(cat.item_id, ids), len(cat.item_id) - 1)
        known = cat.item_id[at] == ids
        keep = known & ~exposed[at]
        rows, scores = at[keep][:want], np.asarray(scores)[keep][:want]
        return rows, scores, long_term_utility(self.cfg.world, cat, user, rows)

    def _cloud_page(self, user: User, rng, t: int, exposed: np.ndarray, visible: list,
                    viewed: dict | None = None) -> tuple:
        """The cloud's answer to a page request: candidate rows, its scores and the true long-term utility,
        best first by the cloud's score. With client.reshow_viewed, each item viewed earlier in the session comes
        back among the candidates with that probability, ranked like any other (the cloud does not know the user
        wants it again)."""
        cfg, beh, client, cat = self.cfg.world, self.cfg.behaviour, self.cfg.client, self.catalog
        n_cat = len(cat.cat_popularity)
        weights = (1.0 - beh.explore_share) * np.bincount(
            user.interest_cats, weights=user.interest_weights, minlength=n_cat) + beh.explore_share * cat.cat_popularity
        short_term = np.zeros(n_cat)
        half_life_ms = beh.short_term_half_life_s * 1000.0
        horizon = t - self.cfg.client.cloud_delay_s * 1000.0
        for ts, c, _b, delta in visible:
            if ts <= horizon:
                short_term[c] += delta * 0.5 ** ((t - ts) / half_life_ms)
        weights = weights * np.exp(np.clip(short_term, -5.0, 2.0))
        weights /= weights.sum()
        want = client.candidates_per_request
        if client.min_candidates_per_request is not None:
            want = int(rng.integers(client.min_candidates_per_request, want + 1))
        rows = np.empty(0, dtype=np.int64)
        allowed = ~exposed
        if client.reshow_viewed and viewed:
            again = np.fromiter(viewed, dtype=np.int64)
            rows = again[rng.random(len(again)) < client.reshow_viewed][: want // 2]
            allowed = allowed.copy()
            allowed[rows] = True
        for attempt in range(4):  # the last attempt fills up from the whole catalog
            cats = rng.choice(n_cat, size=2 * want, p=weights if attempt < 3 else cat.cat_popularity)
            drawn = cat.cat_start[cats] + (rng.random(2 * want) * self._cat_count[cats]).astype(np.int64)
            rows, first = np.unique(np.concatenate([rows, drawn]), return_index=True)
            rows = rows[np.argsort(first)]
            rows = rows[allowed[rows]]
            rows = rows[_within_cap(cat.category[rows], client.max_per_category)]
            if len(rows) >= want:
                break
        rows = rows[:want]
        utility = long_term_utility(cfg, cat, user, rows)
        estimate = (utility
                    + cfg.quality_weight * (self._q_est[rows] - cat.quality[rows])
                    + short_term[cat.category[rows]]
                    + cfg.cloud_noise * rng.standard_normal(len(rows)))
        best_first = np.argsort(-estimate, kind="stable")
        return rows[best_first], estimate[best_first], utility[best_first]

    def _candidate(self, item_id: int, rank: int, score: float, out_of_stock: bool, no_image: bool) -> dict:
        """A page's candidate as the cloud logs it: the flags only where they are set."""
        candidate = {"item_id": item_id, "rank": rank, "score": score} if self.cfg.client.cloud_scores else {
            "item_id": item_id, "rank": rank}
        if out_of_stock:
            candidate["out_of_stock"] = True
        if no_image:
            candidate["no_image"] = True
        return candidate

    def _page_view(self, user: User, item_id: int, z: float, price_gap: int, request_id: str, t: int,
                   rng, event, out_of_stock: bool = False) -> int:
        logits = _ACTION_INTERCEPT + _ACTION_UTILITY * z - _ACTION_PRICE_FIT * price_gap
        done = (rng.random(len(ACTION_NAMES)) < 1.0 / (1.0 + np.exp(-logits))).tolist()
        if out_of_stock:  # drawn all the same, so the rest of the session is the same with or without the flag
            done[ACTION_NAMES.index("cart")] = done[ACTION_NAMES.index("buy")] = False
        duration = int(min(600_000, max(1_000, 15_000 * math.exp(0.3 * z + 0.5 * rng.standard_normal()))))
        event("page_view", t, request_id=request_id, item_id=item_id, ipv_duration_ms=duration,
              actions=dict(zip(ACTION_NAMES, done, strict=True)))
        return t + duration + 500


def simulate_in_memory(cfg: SimConfig, policy: RerankPolicy | None = None) -> tuple[Simulator, list[dict]]:
    """Every day of `cfg` into a list of events (for tests and closed-loop experiments on small worlds)."""
    events: list[dict] = []
    sim = Simulator(cfg, policy)
    for day in cfg.dates:
        sim.simulate_day(day, events.append)
    return sim, events
