"""Closed-loop replay: the same simulated users and seed twice, with the cloud's order and with EdgeRec re-ranking on
the device, and the analogues of the paper's Table 3 and Fig. 5.

Reported per arm: sessions, exposures, clicks, CTR, item page views, carts, buys, deletes, CTR by display position
(plotted), re-rankings per session (the cloud re-ranks at each page request only; the paper: 3 vs 15), the delay
from a behaviour to its first use by a ranker within its session (the cloud sees behaviour after
`client.cloud_delay_s` and uses it at the next page request; the device at its next trigger), the device's wall time
per re-rank (p50/p99, everything the phone does at a trigger: reading the store, encoding the candidates, the
network), how often each business rule of the bundle fired, and GMV: what the buys sold, in price units
(`edgerec.contracts.catalog.price_units`). With other rules (`rules`), one arm more runs the same bundle under them;
with another bundle (`against`), one arm more runs that bundle on the device: either is compared with the EdgeRec
arm on the same users.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgerec.contracts.catalog import price_units
from edgerec.contracts.policy import CloudOrder
from edgerec.contracts.rules import BusinessRules
from edgerec.edge.runtime import EdgeRuntime, ItemCatalog
from edgerec.recall import RecallRuntime
from edgerec.sim.config import SimConfig
from edgerec.sim.engine import DAY_MS, Simulator
from edgerec.sim.world import build_catalog

BEHAVIOURS = ("exposure", "click", "page_view", "delete")
# counted per user and day, the units of the paired intervals; gmv: what the buys sold, in price units
UNIT_COUNTS = ("exposure", "click", "page_view", "buy", "gmv")
# The paper's online A/B (Gong et al. 2020, Table 3), EdgeRec against the cloud's order
PAPER_ONLINE = {"exposures (PV)": 0.0157, "CTR": 0.0718, "clicks": 0.0887, "GMV": 0.1092}
BOOTSTRAP_ROUNDS = 2000


@dataclass
class Arm:
    """Counts of one arm of the replay, gathered as events are emitted."""

    name: str
    page_size: int
    cloud_delay_ms: int
    prices: dict  # item id -> price units, for GMV
    sessions: set = field(default_factory=set)
    counts: dict = field(default_factory=lambda: dict.fromkeys(("exposure", "click", "page_view", "delete",
                                                                 "page_request", "rerank"), 0))
    exposures_at: np.ndarray = None
    clicks_at: np.ndarray = None
    delays_ms: list = field(default_factory=list)
    by_unit: dict = field(default_factory=dict)  # (user, day number) -> counts in UNIT_COUNTS order
    _waiting: dict = field(default_factory=dict)  # user -> behaviour times the cloud has not used yet

    def __post_init__(self):
        self.exposures_at = np.zeros(self.page_size, dtype=np.int64)
        self.clicks_at = np.zeros(self.page_size, dtype=np.int64)

    def __call__(self, event: dict) -> None:
        kind, user = event["event_type"], event["user_id"]
        if event["session_id"] not in self.sessions:  # behaviour is counted as used within its session only
            self.sessions.add(event["session_id"])
            self._waiting[user] = []
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if kind == "page_view":
            for action in ("cart", "buy"):
                self.counts[action] = self.counts.get(action, 0) + bool(event["actions"].get(action))
        if kind in UNIT_COUNTS:
            unit = self.by_unit.setdefault((user, event["ts"] // DAY_MS), [0] * len(UNIT_COUNTS))
            unit[UNIT_COUNTS.index(kind)] += 1
            if kind == "page_view" and event["actions"].get("buy"):
                sold = self.prices[event["item_id"]]
                unit[UNIT_COUNTS.index("buy")] += 1
                unit[UNIT_COUNTS.index("gmv")] += sold
                self.counts["gmv"] = self.counts.get("gmv", 0) + sold
        if kind == "exposure":
            self.exposures_at[event["position"]] += 1
        elif kind == "click":
            self.clicks_at[event["position"]] += 1
        if kind in BEHAVIOURS:
            self._waiting.setdefault(user, []).append(event["ts"])
        elif kind == "page_request":  # the cloud uses what reached it by now
            waiting = self._waiting.get(user, [])
            used = [ts for ts in waiting if ts + self.cloud_delay_ms <= event["ts"]]
            self.delays_ms += [event["ts"] - ts for ts in used]
            self._waiting[user] = [ts for ts in waiting if ts + self.cloud_delay_ms > event["ts"]]

    def summary(self) -> dict:
        exposures, clicks = self.counts["exposure"], self.counts["click"]
        return {"sessions": len(self.sessions), "exposures": exposures, "clicks": clicks,
                "ctr": clicks / exposures if exposures else float("nan"), "item_page_views": self.counts["page_view"],
                "carts": self.counts.get("cart", 0), "buys": self.counts.get("buy", 0),
                "gmv": self.counts.get("gmv", 0),
                "deletes": self.counts["delete"], "page_requests": self.counts["page_request"],
                "ctr_by_position": (self.clicks_at / np.maximum(self.exposures_at, 1)).round(5).tolist(),
                "exposures_by_position": self.exposures_at.tolist()}


def _percentiles(values) -> dict:
    if not len(values):
        return {"p50": None, "p99": None, "n": 0}
    return {"p50": float(np.percentile(values, 50)), "p99": float(np.percentile(values, 99)), "n": len(values)}


def paired_gains(cloud: np.ndarray, edge: np.ndarray, rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0) -> dict:
    """EdgeRec's relative gain over the cloud's order in exposures, clicks, CTR, item page views, buys and GMV, each
    with a 95% interval: the units (user-days, the same in both arms) are resampled together, so what a user brings
    to both arms cancels. cloud, edge [units, 5]: exposures, clicks, page views, buys, GMV per unit (UNIT_COUNTS)."""
    picks = np.random.default_rng(seed).integers(0, max(len(cloud), 1), size=(rounds, len(cloud)))  # none: no gain
    c, e = cloud[picks].sum(axis=1), edge[picks].sum(axis=1)  # [rounds, 5]
    with np.errstate(divide="ignore", invalid="ignore"):
        draws = {"exposures (PV)": e[:, 0] / c[:, 0], "clicks": e[:, 1] / c[:, 1],
                 "CTR": (e[:, 1] / e[:, 0]) / (c[:, 1] / c[:, 0]), "item page views": e[:, 2] / c[:, 2],
                 "buys": e[:, 3] / c[:, 3], "GMV": e[:, 4] / c[:, 4]}
        ct, et = cloud.sum(axis=0), edge.sum(axis=0)
        values = {"exposures (PV)": et[0] / ct[0], "clicks": et[1] / ct[1], "CTR": (et[1] / et[0]) / (ct[1] / ct[0]),
                  "item page views": et[2] / ct[2], "buys": et[3] / ct[3], "GMV": et[4] / ct[4]}
    out = {}
    for metric, ratio in draws.items():
        ratio = np.where(np.isfinite(ratio), ratio, np.nan)  # a draw without any in the base arm has no ratio
        low, high = np.nanpercentile(ratio, [2.5, 97.5]) - 1.0 if np.isfinite(ratio).any() else (np.nan, np.nan)
        out[metric] = {"value": float(values[metric] - 1.0), "low": float(low), "high": float(high)}
    return out


def unit_counts(arm: Arm, units: list) -> np.ndarray:
    """[units, UNIT_COUNTS] the arm's counts on these user-days (zeros where it had none; [0, 5] for none)."""
    zero = [0] * len(UNIT_COUNTS)
    return np.array([arm.by_unit.get(u, zero) for u in units], dtype=np.float64).reshape(len(units), len(UNIT_COUNTS))


