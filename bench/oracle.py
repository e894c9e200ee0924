"""How much there is to gain on a simulated world: oracle rows, from the simulator's own knowledge of each
candidate at each re-rank, scored on the pipeline's test mart beside the initial order and the hand rules.

    python bench/oracle.py [--home STATE] [--json]

STATE is the state directory of an `edgerec run` on the simulated world, run with the EDGEREC_SIM_* settings now
in the environment (e.g. EDGEREC_SIM_WORLD=revisit). The bench reads the marts of the day its warehouse was last
built for and simulates that day again (the simulator is deterministic, so the events are the ones the pipeline
read), recording at every re-rank each unexposed candidate's
- appeal: its click logit, less the base logit and before the position's examination (long-term utility,
  category fatigue, the decayed short-term boosts of its category and brand and of an earlier view of the item), at
  the trigger; no log carries all of it, so it is a reference ceiling, not a model;
- the appeal with the examination of the position the candidate gets in the logged order (the labels are clicks
  given an exposure there);
- the cloud's estimate plus the in-session part of the appeal: the user's taste as the cloud saw it, and the
  session's effects exactly, about the most a model of the logs could know.

Prints the GAUC (95% bootstrap interval) of the initial order, the three hand rules and the oracle rows, and each
oracle row's paired gain over the best hand rule: the room a model has above that rule on this world.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from deploy.fleet import ChannelState, open_fleet
from edgerec.config import load_settings
from edgerec.features import load_spec
from edgerec.raw import day_sim_config
from edgerec.sim.config import SimConfig
from edgerec.sim.engine import Simulator, Trigger
from edgerec.sim.world import build_catalog
from edgerec.sim.writer import read_summary
from training.config import TrainConfig
from training.data import Batch, date_range, load_split
from training.evaluation import RankingReport, evaluate, paired_gain
from training.pipeline import evaluate_rules
from training.rules import RULES

ORACLES = {
    "appeal": "oracle: the simulator's appeal",
    # the same, with the examination of the display position each candidate would get in the logged order: the
    # labels are clicks given an exposure there, so a model reading the list order can use that too
    "shown": "oracle: the appeal and the logged position's examination",
    # the user's long-term taste as the cloud estimated it, and the in-session effects exactly: about the most the
    # logs can tell a re-ranker (the cloud's estimate already holds the category boosts older than its delay, so
    # those count twice here)
    "session": "oracle: the cloud's estimate + the in-session effects",
}


def triggers_of_day(settings, ds: str) -> tuple[dict[str, list[Trigger]], SimConfig]:
    """Per request_id, what the simulator knew at each of its re-ranks, in time order; and the day's config. The
    devices run what they ran then: the release channels' state the simulate task recorded with the day."""
    cfg = day_sim_config(settings, ds)
    recorded = read_summary(settings.raw, ds).get("channels")
    fleet = open_fleet(settings, build_catalog(cfg.world, cfg.seed).to_arrow(), ChannelState.from_dict(recorded))
    seen: dict[str, list[Trigger]] = {}
    Simulator(cfg, oracle=lambda t: seen.setdefault(t.request_id, []).append(t),
              policy_of=fleet.policy_of).simulate_day(cfg.dates[0], lambda _event: None)
    return seen, cfg


