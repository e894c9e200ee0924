"""The recall models on a run's marts: every model on both tasks, seed by seed, with the fit time and samples/s,
and the comparison of the first seed with the paper's claims as checks.

    python bench/recall.py --home STATE [--seeds 0,1,2] [--epochs N] [--models all]

STATE is the state directory of a `make run` (its warehouse.duckdb holds the last day's recall marts). Nothing is
registered. The paper's claims (PWPRec, eBay): PWPRec(LS) above GRU4Rec-Enhanced (+13% Recall@1) and SASRec,
PWPRec(MI) above ComiRec-SA (+22% Recall@1); a claim holds here when its paired bootstrap interval is above zero.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from edgerec.config import load_settings
from training.recall.config import RecallConfig
from training.recall.data import read_day
from training.recall.models import RECALL_MODELS
from training.recall.pipeline import models_to_train, recall_config, train_and_compare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="state directory of a make run")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--epochs", type=int, default=None, help="passes over the train clicks")
    parser.add_argument("--models", default="all", help="comma-separated recall models or all")
    args = parser.parse_args()
    torch.set_num_threads(1)
    settings = load_settings({"EDGEREC_HOME": str(args.home)})
    settings = settings.replace(recall={"models": args.models, **({"epochs": args.epochs} if args.epochs else {})})
    cfg: RecallConfig = recall_config(settings)
    width = settings.marts.recall_history
    catalog, train, test = read_day(settings.duckdb_path, width)
    print(f"{args.home}: {len(catalog):,} items, {len(train):,} train clicks, {len(test):,} test clicks with a "
          f"history; {cfg.epochs} epochs, one thread")
    first = None
    for seed in (int(s) for s in args.seeds.split(",")):
        start = time.perf_counter()
        comparison, trained = train_and_compare(catalog, train, test, cfg.model_copy(update={"seed": seed}),
                                                models_to_train(settings), width)
        print(f"\nseed {seed} ({time.perf_counter() - start:.1f} s)")
        print(f"{'model':<18}{'task':<9}{'fit s':>7}{'samples/s':>11}{'R@1':>8}{'R@10':>8}{'R@20':>8}{'R@100':>8}")
        for t in trained:
            fit_s = sum(e.seconds for e in t.epochs)
            rate = sum(e.samples_per_s for e in t.epochs) / len(t.epochs)
            print(f"{RECALL_MODELS[t.key].name:<18}{t.task:<9}{fit_s:>7.1f}{rate:>11,.0f}" + "".join(
                f"{t.report.mean(f'recall_at_{k}'):>8.4f}" for k in (1, 10, 20, 100)))
        print("checks: " + ", ".join(f"{name}: {'yes' if ok else 'no'}" for name, ok in comparison.checks.items()))
        first = first or comparison
    print("\n" + first.to_markdown())


if __name__ == "__main__":
    main()