def paired(base: Arm, other: Arm) -> tuple[int, dict]:
    """(user-days, `paired_gains` of `other` over `base`) over the user-days of either arm."""
    units = sorted(set(base.by_unit) | set(other.by_unit))
    return len(units), paired_gains(unit_counts(base, units), unit_counts(other, units))


class RecallPages:
    """A recall version as the simulator's candidate source: each page's candidates are the nearest items of the
    user's vector, embedded from the user's history (fct_recall_users: the warehouse's, at the end of the day the
    recall was trained on) and the session's clicks and page views so far, as the near-real-time consumer would have
    it; popularity for a user without either."""

    def __init__(self, runtime: RecallRuntime, histories: dict[str, list[int]]):
        self.runtime, self.histories = runtime, histories

    def __call__(self, user_id: str, t: int, session: list[dict], k: int) -> tuple[np.ndarray, np.ndarray]:
        items, last = list(self.histories.get(user_id, [])), None
        for event in session:
            key = (event.get("request_id") or event["event_id"], event.get("item_id"))
            if event["event_type"] in ("click", "page_view") and key != last:  # a click and its page view: once
                items.append(event["item_id"])
                last = key
        vector, embedded = self.runtime.embed([items])
        if not embedded[0]:
            popular = self.runtime.popular_items(k)
            return popular, np.linspace(1.0, 0.0, len(popular), endpoint=False)
        found, scores = self.runtime.search(vector, min(k, len(self.runtime.item_ids)))
        return found[0], scores[0]


