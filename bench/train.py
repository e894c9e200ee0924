"""Training throughput: candidate-samples/s and requests/s of the full model and of DLCM, default config.

    python bench/train.py [--batches 6] [--requests 512] [--device auto|cpu|cuda]

Batches are synthetic but shaped like the default world's train mart (K=100 candidates of which about 82 are
real, IE m=50 with about 42 real, IPV n=30 with about 6 real, ~25% labelled), so the figure does not depend on a
pipeline run. A candidate-sample is one real candidate; the first batch is a warm-up and is not timed.
Target on the 2-core machine: >= 20k candidate-samples/s for the full model (CPU).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from edgerec.features import GROUPS
from training.config import TrainConfig
from training.data import Batch, to_inputs
from training.models import build_model
from training.trainer import pick_device, seed_everything

K, M, N, VOCAB = 100, 50, 30, 12


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
                 *group(M, len(GROUPS["ie"]), n_ie), n_ie, *group(N, len(GROUPS["ipv"]), n_ipv), n_ipv)


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
    args = parser.parse_args()
    cfg = TrainConfig(batch_requests=args.requests, device=args.device)
    device = pick_device(cfg)
    rng = np.random.default_rng(0)
    batches = [synthetic_batch(args.requests, rng) for _ in range(args.batches + 1)]
    print(f"device {device}, torch threads {torch.get_num_threads()}, {args.batches} batches of {args.requests} "
          f"requests, {np.mean([b.samples / len(b) for b in batches]):.1f} real candidates per request")
    for name in ("crban_hubsm_ie_ipv", "dlcm"):
        samples, requests, labelled = measure(name, batches, cfg, device)
        target = "  (target >= 20,000: " + ("met" if samples >= 20_000 else "MISSED") + ")" if name.startswith(
            "crban") else ""
        print(f"{name:<20} {samples:>10,.0f} candidate-samples/s {requests:>8,.1f} requests/s "
              f"{labelled:>8,.0f} labelled candidates/s{target}")


if __name__ == "__main__":
    main()
