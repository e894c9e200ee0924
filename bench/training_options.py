"""Training options against today's model: trains one model on a pipeline run's marts with today's training config and
with each option (a few TrainConfig fields), over several seeds, and prints each run's GAUC and GMV@10 on all test
requests and its GAUC on the exploration bucket's (where the order shown was shuffled), each paired against today's
model of the same seed, and the heads' AUC of a multi-task one.

    python bench/training_options.py --home STATE --option position_bias=feature --option position_bias=ipw
                                     --option heads=click_cart_buy [--model crban_hubsm_ie_ipv] [--seeds 0,1,2]
                                     [--workers 2] [--out FILE]

An option is FIELD=VALUE[;FIELD=VALUE...] (JSON values where they parse). With `position_bias=ipw` and no
`propensities`, the examination curve is estimated from the explored exposures of the raw logs of the train days
(edgerec.edge.exploration.examination_curve, as `edgerec logs positions --json` writes it) and printed after the
tables; the explored GAUC needs a state whose test day had an exploration bucket (the simulator's
`client.exploration_share` through EDGEREC_SIM_CONFIG).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from edgerec.config import days_back, load_settings
from edgerec.edge.exploration import examination_curve
from edgerec.features import load_spec
from edgerec.sim.stats import read_events
from training.compare import GMV_K
from training.config import TrainConfig
from training.data import date_range
from training.evaluation import Interval, paired_gain, paired_mean_gain
from training.runner import Trained, init_worker, train_one

BAND = 5
TODAY = "today"


def parse_option(text: str) -> dict:
    fields = {}
    for item in text.split(";"):
        key, _, value = item.partition("=")
        try:
            fields[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            fields[key.strip()] = value.strip()
    return fields


def train_days_curve(settings, first: str, last: str, positions: int) -> dict:
    """The examination curve of the raw logs of the days first..last."""
    events = []
    for ds in days_back(last, int((np.datetime64(last) - np.datetime64(first)).astype(int))):
        if settings.layout(ds).raw_events.exists():
            events += read_events(settings.layout(ds).raw_events)[0]
    curve = examination_curve(events, positions, BAND, rounds=0)
    if curve is None:
        raise SystemExit(f"no explored exposure in the raw logs of {first}..{last} under {settings.raw}: this "
                         "state ran without an exploration bucket (client.exploration_share)")
    return curve


def versus(gain: Interval | None) -> str:
    return "" if gain is None else f"{gain.value:+.2%} [{gain.low:+.2%}, {gain.high:+.2%}]"


def row(name: str, seed: int, t: Trained, base: Trained | None) -> str:
    """One run's line; gains paired against today's model of the same seed (none on today's own line)."""
    base = None if base is t else base
    gauc = None if base is None else paired_gain(t.report.per_request, base.report.per_request)
    gmv = None if base is None else paired_mean_gain(t.report.gmv_per_request[GMV_K],
                                                     base.report.gmv_per_request[GMV_K])
    explored, explored_gain = "", None
    if t.explored is not None:
        explored = f"{t.explored.gauc.value:.5f}"
        explored_gain = None if base is None else paired_gain(t.explored.per_request, base.explored.per_request)
    heads = ", ".join(f"{h} {auc:.4f}" for h, auc in t.report.head_auc.items())
    return (f"| {name} | {seed} | {len(t.history)} | {t.report.gauc.value:.5f} | {versus(gauc)} | "
            f"{t.report.gmv[GMV_K]:.4f} | {versus(gmv)} | {explored} | {versus(explored_gain)} | {heads} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", default=None, help="state directory [default: EDGEREC_HOME]")
    parser.add_argument("--model", default="crban_hubsm_ie_ipv")
    parser.add_argument("--option", action="append", default=[], metavar="FIELD=VALUE[;FIELD=VALUE]",
                        help="TrainConfig fields of one option (repeat for more options)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)),
                        help="training processes, one torch thread each")
    parser.add_argument("--out", type=Path, default=None, help="also write the tables as markdown here")
    args = parser.parse_args()
    settings = load_settings(os.environ | ({"EDGEREC_HOME": args.home} if args.home else {}))
    db = settings.duckdb_path
    ds = date_range(db, "test")[0]
    spec = load_spec(settings.layout(ds).feature_spec)
    seeds = [int(s) for s in args.seeds.split(",")]
    options = {TODAY: {}} | {text: parse_option(text) for text in args.option}
    for fields in options.values():
        TrainConfig(**fields)  # a bad field fails here, naming it, before any training

    curve = None
    if any(f.get("position_bias") == "ipw" and "propensities" not in f for f in options.values()):
        start = time.perf_counter()
        curve = train_days_curve(settings, *date_range(db, "train"), int(spec["sequence_lengths"]["candidates"]))
        path = Path(tempfile.mkdtemp()) / "examination.json"
        path.write_text(json.dumps(curve))
        options = {name: f | ({"propensities": str(path)} if f.get("position_bias") == "ipw" and
                              "propensities" not in f else {}) for name, f in options.items()}
        print(f"ds={ds}: examination curve from {curve['explored_exposures']:,} explored exposures and "
              f"{curve['clicks']:,} clicks of the train days ({time.perf_counter() - start:.0f} s)", flush=True)

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.workers, mp_context=context, initializer=init_worker, initargs=(30,)) as pool:
        jobs = {(name, seed): pool.submit(train_one, db, spec, TrainConfig(seed=seed, **fields), args.model)
                for seed in seeds for name, fields in options.items()}
        results = {key: job.result() for key, job in jobs.items()}
    some = results[TODAY, seeds[0]]
    bucket = (f", {some.explored.requests:,} of them the exploration bucket's" if some.explored is not None
              else "; no exploration bucket on the test day")
    lines = [f"Model {args.model}, ds={ds}; {some.report.requests:,} test requests with both labels{bucket}. "
             f"Gains paired against today's training config of the same seed; GMV@{GMV_K} in price units.", "",
             f"| option | seed | epochs | test GAUC | vs today | GMV@{GMV_K} | vs today | explored GAUC | vs today | "
             "heads AUC |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name in options:
        lines += [row(name, seed, results[name, seed], results[TODAY, seed]) for seed in seeds]
    lines += ["", f"Initial order: test GAUC {some.report.gauc_initial:.5f}, GMV@{GMV_K} "
                  f"{some.report.gmv_initial[GMV_K]:.4f}"
              + ("" if some.explored is None else f", explored GAUC {some.explored.gauc_initial:.5f}") + "."]
    if curve is not None:
        lines += ["", "| positions | estimated examination (explored exposures of the train days) |", "|---|---|"]
        lines += [f"| {b['positions']} | {b['estimate']:.3f} |" for b in curve["bands"]]
    print("\n".join(lines), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
    print(json.dumps({"ds": ds, "runs": len(results)}))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