def replay(cfg: SimConfig, bundle: Path, day: dt.date, diversity: float | None = None,
           progress: Callable[[str, int], None] | None = None, trusted: dict | None = None, days: int = 1,
           seeds: int = 1, recall: RecallPages | None = None, rules: BusinessRules | None = None,
           against: Path | None = None) -> dict:
    """Simulate `cfg.users` users on `days` days from `day` twice (cloud order, then the bundle on the device); the
    comparison, with paired intervals over user-days.

    `seeds` draws of users from the same world (its catalog and the model's items unchanged): draw k replays the
    users k * cfg.users .. (k + 1) * cfg.users - 1, each with its own seeded sessions; draw 0 holds the users the
    world's logs (and so the model) came from, the others are users the model has never seen.

    With `recall`, two arms more take each page's candidates from that recall version instead of the simulated
    cloud ranker, with the cloud's order (the recall's scores) and with the bundle on the device: `out["recall"]`
    compares the four.

    With `rules`, one arm more runs the bundle under these business rules instead of its manifest's: `out["rules"]`
    compares it with the EdgeRec arm. With `against`, one arm more runs that other bundle on the device (a
    challenger, say a multi-task model against today's click model): `out["against"]` compares it with the EdgeRec
    arm."""
    client = cfg.client
    catalog = build_catalog(cfg.world, cfg.seed)
    prices = dict(zip(catalog.item_id.tolist(), price_units(catalog.price_level).tolist(), strict=True))

    def arm(name: str) -> Arm:
        return Arm(name, client.page_size, int(client.cloud_delay_s * 1000), prices=prices)

    cloud, edge = arm("cloud order"), arm("EdgeRec")
    runtime = EdgeRuntime(bundle, ItemCatalog(catalog.to_arrow()), diversity=diversity, trusted=trusted)
    arms = [(cloud, CloudOrder(), None), (edge, runtime, None)]
    extra = {}  # out key -> (arm, its runtime): the arms compared with the EdgeRec arm
    if rules is not None:
        extra["rules"] = (arm(RULES_ARM), EdgeRuntime(bundle, runtime.items, diversity=diversity, trusted=trusted,
                                                      rules=rules))
    if against is not None:
        extra["against"] = (arm(AGAINST_ARM), EdgeRuntime(against, runtime.items, diversity=diversity,
                                                          trusted=trusted))
    arms += [(a, policy, None) for a, policy in extra.values()]
    if recall is not None:
        # a runtime of its own: the device's store and counts start empty, as in the EdgeRec arm
        arms += [(arm(RECALL_ARMS[0]), CloudOrder(), recall),
                 (arm(RECALL_ARMS[1]), EdgeRuntime(bundle, runtime.items, diversity=diversity, trusted=trusted),
                  recall)]
    for each, policy, candidates in arms:
        sim = Simulator(cfg, policy, candidates=candidates)
        for d in range(days):
            for user in range(cfg.users * seeds):
                sim.simulate_day(day + dt.timedelta(days=d), each, users=[user])
                if progress:
                    progress(each.name, d * cfg.users * seeds + user + 1)
    out = {"version": runtime.model_version, "day": str(day), "days": days, "users": cfg.users * seeds,
           "seeds": seeds, "seed": cfg.seed, "diversity": diversity, "arms": {}}
    for each in (cloud, edge):
        s = each.summary()
        reranks = s["page_requests"] if each is cloud else each.counts["rerank"]
        delays = each.delays_ms if each is cloud else runtime.stats.first_use_delay_ms
        out["arms"][each.name] = s | {"reranks_per_session": reranks / max(s["sessions"], 1),
                                      "delay_to_first_use_s": {k: (v / 1000.0 if k != "n" and v is not None else v)
                                                               for k, v in _percentiles(delays).items()}}
    out["arms"]["EdgeRec"]["rerank_ms"] = _percentiles(runtime.stats.rerank_ms)
    out["arms"]["EdgeRec"]["rules"] = _rules_report(runtime)
    c, e = out["arms"]["cloud order"], out["arms"]["EdgeRec"]
    out["gain"] = {"clicks": e["clicks"] / c["clicks"] - 1 if c["clicks"] else None,
                   "ctr": e["ctr"] / c["ctr"] - 1 if c["ctr"] else None,
                   "exposures": e["exposures"] / c["exposures"] - 1 if c["exposures"] else None}
    out["units"], out["intervals"] = paired(cloud, edge)
    for key, (other, policy) in extra.items():
        units, gains = paired(edge, other)
        out[key] = {"arm": {k: v for k, v in other.summary().items() if k in SOURCE_COLUMNS}, "units": units,
                    "gains": gains} | _rules_report(policy)
        if key == "against":
            out[key]["version"] = policy.model_version
    if recall is not None:
        out["recall"] = compare_sources([a for a, _, _ in arms if a.name not in (RULES_ARM, AGAINST_ARM)],
                                        recall.runtime.version)
    return out


