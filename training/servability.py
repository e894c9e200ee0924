"""The servability gate, in the manner of TFX's InfraValidator: may this bundle be deployed?

Every blocking check depends on the bundle alone, so the same bundle gets the same verdict on any machine, quiet
or loaded:
- integrity: every file present with its manifest sha256 and bytes, the feature spec's sha, the shard shapes;
- onnx.checker on every network;
- parity: on test requests, onnxruntime (behaviours encoded one step per event, then the re-ranker) against the
  PyTorch model reading the same fp16 item rows: max |score difference| and identical top-k order;
- step encodings: the per-event encodings equal the full-sequence GRUs' outputs;
- size: the bundle without its embedding shards;
- cost, counted from the ONNX graphs (edgerec.edge.cost): multiply-accumulates of one behaviour step and of one
  re-rank of `rerank_candidates` with full sequences, peak activation bytes, and the latency those counts give on
  the budget's device profile (the low-end phone by default).
The host's own timing (onnxruntime single-threaded, p50/p99, and as a ratio to a fixed calibration graph timed
interleaved with it) is reported as information; it blocks only with `timing="block"`, for a dedicated reference
host.
"""

from __future__ import annotations

import copy
import gc
import json
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from edgerec.alerts import Alert
from edgerec.contracts.bundle import MANIFEST, RERANKER, STEP_MODELS, BundleError, network_bytes
from edgerec.edge.cost import DEVICE_PROFILES, GraphCost, UnknownOp, bundle_costs, estimate_ms, load_device_profiles
from edgerec.edge.onnx_model import BundleModel, Encoded
from edgerec.errors import ConfigError
from edgerec.features import match_codes
from edgerec.gates import GateVerdict
from training.data import Batch, to_inputs
from training.models.base import N_ITEM
from training.models.crban import CRBAN

TIMING_ROUNDS = 5


