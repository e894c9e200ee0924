"""How close the exploration bucket's estimate of position bias comes to the simulator's true examination.

    python bench/propensity.py [--users 20000] [--share 1.0] [--window 5] [--world default] [--rounds 20] [--json]

Simulates one day of the world with `--share` of the devices in the exploration bucket (edgerec.edge.exploration),
collects the explored pages' exposures as they are emitted, and estimates the examination of each band of 5 display
positions relative to the first band, with a 95% interval from a Poisson bootstrap over users (`--rounds` draws).
The truth is the simulator's: exp(-behaviour.position_decay x position), averaged over the band. Beside it, what
the raw click-through rate by position says (the same exposures, no windows): it mixes the position with the cloud's
ranking, which puts the better items first.

A share of 1.0 over N users stands for a 1% bucket over 100 N users: the estimate depends on the explored exposures
only.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from edgerec.edge.exploration import ExploredExposures, examination_by_band
from edgerec.sim.config import WORLDS, load_sim_config
from edgerec.sim.engine import Simulator

BAND = 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--share", type=float, default=1.0, help="devices in the exploration bucket")
    parser.add_argument("--window", type=int, default=5, help="display positions an exploration window spans")
    parser.add_argument("--world", choices=list(WORLDS), default="default")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=20, help="bootstrap draws over users")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    cfg = load_sim_config(preset=args.world, users=args.users, seed=args.seed,
                          client={"exploration_share": args.share, "exploration_window": args.window})
    started = time.perf_counter()
    collected = ExploredExposures()
    Simulator(cfg).simulate_day(cfg.start_date, collected)
    windows, positions, clicks, users = collected.arrays()
    simulated_s = time.perf_counter() - started
    started = time.perf_counter()
    by_band = examination_by_band(windows, positions, clicks, users, cfg.client.page_size, BAND, args.rounds)
    estimated_s = (time.perf_counter() - started) / (args.rounds + 1)
    exam = np.exp(-cfg.behaviour.position_decay * np.arange(len(by_band) * BAND)).reshape(-1, BAND).mean(axis=1)
    truth = exam / exam[0]
    rows = [{"positions": b["positions"], "truth": round(float(t), 4), "estimate": round(b["estimate"], 4),
             "low": round(b["low"], 4), "high": round(b["high"], 4), "error": round(b["estimate"] / t - 1, 4),
             "naive": round(b["raw_ctr_ratio"], 4)} for b, t in zip(by_band, truth, strict=True)]
    result = {"world": args.world, "users": args.users, "share": args.share, "window": args.window,
              "seed": args.seed, "explored_exposures": int(len(positions)), "clicks": int(clicks.sum()),
              "simulate_s": round(simulated_s, 1), "estimate_s": round(estimated_s, 1), "bands": rows,
              "max_abs_error": round(max(abs(r["error"]) for r in rows), 4),
              "within_10pct": all(abs(r["error"]) <= 0.10 for r in rows)}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.world} world, {args.users:,} users x {args.share:.0%} exploring, windows of {args.window}: "
          f"{result['explored_exposures']:,} explored exposures, {result['clicks']:,} clicks "
          f"(simulated in {simulated_s:.0f} s, estimated in {estimated_s:.1f} s)\n")
    print("| positions | true examination | estimate (95% interval) | error | raw CTR by position |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['positions']} | {r['truth']:.3f} | {r['estimate']:.3f} [{r['low']:.3f}, {r['high']:.3f}] | "
              f"{r['error']:+.1%} | {r['naive']:.3f} |")
    print(f"\nlargest error {result['max_abs_error']:.1%}; within 10% at every band: {result['within_10pct']}")


if __name__ == "__main__":
    main()