def _rules_report(runtime: EdgeRuntime) -> dict:
    """The business rules a runtime applied and how often each fired."""
    return {"rules": runtime.rules.model_dump(), "describe": runtime.rules.describe(),
            "fired": runtime.stats.rules.as_dict()}


RECALL_ARMS = ("PWPRec recall", "PWPRec recall + EdgeRec")
RULES_ARM = "EdgeRec + rules"
AGAINST_ARM = "other bundle"
SOURCE_COLUMNS = ("sessions", "exposures", "clicks", "ctr", "item_page_views", "carts", "buys", "gmv")


def compare_sources(arms: list[Arm], recall_version: str) -> dict:
    """The four arms (cloud ranker and recall, each without and with EdgeRec): counts, and the paired gains of the
    recall over the cloud ranker and of re-ranking on each source's candidates."""
    by_name = {arm.name: arm for arm in arms}
    units = sorted(set().union(*(arm.by_unit for arm in arms)))
    pairs = {"PWPRec recall vs cloud ranker": ("cloud order", RECALL_ARMS[0]),
             "EdgeRec on the recall's candidates": (RECALL_ARMS[0], RECALL_ARMS[1]),
             "recall + EdgeRec vs cloud ranker + EdgeRec": ("EdgeRec", RECALL_ARMS[1])}
    return {"version": recall_version, "units": len(units),
            "arms": {arm.name: {k: v for k, v in arm.summary().items() if k in SOURCE_COLUMNS} for arm in arms},
            "gains": {label: paired_gains(unit_counts(by_name[a], units), unit_counts(by_name[b], units))
                      for label, (a, b) in pairs.items()}}


def lost_clicks(result: dict) -> str | None:
    """What says the replayed bundle loses clicks against the cloud's order with confidence (the whole 95% interval
    below zero), or None when it does not."""
    clicks = result["intervals"]["clicks"]
    if not clicks["high"] < 0:
        return None
    return (f"clicks {clicks['value']:+.2%} [{clicks['low']:+.2%}, {clicks['high']:+.2%}] against the cloud order "
            f"over {result['units']:,} user-days")