class Budgets(BaseModel):
    """What a servable bundle must meet (docs/servability.md); EDGEREC_SERVABILITY_CONFIG overrides them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests: int = Field(1000, ge=1, le=1_000_000, description="test requests the parity check replays")
    max_score_diff: float = Field(1e-4, gt=0.0, description="largest |onnxruntime - torch| score allowed")
    top_k: int = Field(10, ge=1, le=100, description="the top-k order must be identical (up to ties within "
                                                         "max_score_diff)")
    max_encoding_diff: float = Field(1e-4, gt=0.0, description="largest |step - full-sequence| encoding allowed")
    bundle_bytes: int = Field(512 * 1024, ge=1, description="bundle bytes without embedding shards")
    rerank_candidates: int = Field(100, ge=1, le=1_000, description="candidates of the counted (and timed) re-rank")
    # Counted budgets, set with room above the default model (3 GRU layers of 32 units: a step 76.8k MACs, a
    # re-rank of 100 with full sequences 3.2M): twice the hidden size does not fit.
    step_macs: int = Field(150_000, ge=1, description="multiply-accumulates of one behaviour step")
    rerank_macs: int = Field(4_500_000, ge=1, description="multiply-accumulates of one re-rank of "
                                                          "`rerank_candidates` with full sequences")
    activation_bytes: int = Field(4 * 1024 * 1024, ge=1, description="peak bytes of live activations in any "
                                                                     "network")
    device: str = Field("low-end", min_length=1, description="the device profile the latency budgets apply to")
    device_profiles: Path | None = Field(None, description="TOML file of device profiles [default: "
                                                           "edgerec/edge/device_profiles.toml]")
    step_ms: float = Field(3.0, gt=0.0, description="estimated ms of one behaviour step on `device` (1% of the "
                                                    "paper's 300 ms perception delay)")
    rerank_ms: float = Field(20.0, gt=0.0, description="estimated ms of one re-rank on `device` (a fifth of the "
                                                       "paper's 100 ms response time)")
    timing: Literal["info", "block"] = Field("info", description="info: the host's timings are reported only; "
                                             "block: they must also meet step_p99_ms and rerank_p99_ms (a "
                                             "dedicated reference host only)")
    step_p99_ms: float = Field(0.1, gt=0.0, description="host p99 of one behaviour step, one thread (timing=block)")
    rerank_p99_ms: float = Field(1.5, gt=0.0, description="host p99 of one re-rank, one thread (timing=block)")
    timing_runs: int = Field(2000, ge=10, le=1_000_000, description="timed calls per host figure, in "
                             f"{TIMING_ROUNDS} rounds whose median percentile is the figure")


@dataclass
class Check:
    name: str
    passed: bool
    figure: float | int | str
    budget: float | int | str
    detail: str = ""


@dataclass
class ServabilityReport:
    bundle: str
    version: str
    checks: list[Check] = field(default_factory=list)
    costs: dict[str, dict] = field(default_factory=dict)  # per network: GraphCost.to_dict()
    estimated_ms: dict[str, dict[str, float]] = field(default_factory=dict)  # per device profile, per network
    device: str = ""  # the profile the latency budgets applied to
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)  # host timing: information
    timing: str = "info"

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[str]:
        return [f"{c.name}: {c.detail or f'{_fmt(c.figure)} vs budget {_fmt(c.budget)}'}" for c in self.checks
                if not c.passed]

    def verdict(self) -> dict:
        """What decides: the checks with their figures and budgets. The same bundle gives the same verdict on any
        machine (the host timings are not in it unless they block)."""
        return {"passed": self.passed, "checks": [asdict(c) for c in self.checks]}

    def gate_verdict(self, ds: str) -> GateVerdict:
        """Refused: one warning alert naming every failed check."""
        failures = "; ".join(self.failures)
        alerts = () if self.passed else (Alert(
            level="warn", check="export.servability_gate", observed=f"bundle {self.version}: {failures}",
            threshold="every check of training.servability", ds=ds),)
        summary = f"bundle {self.version} is {'servable' if self.passed else f'not servable: {failures}'}"
        return GateVerdict("servability_gate", ds, self.passed, summary, alerts)

    def to_dict(self) -> dict:
        return {"bundle": self.bundle, "version": self.version, **self.verdict(), "device": self.device,
                "costs": self.costs, "estimated_ms": self.estimated_ms, "host_timing": self.timing,
                "latency_ms": self.latency_ms}

    def to_markdown(self) -> str:
        lines = [f"servability of {self.version}: {'PASSED' if self.passed else 'FAILED'}", "",
                 "| check | result | figure | budget |", "|---|---|---|---|"]
        lines += [f"| {c.name} | {'ok' if c.passed else 'FAIL'} | {_fmt(c.figure)} | {_fmt(c.budget)} |"
                  for c in self.checks]
        if self.costs:
            lines += ["", "Counted from the graphs (one call; the re-rank with full sequences):", "",
                      "| network | MACs | transcendentals | elementwise | bytes written | peak activations | "
                      "weights read |", "|---|---|---|---|---|---|---|"]
            lines += [f"| {name} | {c['macs']:,} | {c['transcendentals']:,} | {c['elementwise']:,} | "
                      f"{c['bytes_written']:,} | {c['peak_activation_bytes']:,} | {c['weights_read_bytes']:,} |"
                      for name, c in self.costs.items()]
        if self.estimated_ms:
            names = list(next(iter(self.estimated_ms.values())))
            lines += ["", f"Estimated ms per call on each device profile (budgets apply to {self.device}):", "",
                      "| device | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
            lines += [f"| {device} | " + " | ".join(f"{ms[n]:.3f}" for n in names) + " |"
                      for device, ms in self.estimated_ms.items()]
        if self.latency_ms:
            lines += ["", f"Host timing ({'blocking' if self.timing == 'block' else 'information, not a gate'}; "
                      "onnxruntime, one thread; x calibration = the call's p50 over a fixed calibration graph's, "
                      "timed interleaved):", "", "| call | p50 ms | p99 ms | x calibration |", "|---|---|---|---|"]
            lines += [f"| {name} | {t['p50']:.4f} | {t['p99']:.4f} | {t.get('calibration_ratio', float('nan')):.3f} |"
                      for name, t in self.latency_ms.items()]
        return "\n".join(lines)


def _fmt(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v)


def reference_model(model: CRBAN, onnx_model: BundleModel) -> CRBAN:
    """The PyTorch model reading the bundle's (fp16) item rows: parity is about the export, not the rounding."""
    reference = copy.deepcopy(model).cpu().eval()
    with torch.no_grad():
        for name, rows in onnx_model.tables.items():
            reference.items.tables[name].weight.copy_(torch.from_numpy(rows))
    return reference


