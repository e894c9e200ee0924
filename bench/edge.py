"""Edge latency and bundle size: the exported full model (default config) in onnxruntime, one thread.

    python bench/edge.py [--runs 5000] [--candidates 100] [--item-id-buckets 0]

Prints p50/p99 of one behaviour step (IE and IPV) and of one re-rank of 100 candidates with full-length
sequences (IE m=50, IPV n=30), as the servability gate times them (the median over 5 rounds of each round's
percentile, and the worst round's p99), and the bundle's bytes without embeddings. The model is freshly
initialised: the figures depend on the shapes, not on the weights. The spec has the default world's vocabularies.
Targets on the 2-core machine: step p99 <= 0.1 ms; re-rank p99 <= 1.5 ms; bundle <= 512 KB (the paper: 3 MB).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import torch

from edgerec.contracts.bundle import MANIFEST, network_bytes
from edgerec.edge.onnx_model import BundleModel
from edgerec.features import BUCKETIZED, make_spec
from training.config import TrainConfig
from training.export import export_bundle
from training.models import FULL_MODEL, build_model
from training.servability import TIMING_ROUNDS, measure_latency

# the default simulated world: 40 categories x 8 brands, 3 genders, 5 price levels, 6 age levels, 2 bc types
VOCAB = {"category": 40, "brand": 320, "gender": 3, "price_level": 5, "age_level": 6, "bc_type": 2}
BUCKETS = 10


def default_spec() -> dict:
    boundaries = {name: [float(b) for b in range(1, BUCKETS)] for name in BUCKETIZED}
    return make_spec(boundaries, VOCAB, {"candidates": 100, "ie": 50, "ipv": 30}, fit={"bench": True})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5000, help="timed calls per figure")
    parser.add_argument("--candidates", type=int, default=100, help="candidates per re-rank")
    parser.add_argument("--item-id-buckets", type=int, default=0, help="rows of the hashed item_id table")
    args = parser.parse_args()
    torch.manual_seed(0)
    spec = default_spec()
    model = build_model(FULL_MODEL, spec, TrainConfig(item_id_buckets=args.item_id_buckets, device="cpu"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "vbench"
        manifest = export_bundle(model, spec, root, version_id="vbench")
        size = network_bytes(manifest) + (root / MANIFEST).stat().st_size
        files = {name: f["bytes"] for name, f in manifest["files"].items()}
        bundle = BundleModel(root, threads=1)
        latency = measure_latency(bundle, args.candidates, args.runs)
    print(f"onnxruntime, 1 thread, {os.cpu_count()} cores; {args.runs:,} timed calls each in {TIMING_ROUNDS} rounds, "
          "the median round's percentiles")
    for name, figure in latency.items():
        target = 0.1 if name.startswith("step") else 1.5
        label = f"one {name[5:].upper()} step" if name.startswith("step") else f"re-rank of {args.candidates}"
        print(f"  {label:<18} p50 {figure['p50']:.4f} ms   p99 {figure['p99']:.4f} ms   (target p99 <= {target} ms; "
              f"worst round p99 {figure['worst_round_p99']:.4f})")
    print(f"  bundle without embeddings: {size:,} bytes ({size / 1024:.0f} KB; target <= 512 KB)")
    for name, n in files.items():
        print(f"    {name:<20} {n:>9,} bytes")


if __name__ == "__main__":
    main()