def to_markdown(result: dict) -> str:
    c, e = result["arms"]["cloud order"], result["arms"]["EdgeRec"]

    def pct(x):
        return "n/a" if x is None else f"{x:+.2%}"

    def delay(d):
        return "n/a" if d["p50"] is None else f"{d['p50']:.1f} s (p99 {d['p99']:.1f} s)"

    rows = [("sessions", f"{c['sessions']:,}", f"{e['sessions']:,}", ""),
            ("exposures (PV)", f"{c['exposures']:,}", f"{e['exposures']:,}", pct(result["gain"]["exposures"])),
            ("clicks", f"{c['clicks']:,}", f"{e['clicks']:,}", pct(result["gain"]["clicks"])),
            ("CTR", f"{c['ctr']:.4%}", f"{e['ctr']:.4%}", pct(result["gain"]["ctr"])),
            ("item page views", f"{c['item_page_views']:,}", f"{e['item_page_views']:,}", ""),
            ("carts, buys", f"{c.get('carts', 0):,}, {c.get('buys', 0):,}", f"{e.get('carts', 0):,}, "
             f"{e.get('buys', 0):,}", ""),
            ("GMV (price units)", f"{c.get('gmv', 0):,}", f"{e.get('gmv', 0):,}",
             pct(e["gmv"] / c["gmv"] - 1 if c.get("gmv") else None)),
            ("deletes", f"{c['deletes']:,}", f"{e['deletes']:,}", ""),
            ("re-rankings per session", f"{c['reranks_per_session']:.1f}", f"{e['reranks_per_session']:.1f}", ""),
            ("delay from a behaviour to its first use", delay(c["delay_to_first_use_s"]),
             delay(e["delay_to_first_use_s"]), ""),
            ("response time per re-rank", "(in the cloud)",
             f"p50 {e['rerank_ms']['p50']:.2f} ms, p99 {e['rerank_ms']['p99']:.2f} ms"
             if e["rerank_ms"]["p50"] is not None else "n/a", "")]
    half = len(c["ctr_by_position"]) // 2

    def mean_ctr(arm, lo, hi):
        exp = np.array(arm["exposures_by_position"][lo:hi])
        return float((np.array(arm["ctr_by_position"][lo:hi]) * exp).sum() / max(exp.sum(), 1))

    rows += [(f"CTR at positions {lo}-{hi - 1}", f"{mean_ctr(c, lo, hi):.4%}", f"{mean_ctr(e, lo, hi):.4%}",
              pct(mean_ctr(e, lo, hi) / mean_ctr(c, lo, hi) - 1 if mean_ctr(c, lo, hi) else None))
             for lo, hi in ((0, half), (half, 2 * half))]
    draws = result.get("seeds", 1)
    lines = [f"replay of {result['version']}: {result['users']:,} users on {result['days']} day(s) from "
             f"{result['day']} (seed {result['seed']}" + (f", {draws} draws of users" if draws > 1 else "")
             + (f", diversity lambda {result['diversity']}" if result["diversity"] is not None else "") + ")", "",
             "| | cloud order | EdgeRec | gain |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c_} | {d} |" for a, b, c_, d in rows]
    lines += ["", f"Gains with 95% intervals over {result['units']:,} user-days (the same in both arms, resampled "
                  "together), beside the paper's online A/B:", "",
              "| | gain | interval | the paper, online |", "|---|---|---|---|"]
    lines += [f"| {m} | {pct(g['value'])} | [{pct(g['low'])}, {pct(g['high'])}] | "
              f"{pct(PAPER_ONLINE[m]) if m in PAPER_ONLINE else ''} |" for m, g in result["intervals"].items()]
    lines += rules_markdown(result)
    if "against" in result:
        other = result["against"]
        lines += ["", f"Against another bundle: {other['version']} on the device, the same users (its business "
                      f"rules: {rules_in_effect(other)}):"]
        lines += versus_markdown(result, other, f"{AGAINST_ARM} ({other['version']})")
    if "recall" in result:
        sources = result["recall"]
        lines += ["", f"Candidate sources: the simulated cloud ranker and the recall {sources['version']}, each "
                      "with the cloud's order and with EdgeRec on the device:", "",
                  "| arm | sessions | exposures (PV) | clicks | CTR | item page views |", "|---|---|---|---|---|---|"]
        lines += [f"| {name} | {a['sessions']:,} | {a['exposures']:,} | {a['clicks']:,} | {a['ctr']:.4%} | "
                  f"{a['item_page_views']:,} |" for name, a in sources["arms"].items()]
        lines += ["", f"Paired gains in clicks over {sources['units']:,} user-days, 95% intervals:", "",
                  "| comparison | clicks | interval | CTR |", "|---|---|---|---|"]
        lines += [f"| {label} | {pct(g['clicks']['value'])} | [{pct(g['clicks']['low'])}, "
                  f"{pct(g['clicks']['high'])}] | {pct(g['CTR']['value'])} |"
                  for label, g in sources["gains"].items()]
    return "\n".join(lines)


