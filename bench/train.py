"""Training throughput: candidate-samples/s of the full model and of DLCM (synthetic batches), and, with --home, a
real day's training of every model phase by phase.

    python bench/train.py [--batches 6] [--requests 512] [--device auto|cpu|cuda] [--threads 1]
    python bench/train.py --home STATE [STATE ...] [--workers 0] [--epochs N]

Batches are synthetic but shaped like the default world's train mart (K=100 candidates of which about 82 are
real, IE m=50 with about 42 real, IPV n=30 with about 6 real, ~25% labelled), so the figure does not depend on a
pipeline run. A candidate-sample is one real candidate; the first batch is a warm-up and is not timed.
Target on the 2-core machine: >= 20k candidate-samples/s for the full model (CPU).

With --home, the marts of the state directory's last `make run` day are trained as the pipeline does it
(training.runner.train_models: the models side by side, one process per core, one thread each), without MLflow:
per model the epochs, its candidate-samples/s and the seconds of each phase (reading the marts, fitting,
validation, scoring the test day), and the wall time of the whole day. With several state directories (the default
world's, then one of `EDGEREC_SIM_WORLD=revisit`: 100k items, lists of 20-30), it also prints each model's
candidate-samples/s on the later ones as a share of the first's (issue 25's target: >= 0.5 for every model), the same
share per labelled candidate (the candidates the loss reads: a short-list world labels most of its candidates, the
default world about a quarter), and for the HUBSM models the highest share their behaviour encoders alone would
allow: those cost the same per request in any world, so a world of short lists cannot train faster per candidate
than its candidates a request over their time, whatever the rest of the model costs. Last, the full model against
the design's floor: >= 20k candidate-samples/s on the first home, and within 2x of that (>= 10k) on the later ones.

Every measurement runs with the training workers' allocator settings (training.runner.ALLOCATOR_ENV).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgerec.features import GROUPS
from training.config import TrainConfig
from training.data import Batch, DayData, to_inputs
from training.models import FULL_MODEL, MODELS, build_model
from training.models.crban import CRBAN
from training.runner import ALLOCATOR_ENV, default_workers, train_models
from training.trainer import pick_device, seed_everything

K, M, N, VOCAB = 100, 50, 30, 12
FLOOR = 20_000  # the design's floor for the full model, candidate-samples/s on the default world


def synthetic_batch(requests: int, rng: np.random.Generator) -> Batch:
    def lengths(mean: float, width: int) -> np.ndarray:
        return np.clip(rng.normal(mean, width / 5, requests).round(), 0, width).astype(np.int64)

    def group(width: int, features: int, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        real = np.arange(width)[None, :] < n[:, None]
        return (np.where(real, rng.integers(1, 20_000, (requests, width)), 0),
                np.where(real[..., None], rng.integers(1, VOCAB, (requests, width, features)), 0))

    n_cand, n_ie, n_ipv = np.maximum(lengths(82, K), 1), lengths(42, M), lengths(6, N)
    mask = ((np.arange(K)[None, :] < n_cand[:, None]) & (rng.random((requests, K)) < 0.28)).astype(np.int64)
    label = (mask & (rng.random((requests, K)) < 0.03)).astype(np.int64)
    return Batch([str(i) for i in range(requests)], *group(K, len(GROUPS["candidate"]), n_cand), n_cand, label, mask,
                 np.where(mask > 0, np.arange(K)[None, :], 0), np.zeros_like(label), np.zeros_like(label),
                 *group(M, len(GROUPS["ie"]), n_ie), n_ie,
                 *group(N, len(GROUPS["ipv"]), n_ipv), n_ipv)


def measure(name: str, batches: list[Batch], cfg: TrainConfig, device: torch.device) -> tuple[float, float, float]:
    seed_everything(0)
    spec = {"features": {f: {"vocab_size": VOCAB} for names in GROUPS.values() for f in names}}
    model = build_model(name, spec, cfg).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    inputs = [(to_inputs(b).to(device), torch.from_numpy(b.label).to(device), torch.from_numpy(b.mask).to(device))
              for b in batches]
    samples = requests = labelled = 0
    for i, (x, label, mask) in enumerate(inputs):
        if i == 1:  # after the warm-up batch
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        loss = model.loss(model(x, scored=mask > 0), label, mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i >= 1:
            samples, requests = samples + batches[i].samples, requests + len(batches[i])
            labelled += int(batches[i].mask.sum())
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return samples / seconds, requests / seconds, labelled / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=6, help="timed batches (plus one warm-up)")
    parser.add_argument("--requests", type=int, default=512, help="requests per batch [the paper's 512]")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the synthetic measurement [1, as "
                                                               "each training worker]")
    parser.add_argument("--home", type=Path, nargs="+", default=None,
                        help="state directories: train each one's marts' day, phase by phase; with two or more, "
                             "compare their candidate-samples/s (e.g. the default world's and a large catalog's)")
    parser.add_argument("--workers", type=int, default=0, help="with --home: worker processes (0: one per core)")
    parser.add_argument("--epochs", type=int, default=None, help="with --home: most epochs [TrainConfig's]")
    args = parser.parse_args()
    if any(name not in os.environ for name in ALLOCATOR_ENV):
        # measured as the training workers run (a value the user set wins, as there): glibc reads its allocator
        # settings when the process starts
        os.execve(sys.executable, sys.orig_argv, ALLOCATOR_ENV | os.environ)
    if args.home:
        return compare_days(args.home, args.workers, args.epochs)
    torch.set_num_threads(args.threads)
    cfg = TrainConfig(batch_requests=args.requests, device=args.device)
    device = pick_device(cfg)
    rng = np.random.default_rng(0)
    batches = [synthetic_batch(args.requests, rng) for _ in range(args.batches + 1)]
    print(f"device {device}, torch threads {torch.get_num_threads()}, {args.batches} batches of {args.requests} "
          f"requests, {np.mean([b.samples / len(b) for b in batches]):.1f} real candidates per request")
    for name in (FULL_MODEL, "dlcm"):
        samples, requests, labelled = measure(name, batches, cfg, device)
        target = f"  (target >= {FLOOR:,}: " + ("met" if samples >= FLOOR else "MISSED") + ")" if name == FULL_MODEL \
            else ""
        print(f"{name:<20} {samples:>10,.0f} candidate-samples/s {requests:>8,.1f} requests/s "
              f"{labelled:>8,.0f} labelled candidates/s{target}")


@dataclass
class Day:
    """One home's measured day: each model's candidate-samples/s, the fit requests' mean real candidates and the share
    of them labelled, and the milliseconds a request of each behaviour type's HUBSM encoders (`encoder_ms`)."""

    rates: dict[str, float]
    candidates: float
    labelled: float
    encoders: dict[str, float]


