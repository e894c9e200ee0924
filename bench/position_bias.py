"""Position-bias corrections against the uncorrected model: trains one model on a pipeline run's marts under each
correction of training.position_bias, over several seeds, and prints each one's GAUC on all test requests and on the
exploration bucket's (where the order shown was shuffled), each paired against the uncorrected model of the same seed.

    python bench/position_bias.py --home STATE [--model crban_hubsm_ie_ipv] [--modes none,feature,ipw]
                                  [--seeds 0,1,2] [--workers 2] [--out docs/figures/position_bias.md]

STATE is a state directory whose last day ran with an exploration bucket (the simulator's
`client.exploration_share` through EDGEREC_SIM_CONFIG, or logs of devices that explore): its test mart then holds
explored requests. The examination curve ipw divides by is estimated from the explored exposures of the raw logs of
the train days (edgerec.edge.exploration.examination_curve, as `edgerec logs positions --json` writes it) and
printed after the table.
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
from training.config import TrainConfig
from training.data import date_range
from training.evaluation import paired_gain
from training.position_bias import MODES, read_propensities
from training.runner import Trained, init_worker, train_one

BAND = 5


def train_days_curve(settings, first: str, last: str, positions: int) -> dict:
    """The examination curve of the raw logs of the days first..last."""
    days = days_back(last, (np.datetime64(last) - np.datetime64(first)).astype(int))
    events = []
    for ds in days:
        part = settings.layout(ds).raw_events
        if part.exists():
            events += read_events(part)[0]
    curve = examination_curve(events, positions, BAND, rounds=0)
    if curve is None:
        raise SystemExit(f"no explored exposure in the raw logs of {first}..{last} under {settings.raw}: this "
                         "state ran without an exploration bucket (client.exploration_share)")
    return curve


def gain(trained: Trained, base: Trained | None, explored: bool) -> str:
    """The paired GAUC gain of `trained` over `base` on all test requests or the explored ones ('' without base)."""
    if base is None or base is trained:
        return ""
    a, b = (t.explored if explored else t.report for t in (trained, base))
    g = paired_gain(a.per_request, b.per_request)
    return f"{g.value:+.2%} [{g.low:+.2%}, {g.high:+.2%}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", default=None, help="state directory [default: EDGEREC_HOME]")
    parser.add_argument("--model", default="crban_hubsm_ie_ipv")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated of: {', '.join(MODES)}")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)),
                        help="training processes, one torch thread each")
    parser.add_argument("--out", type=Path, default=None, help="also write the tables as markdown here")
    args = parser.parse_args()
    settings = load_settings(os.environ | ({"EDGEREC_HOME": args.home} if args.home else {}))
    db = settings.duckdb_path
    ds = date_range(db, "test")[0]
    spec = load_spec(settings.layout(ds).feature_spec)
    modes, seeds = args.modes.split(","), [int(s) for s in args.seeds.split(",")]
    positions = int(spec["sequence_lengths"]["candidates"])

    start = time.perf_counter()
    curve = train_days_curve(settings, *date_range(db, "train"), positions)
    curve_file = Path(tempfile.mkdtemp()) / "examination.json"
    curve_file.write_text(json.dumps(curve))
    estimated = read_propensities(curve_file, positions)
    print(f"ds={ds}: examination curve from {curve['explored_exposures']:,} explored exposures and {curve['clicks']:,} "
          f"clicks of the train days ({time.perf_counter() - start:.0f} s)", flush=True)

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.workers, mp_context=context, initializer=init_worker, initargs=(30,)) as pool:
        jobs = {(mode, seed): pool.submit(train_one, db, spec, TrainConfig(
            seed=seed, position_bias=mode, propensities=curve_file if mode == "ipw" else None), args.model)
            for seed in seeds for mode in modes}
        results = {key: job.result() for key, job in jobs.items()}
    some = next(iter(results.values()))
    if some.explored is None:
        raise SystemExit(f"the test mart of {ds} holds no explored request: nothing to judge the corrections on")
    lines = [f"Model {args.model}, ds={ds}; {some.report.requests:,} test requests with both labels, "
             f"{some.explored.requests:,} of them the exploration bucket's.", "",
             "| correction | seed | epochs | test GAUC | vs none | explored GAUC | vs none |",
             "|---|---|---|---|---|---|---|"]
    for mode in modes:
        for seed in seeds:
            t, base = results[mode, seed], results.get(("none", seed))
            lines.append(f"| {mode} | {seed} | {len(t.history)} | {t.report.gauc.value:.5f} | {gain(t, base, False)} | "
                         f"{t.explored.gauc.value:.5f} | {gain(t, base, True)} |")
    lines += ["", f"Initial order: test GAUC {some.report.gauc_initial:.5f}, explored "
                  f"{some.explored.gauc_initial:.5f}.", "",
              "| positions | estimated examination (explored exposures) |", "|---|---|"]
    lines += [f"| {b['positions']} | {b['estimate']:.3f} |" for b in curve["bands"]]
    print("\n".join(lines), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
    print(json.dumps({"ds": ds, "estimated_first_band": float(estimated[BAND]), "runs": len(results)}))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