def fired(counts: dict) -> str:
    """How often a runtime's business rules fired, per 1,000 re-ranks."""
    per = 1000.0 / max(counts["reranks"], 1)
    return (f"{counts['reranks_changed']:,} of {counts['reranks']:,} re-ranks changed; per 1,000 re-ranks "
            f"{counts['removed_out_of_stock'] * per:.0f} removed out of stock, "
            f"{counts['demoted_no_image'] * per:.0f} demoted without an image, "
            f"{counts['moved_by_cap'] * per:.0f} moved down by the category cap "
            f"({counts['cap_unmet']:,} places where nothing fitted)")


def rules_in_effect(report: dict) -> str:
    """A runtime's business rules (`_rules_report`) and, where it re-ranked, how often they fired."""
    return report["describe"] + (f"; {fired(report['fired'])}" if report["fired"]["reranks"] else "")


def rules_markdown(result: dict) -> list[str]:
    """How often the bundle's business rules fired and, with a rules arm, that arm against the bundle's own."""
    own = result["arms"]["EdgeRec"].get("rules")
    lines = [] if own is None else ["", f"Business rules of the bundle: {rules_in_effect(own)}."]
    if "rules" in result:
        lines += ["", f"The bundle under other rules ({result['rules']['describe']}): "
                      f"{fired(result['rules']['fired'])}."]
        lines += versus_markdown(result, result["rules"], RULES_ARM)
    return lines


def versus_markdown(result: dict, other: dict, name: str) -> list[str]:
    """An arm compared with the EdgeRec arm on the same users (`out["rules"]`, `out["against"]`): both arms' counts,
    then its paired gains over EdgeRec."""
    pct = "{:+.2%}".format
    lines = ["", "| arm | exposures (PV) | clicks | CTR | item page views | carts | buys | GMV |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {arm} | {a['exposures']:,} | {a['clicks']:,} | {a['ctr']:.4%} | {a['item_page_views']:,} | "
              f"{a['carts']:,} | {a['buys']:,} | {a.get('gmv', 0):,} |"
              for arm, a in ((f"EdgeRec ({result['version']})", result["arms"]["EdgeRec"]), (name, other["arm"]))]
    lines += ["", f"{name} against EdgeRec over {other['units']:,} user-days, 95% intervals:", "",
              "| | gain | interval |", "|---|---|---|"]
    lines += [f"| {m} | {pct(g['value'])} | [{pct(g['low'])}, {pct(g['high'])}] |" for m, g in other["gains"].items()]
    return lines


def plot(result: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for name, style in (("cloud order", "--"), ("EdgeRec", "-")):
        ctr = np.array(result["arms"][name]["ctr_by_position"]) * 100
        ax.plot(np.arange(len(ctr)), ctr, style, label=f"{name} (CTR {result['arms'][name]['ctr']:.3%})")
    ax.set_xlabel("display position in the page")
    ax.set_ylabel("CTR (%)")
    ax.set_title(f"CTR by position, {result['version']}, {result['users']:,} users")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write(result: dict, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "replay.json", "md": out / "replay.md", "png": out / "ctr_by_position.png"}
    paths["json"].write_text(json.dumps(result, indent=2) + "\n")
    paths["md"].write_text(to_markdown(result) + "\n")
    plot(result, paths["png"])
    return paths