def marts(home: Path) -> tuple[Path, str, dict]:
    """(the warehouse, the day, its feature spec) of `home`'s marts' test day."""
    from edgerec.config import load_settings
    from edgerec.features import load_spec
    from training.data import date_range

    settings = load_settings(os.environ | {"EDGEREC_HOME": str(home)})
    ds = date_range(settings.duckdb_path, "test")[0]
    return settings.duckdb_path, ds, load_spec(settings.layout(ds).feature_spec)


def encoder_ms(fit: Batch, spec: dict, cfg: TrainConfig, batches: int = 6) -> dict[str, float]:
    """Milliseconds a request of each behaviour type's HUBSM encoders alone (item rows, the item and action GRUs,
    forward and backward, one thread) over `batches` of the fit requests, after a warm-up batch. Per request it is
    the same work whatever the list length, so it bounds a world's candidate-samples/s from above: its mean real
    candidates a request / this time, with every other part of the model free."""
    torch.set_num_threads(1)
    seed_everything(0)
    model = build_model("crban_hubsm_ie_ipv", spec, cfg)
    sample = [to_inputs(b) for b in itertools.islice(fit.batches(cfg.batch_requests, seed=0), batches + 1)]
    costs = {}
    for behaviour in model.behaviours:
        requests, seconds = 0, 0.0
        for i, x in enumerate(sample):
            start = time.perf_counter()
            keys, fused = model.behaviour_encodings(x, behaviour)
            (keys.sum() + fused.sum()).backward()
            if i:
                requests, seconds = requests + len(x.candidates), seconds + time.perf_counter() - start
        costs[behaviour] = 1000 * seconds / max(requests, 1)
    return costs


