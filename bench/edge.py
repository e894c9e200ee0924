"""Edge cost, latency and bundle size: the exported full model (default config), counted and timed.

    python bench/edge.py [--runs 2000] [--candidates 100] [--item-id-buckets 0] [--hidden 32] [--ops]

Prints what the servability gate's blocking budgets read, counted from the ONNX graphs (edgerec.edge.cost): MACs,
transcendentals, elementwise ops, peak activation bytes of one behaviour step (IE, IPV) and of one re-rank of 100
candidates with full-length sequences (IE m=50, IPV n=30), and the latency they give on each device profile; with
--ops, the counts per op type. Then, as information, the host's p50/p99 in onnxruntime (one thread; the median
over 5 rounds of each round's percentile) and its ratio to the calibration graph timed interleaved with it, and the
bundle's bytes without embeddings. The model is freshly initialised: every figure depends on the shapes, not the
weights. The spec has the default world's vocabularies.
Targets: the default budgets of training.servability.Budgets (step <= 150k MACs and <= 3 ms on the low-end phone;
re-rank <= 4.5M MACs and <= 20 ms there); bundle <= 512 KB (the paper: 3 MB).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import torch

from edgerec.contracts.bundle import MANIFEST, network_bytes
from edgerec.edge.cost import bundle_costs, estimate_ms, load_device_profiles, op_table
from edgerec.edge.onnx_model import BundleModel
from edgerec.features import BUCKETIZED, make_spec
from training.config import TrainConfig
from training.export import export_bundle
from training.models import FULL_MODEL, build_model
from training.servability import TIMING_ROUNDS, Budgets, measure_latency

# the default simulated world: 40 categories x 8 brands, 3 genders, 5 price levels, 6 age levels, 2 bc types
VOCAB = {"category": 40, "brand": 320, "gender": 3, "price_level": 5, "age_level": 6, "bc_type": 2}
BUCKETS = 10


def default_spec() -> dict:
    boundaries = {name: [float(b) for b in range(1, BUCKETS)] for name in BUCKETIZED}
    return make_spec(boundaries, VOCAB, {"candidates": 100, "ie": 50, "ipv": 30}, fit={"bench": True})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000, help="timed calls per host figure")
    parser.add_argument("--candidates", type=int, default=100, help="candidates per re-rank")
    parser.add_argument("--item-id-buckets", type=int, default=0, help="rows of the hashed item_id table")
    parser.add_argument("--hidden", type=int, default=32, help="hidden units of every GRU")
    parser.add_argument("--ops", action="store_true", help="print the counts per op type")
    args = parser.parse_args()
    torch.manual_seed(0)
    spec = default_spec()
    config = TrainConfig(item_id_buckets=args.item_id_buckets, hidden=args.hidden, device="cpu")
    model = build_model(FULL_MODEL, spec, config)
    budgets = Budgets()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "vbench"
        manifest = export_bundle(model, spec, root, version_id="vbench")
        size = network_bytes(manifest) + (root / MANIFEST).stat().st_size
        files = {name: f["bytes"] for name, f in manifest["files"].items()}
        costs = bundle_costs(root, manifest, spec["sequence_lengths"], args.candidates)
        latency = measure_latency(BundleModel(root, threads=1), args.candidates, args.runs)
    print(f"counted from the graphs (re-rank of {args.candidates}, sequences IE "
          f"{spec['sequence_lengths']['ie']}, IPV {spec['sequence_lengths']['ipv']}):")
    for name, cost in costs.items():
        t = cost.total
        budget = budgets.rerank_macs if name == "reranker.onnx" else budgets.step_macs
        print(f"  {name:<18} MACs {t.macs:>10,} (budget {budget:,})  transcendentals {t.transcendentals:>8,}  "
              f"elementwise {t.elementwise:>8,}  peak activations {cost.peak_activation_bytes:>10,} B  "
              f"nodes {t.nodes}")
    if args.ops:
        print(op_table(costs))
    print("estimated ms per call:")
    for device in load_device_profiles().values():
        print(f"  {device.name:<10} " + "  ".join(f"{name} {estimate_ms(cost, device):.3f}"
                                                  for name, cost in costs.items()))
    print(f"host timing, information only (onnxruntime, 1 thread, {os.cpu_count()} cores; {args.runs:,} calls each "
          f"in {TIMING_ROUNDS} rounds, interleaved with the calibration graph):")
    for name, figure in latency.items():
        label = f"one {name[5:].upper()} step" if name.startswith("step") else f"re-rank of {args.candidates}"
        print(f"  {label:<18} p50 {figure['p50']:.4f} ms   p99 {figure['p99']:.4f} ms   "
              f"x calibration {figure['calibration_ratio']:.3f}   (worst round p99 {figure['worst_round_p99']:.4f})")
    print(f"  calibration graph p50 {latency['rerank']['calibration_p50']:.4f} ms")
    print(f"bundle without embeddings: {size:,} bytes ({size / 1024:.0f} KB; target <= 512 KB)")
    for name, n in files.items():
        print(f"    {name:<20} {n:>9,} bytes")

if __name__ == "__main__":
    main()