def calibration_call(threads: int = 1):
    """A fixed workload timed interleaved with the bundle's calls, in the same runtime and thread count: a
    [64, 128] x [128, 128] MatMul and a tanh (about 1M MACs). The ratio of a call's time to it moves far less with
    the host's speed and load than the milliseconds do."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.random.default_rng(0).standard_normal((128, 128)).astype(np.float32) / 16,
                                      "w")
    value = helper.make_tensor_value_info
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Tanh", ["y"], ["z"])],
                              "calibration", [value("x", TensorProto.FLOAT, [64, 128])],
                              [value("z", TensorProto.FLOAT, [64, 128])], [weights])
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = threads
    session = ort.InferenceSession(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
                                   .SerializeToString(), options, providers=["CPUExecutionProvider"])
    feed = {"x": np.ones((64, 128), np.float32)}
    return lambda: session.run(None, feed)


def time_calls(call, runs: int, calibration=None, warmup: int = 200, rounds: int = TIMING_ROUNDS
               ) -> dict[str, float]:
    """p50/p99 of `call` in ms: the median over `rounds` consecutive rounds (runs // rounds calls each) of each
    round's percentile. A burst of other work on a shared host during one round then does not decide the figure,
    while a model or machine slow throughout still shows; `worst_round_p99` keeps a burst visible. With a
    `calibration` call, each call of `call` is followed by one of it, and `calibration_ratio` is the median round's
    ratio of the two p50s. Python's garbage collector is paused while timing: its pauses belong to this process's
    heap, not to the phone's model.
    """
    for _ in range(warmup):
        call()
        if calibration:
            calibration()
    per_round = max(1, runs // rounds)
    times, reference = np.empty(per_round * rounds), np.empty(per_round * rounds)
    clock = time.perf_counter
    gc.disable()
    try:
        for i in range(len(times)):
            t0 = clock()
            call()
            t1 = clock()
            if calibration:
                calibration()
            reference[i] = clock() - t1
            times[i] = t1 - t0
    finally:
        gc.enable()
    ms = times.reshape(rounds, per_round) * 1000.0
    p50, p99 = np.percentile(ms, 50, axis=1), np.percentile(ms, 99, axis=1)
    out = {"p50": float(np.median(p50)), "p99": float(np.median(p99)), "worst_round_p99": float(p99.max()),
           "runs": int(ms.size), "rounds": rounds}
    if calibration:
        reference_p50 = np.percentile(reference.reshape(rounds, per_round) * 1000.0, 50, axis=1)
        out |= {"calibration_p50": float(np.median(reference_p50)),
                "calibration_ratio": float(np.median(p50 / reference_p50))}
    return out


def measure_latency(bundle: BundleModel, candidates: int, runs: int, seed: int = 0) -> dict[str, dict[str, float]]:
    """p50/p99 of one step per behaviour type and of one re-rank of `candidates` with full-length sequences, each
    interleaved with the calibration call."""
    rng = np.random.default_rng(seed)
    spec, item_dim = bundle.spec, bundle.rows(np.ones((1, N_ITEM), np.int64), np.ones(1, np.int64)).shape[1]
    calibration = calibration_call()

    def codes(group: str, n: int) -> np.ndarray:
        names = spec["groups"][group]
        return np.stack([rng.integers(1, spec["features"][f]["vocab_size"], n) for f in names], axis=1)

    out = {}
    for b in bundle.behaviours:
        rows, c, state = rng.standard_normal(item_dim).astype(np.float32), codes(b, 1)[0], bundle.zero_state()
        out[f"step_{b}"] = time_calls(lambda b=b, rows=rows, c=c, state=state: bundle.step(b, rows, c, state), runs,
                                      calibration)
    lengths = spec["sequence_lengths"]
    encoded = {b: Encoded(rng.standard_normal((lengths[b], bundle.hidden)).astype(np.float32),
                          rng.standard_normal((lengths[b], 2 * bundle.hidden)).astype(np.float32),
                          match_codes(rng.integers(1, 1_000, lengths[b]), codes(b, lengths[b])))
               for b in bundle.behaviours}
    ages = {b: codes(b, lengths[b])[:, bundle.age_index[b]] for b in bundle.behaviours}
    cand_rows = rng.standard_normal((candidates, item_dim)).astype(np.float32)
    cand_codes, cand_items = codes("candidate", candidates), rng.integers(1, 1_000, candidates)
    out["rerank"] = time_calls(lambda: bundle.rerank(cand_rows, cand_codes, cand_items, encoded, ages), runs,
                               calibration)
    return out


def same_top_k(scores: np.ndarray, expected: np.ndarray, k: int, tolerance: float) -> bool:
    """Whether `scores` rank the same top k as `expected`, candidates whose expected scores are within `tolerance`
    counting as tied: at every rank, the item `scores` puts there has the expected score of that rank. (Near-ties
    swap under float rounding; a phone showing either order shows the model's ranking.)"""
    top = min(k, len(scores))
    mine = np.argsort(-scores, kind="stable")[:top]
    ideal = np.sort(expected)[::-1][:top]
    return bool(np.all(np.abs(expected[mine] - ideal) <= tolerance))


def measure_latency_alone(root: Path, candidates: int, runs: int) -> dict[str, dict[str, float]]:
    """`measure_latency` in a fresh interpreter. The calling process may run other Python threads (an Airflow
    task's supervisor and log forwarding do), and their turns at the GIL would land in the timed tail."""
    out = subprocess.run([sys.executable, "-m", "training.servability", str(root), str(candidates), str(runs)],
                         capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"latency measurement of {root} failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout)


def _parity(bundle: BundleModel, reference: CRBAN, batches: Iterable[Batch], limit: int, top_k: int,
            tolerance: float):
    """(requests, max score diff, top-k mismatches, max encoding diff) over up to `limit` requests."""
    seen, score_diff, mismatches, encoding_diff = 0, 0.0, 0, 0.0
    for batch in batches:
        x = to_inputs(batch)
        with torch.no_grad():
            torch_scores = reference(x).numpy()
            torch_enc = {b: [t.numpy() for t in reference.encoders[b].encodings(
                reference.items(getattr(x, b)[..., :N_ITEM], getattr(x, f"{b}_item")), getattr(x, b))]
                for b in bundle.behaviours}
        for r in range(len(batch)):
            if seen >= limit:
                return seen, score_diff, mismatches, encoding_diff
            k = int(batch.candidates[r])
            encoded, ages = {}, {}
            for b in bundle.behaviours:
                n = int(getattr(x, f"{b}_length")[r])
                codes, items = getattr(x, b)[r, :n].numpy(), getattr(x, f"{b}_item")[r, :n].numpy()
                encoded[b] = e = bundle.encode(b, bundle.rows(codes, items), codes, items)
                ages[b] = codes[:, bundle.age_index[b]]
                if n:
                    encoding_diff = max(encoding_diff, float(np.abs(e.item - torch_enc[b][0][r, :n]).max()),
                                        float(np.abs(e.fused - torch_enc[b][1][r, :n]).max()))
            codes, items = x.candidate[r, :k].numpy(), x.candidate_item[r, :k].numpy()
            scores = bundle.rerank(bundle.rows(codes, items), codes, items, encoded, ages)
            expected = torch_scores[r, :k]
            score_diff = max(score_diff, float(np.abs(scores - expected).max()))
            mismatches += int(not same_top_k(scores, expected, top_k, tolerance))
            seen += 1
    return seen, score_diff, mismatches, encoding_diff


def device_profile(budgets: Budgets):
    """(every profile, the one the budgets apply to); a missing profile or a bad file is a ConfigError."""
    path = budgets.device_profiles or DEVICE_PROFILES
    profiles = load_device_profiles(path)
    if budgets.device not in profiles:
        raise ConfigError(f"servability device {budgets.device!r} is not in {path} (profiles: "
                          f"{', '.join(profiles)})")
    return profiles, profiles[budgets.device]


def _largest_ops(cost: GraphCost, n: int = 3) -> str:
    ops = sorted(cost.by_op.items(), key=lambda kv: -kv[1].macs)[:n]
    return ", ".join(f"{op} {c.macs:,}" for op, c in ops if c.macs)


def cost_checks(report: ServabilityReport, root: Path, bundle: BundleModel, budgets: Budgets) -> list[Check]:
    """The counted budgets: MACs and estimated ms on the budgets' device per step and per re-rank, and peak
    activation bytes; fills the report's costs and per-device estimates. Depends on the bundle alone."""
    profiles, device = device_profile(budgets)
    try:
        costs = bundle_costs(root, bundle.manifest, bundle.spec["sequence_lengths"], budgets.rerank_candidates)
    except UnknownOp as e:
        return [Check("every op counted", False, "unknown op", "ops of edgerec.edge.cost", str(e))]
    report.device = device.name
    report.costs = {name: cost.to_dict() for name, cost in costs.items()}
    report.estimated_ms = {p.name: {name: round(estimate_ms(cost, p), 4) for name, cost in costs.items()}
                           for p in profiles.values()}
    checks = []
    for name, cost in costs.items():
        label, macs, ms = ((f"one {name.removeprefix('behavior_').removesuffix('.onnx').upper()} step",
                            budgets.step_macs, budgets.step_ms) if name != RERANKER else
                           (f"one re-rank of {budgets.rerank_candidates}", budgets.rerank_macs, budgets.rerank_ms))
        checks += [
            Check(f"MACs of {label}", cost.total.macs <= macs, cost.total.macs, macs, "" if cost.total.macs <= macs
                  else f"{cost.total.macs:,} MACs > {macs:,}; largest: {_largest_ops(cost)}"),
            Check(f"est. ms of {label} on {device.name}", report.estimated_ms[device.name][name] <= ms,
                  report.estimated_ms[device.name][name], ms),
        ]
    peak = max(costs.items(), key=lambda kv: kv[1].peak_activation_bytes)
    checks.append(Check("peak activation bytes", peak[1].peak_activation_bytes <= budgets.activation_bytes,
                        peak[1].peak_activation_bytes, budgets.activation_bytes, f"in {peak[0]}"))
    return checks


def check_servability(root: Path, model: CRBAN, batches: Iterable[Batch], budgets: Budgets | None = None
                      ) -> ServabilityReport:
    """Run every check on the bundle at `root` exported from `model`; never raises for a bad bundle."""
    import onnx

    budgets = budgets or Budgets()
    report = ServabilityReport(str(root), Path(root).name)
    try:
        bundle = BundleModel(root)
    except BundleError as e:
        report.checks.append(Check("integrity", False, "refused", "every file verified", str(e)))
        return report
    report.version = bundle.version
    report.checks.append(Check("integrity", True, f"{len(bundle.manifest['files'])} files, "
                               f"{sum(len(t['shards']) for t in bundle.manifest['embeddings'].values())} shards",
                               "every file verified"))
    for name in (*(STEP_MODELS[b] for b in bundle.behaviours), RERANKER):
        try:
            onnx.checker.check_model(str(Path(root) / name), full_check=True)
            report.checks.append(Check(f"onnx.checker {name}", True, "valid", "valid"))
        except Exception as e:  # noqa: BLE001 - any checker failure refuses the bundle, with its message
            report.checks.append(Check(f"onnx.checker {name}", False, "invalid", "valid", str(e).splitlines()[0]))
    seen, score_diff, mismatches, encoding_diff = _parity(bundle, reference_model(model, bundle), batches,
                                                          budgets.requests, budgets.top_k, budgets.max_score_diff)
    report.checks += [
        Check("test requests replayed", seen > 0, seen, f"<= {budgets.requests}",
              "" if seen else "no test request to compare on"),
        Check("max abs score difference", score_diff <= budgets.max_score_diff, score_diff, budgets.max_score_diff),
        Check(f"requests with another top-{budgets.top_k} order", mismatches == 0, mismatches, 0,
              "" if mismatches == 0 else f"beyond ties within {budgets.max_score_diff:g}"),
        Check("max abs step vs full-sequence encoding", encoding_diff <= budgets.max_encoding_diff, encoding_diff,
              budgets.max_encoding_diff),
    ]
    size = network_bytes(bundle.manifest) + (Path(root) / MANIFEST).stat().st_size
    report.checks.append(Check("bundle bytes without embeddings", size <= budgets.bundle_bytes, size,
                               budgets.bundle_bytes))
    report.checks += cost_checks(report, root, bundle, budgets)
    report.timing = budgets.timing
    report.latency_ms = measure_latency_alone(root, budgets.rerank_candidates, budgets.timing_runs)
    if budgets.timing == "block":
        for b in bundle.behaviours:
            p99 = report.latency_ms[f"step_{b}"]["p99"]
            report.checks.append(Check(f"host p99 ms of one {b.upper()} step", p99 <= budgets.step_p99_ms, p99,
                                       budgets.step_p99_ms))
        p99 = report.latency_ms["rerank"]["p99"]
        report.checks.append(Check(f"host p99 ms of one re-rank of {budgets.rerank_candidates}",
                                   p99 <= budgets.rerank_p99_ms, p99, budgets.rerank_p99_ms))
    return report


if __name__ == "__main__":  # measure_latency_alone's child: python -m training.servability BUNDLE CANDIDATES RUNS
    bundle_root, candidates, runs = sys.argv[1:4]
    print(json.dumps(measure_latency(BundleModel(Path(bundle_root), threads=1), int(candidates), int(runs))))