def day(home: Path, workers: int, epochs: int | None) -> Day:
    """Train every model on the marts of `home` as the pipeline does (prints a line per model), then time the
    behaviour encoders alone (`encoder_ms`)."""
    database, ds, spec = marts(home)
    cfg = TrainConfig(device="cpu", **({"epochs": epochs} if epochs else {}))
    names = list(MODELS)
    workers = workers or default_workers(len(names))
    print(f"{home}, ds={ds}: {len(names)} models in {workers} worker process(es), one thread each; lists of "
          f"{spec['sequence_lengths']['candidates']} candidates at most, {spec['features']['brand']['vocab_size']:,} "
          "brand codes")
    start = time.perf_counter()
    print(f"{'model':<20} {'epochs':>6} {'samples/s':>10} {'load s':>7} {'fit s':>7} {'valid. s':>8} {'test s':>7}")
    rates = {}
    for trained in train_models(database, spec, cfg, names, torch.device("cpu"), workers):
        s = trained.seconds
        rates[trained.name] = trained.samples_per_s
        print(f"{trained.name:<20} {len(trained.history):>6} {trained.samples_per_s:>10,.0f} {s['load']:>7.1f} "
              f"{s['fit']:>7.1f} {s['validation']:>8.1f} {s['test']:>7.1f}", flush=True)
    print(f"wall time of the day's training: {time.perf_counter() - start:.1f} s")
    fit = DayData.load(database, spec, cfg.validation_share).fit
    result = Day(rates, fit.samples / len(fit), float(fit.mask.sum() / fit.samples), encoder_ms(fit, spec, cfg))
    print(f"fit requests: {result.candidates:.1f} real candidates, {result.labelled:.0%} of them "
          "labelled; the HUBSM encoders alone, forward and backward, one thread: "
          + ", ".join(f"{b.upper()} {ms:.3f} ms" for b, ms in result.encoders.items()) + " a request\n")
    return result


def ceiling_share(later: Day, behaviours: tuple[str, ...], first_rate: float) -> float:
    """The highest share of `first_rate` (candidate-samples/s) a model reading `behaviours` could reach on `later`'s
    day if nothing but its behaviour encoders cost anything: candidates a request / encoder seconds a request."""
    return later.candidates / (sum(later.encoders[b] for b in behaviours) / 1000) / first_rate


def compare_days(homes: list[Path], workers: int, epochs: int | None) -> None:
    """Each home's day, then, with two or more homes, their comparison (`comparison`)."""
    days = [day(home, workers, epochs) for home in homes]
    if len(days) > 1:
        print("\n".join(comparison(days)))


def comparison(days: list[Day]) -> list[str]:
    """Per model the candidate-samples/s of every later day as a share of the first's (issue 25's target for a large
    catalog with short lists: a share >= 0.5), the share per labelled candidate, and for the HUBSM models the ceiling
    their behaviour encoders alone put on each later day's share (`ceiling_share`: under 0.5, the target cannot be
    met by that model without cheaper encoders per request). Last, the full model against the design's floor (FLOOR
    on the first day, FLOOR / 2 on the later ones)."""
    first = days[0]
    lines = [f"{'model':<20} " + " ".join(f"{f'home {i + 1}':>10}" for i in range(len(days))) + "  share of home 1"
             + "  (per labelled candidate)  [ceiling set by the encoders]"]
    for name, rate in first.rates.items():
        shares = [d.rates[name] / rate for d in days[1:]]
        per_labelled = [share * d.labelled / first.labelled for share, d in zip(shares, days[1:], strict=True)]
        behaviours = MODELS[name].behaviours if issubclass(MODELS[name], CRBAN) else ()
        ceilings = [ceiling_share(d, behaviours, rate) for d in days[1:]] if behaviours else []
        lines.append(f"{name:<20} " + " ".join(f"{d.rates[name]:>10,.0f}" for d in days) + "  "
                     + ", ".join(f"{x:.3f} ({'met' if x >= 0.5 else 'MISSED'})" for x in shares)
                     + f"  ({', '.join(f'{x:.2f}' for x in per_labelled)})"
                     + (f"  [{', '.join(f'{c:.2f}' for c in ceilings)}]" if ceilings else ""))
    floors = [FLOOR] + [FLOOR / 2] * (len(days) - 1)
    lines.append(f"{FULL_MODEL} against the design's floor: " + ", ".join(
        f"home {i + 1} {d.rates[FULL_MODEL]:,.0f} >= {floor:,.0f} {'met' if d.rates[FULL_MODEL] >= floor else 'MISSED'}"
        for i, (d, floor) in enumerate(zip(days, floors, strict=True))))
    return lines


if __name__ == "__main__":
    main()