def oracle_scores(test: Batch, seen: dict[str, list[Trigger]], cfg: SimConfig
                  ) -> tuple[np.ndarray, dict[str, list[np.ndarray]]]:
    """The test requests that match a recorded re-rank (the same request, its n-th re-rank, the same candidates: in
    the same order, or, where the device's model re-ranked them, as a set) as row indices, and per oracle row the
    scores of their candidates in the mart's order. A request that does not match (the mart cut a re-ranked list, or
    the simulation is not the pipeline's) is left out."""
    rows, scores = [], {title: [] for title in ORACLES.values()}
    decay, base = cfg.behaviour.position_decay, cfg.behaviour.base_click_logit
    for i, rerank_id in enumerate(test.rerank_id):
        request_id, _, n = rerank_id.rpartition("-")  # rerank_id: request_id-<n>, n the re-rank in time order
        triggers = seen.get(request_id, [])
        k = int(test.candidates[i])
        if not n.isdigit() or not 0 < int(n) <= len(triggers):
            continue
        trigger, listed = triggers[int(n) - 1], test.candidate_item[i, :k].tolist()
        if trigger.items[:k] == listed:  # shown in the cloud's order (the mart may have cut a long list)
            shown_at = np.arange(k)
        elif sorted(trigger.items) == sorted(listed):  # a device's model re-ranked them: the mart keeps the cloud's
            where = {item: j for j, item in enumerate(trigger.items)}
            shown_at = np.array([where[item] for item in listed])
        else:
            continue
        rows.append(i)
        appeal, utility, cloud = (np.asarray(v, dtype=np.float64)[shown_at]
                                  for v in (trigger.appeal, trigger.utility, trigger.cloud_score))
        scores[ORACLES["appeal"]].append(appeal)
        scores[ORACLES["session"]].append(cloud + appeal - utility)
        # log P(click) at the position each candidate was shown at from here: examination x click at the appeal
        position = trigger.exposed_before + shown_at
        scores[ORACLES["shown"]].append(-decay * position - np.logaddexp(0.0, -(base + appeal)))
    return np.asarray(rows, dtype=np.int64), scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--home", type=Path, help="the state directory of an `edgerec run` [$EDGEREC_HOME]")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    settings = load_settings(dict(os.environ, **({"EDGEREC_HOME": str(args.home)} if args.home else {})))
    if settings.source != "simulator":
        raise SystemExit("the oracle rows need the simulated world: EDGEREC_SOURCE is external here, whose logs no "
                         "simulator knows the click probabilities of")
    ds = date_range(settings.duckdb_path, "test")[0]
    spec = load_spec(settings.layout(ds).feature_spec)
    test = load_split(settings.duckdb_path, "test", spec)

    rows, oracles = oracle_scores(test, *triggers_of_day(settings, ds))
    if not len(rows):
        raise SystemExit(f"no test request of ds={ds} matched a re-rank of the simulation: is the environment's "
                         f"EDGEREC_SIM_* the one {settings.home} was run with?")
    matched, unmatched = test.take(rows), len(test) - len(rows)
    ks = matched.candidates.tolist()  # each request's real candidates, as `trainer.score` gives a model's
    labels, masks = [matched.label[i, :k] for i, k in enumerate(ks)], [matched.mask[i, :k] for i, k in enumerate(ks)]
    initial = [-np.arange(k, dtype=np.float64) for k in ks]
    reports: dict[str, RankingReport] = {"initial order": evaluate(initial, labels, masks)}
    rules = evaluate_rules(settings, spec, matched, TrainConfig())
    reports.update({RULES[name]: report for name, report in rules.items()})
    reports.update({name: evaluate(scores, labels, masks) for name, scores in oracles.items()})
    best = max(RULES.values(), key=lambda name: reports[name].gauc.value)
    gains = {name: paired_gain(reports[name].per_request, reports[best].per_request) for name in oracles}
    figures = {"ds": ds, "world": settings.sim.world, "test_requests": len(test), "matched": len(rows),
               "unmatched": unmatched, "gauc": {name: r.gauc.value for name, r in reports.items()},
               "best_rule": best, "gain_over_best_rule": {
                   name: {"value": g.value, "low": g.low, "high": g.high} for name, g in gains.items()}}
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"ds={ds}, world {settings.sim.world}: {len(rows):,} of {len(test):,} test requests "
          f"matched a simulated re-rank ({unmatched} not)")
    print("| row | GAUC [95% interval] |\n|---|---|")
    for name, report in reports.items():
        print(f"| {name} | {report.gauc.value:.5f} [{report.gauc.low:.5f}, {report.gauc.high:.5f}] |")
    for name, g in gains.items():
        print(f"{name} over the best hand rule ({best}): {g.value:+.2%} [{g.low:+.2%}, {g.high:+.2%}]")


if __name__ == "__main__":
    main()
