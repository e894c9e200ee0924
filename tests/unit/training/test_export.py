"""The bundle: export of a tiny model, its manifest and shards, the checks of the servability gate, and the
refusal of damaged bundles, each naming the file and the mismatch."""

import json
import shutil

import numpy as np
import onnx
import pytest
import torch

from edgerec.contracts.bundle import FEATURE_SPEC, BundleError, file_entry, item_rows, load_table, verify_bundle
from edgerec.contracts.digest import canonical_sha
from edgerec.edge.onnx_model import BundleModel, Encoded
from edgerec.features import GROUPS
from tests.unit.training.worlds import SPEC, random_batch
from training.config import TrainConfig
from training.data import to_inputs
from training.export import RerankHead, export_bundle
from training.models import build_model
from training.servability import Budgets, check_servability

pytestmark = pytest.mark.unit
TINY = TrainConfig(hidden=8, attention=8, mlp=8, gru_layers=2, context_layers=1, item_embedding_dim=4,
                   code_embedding_dim=2, item_id_buckets=5, device="cpu")
TINY_SPEC = {**SPEC, "groups": {g: list(names) for g, names in GROUPS.items()}}
TINY_SPEC["sha256"] = canonical_sha(TINY_SPEC)
FAST = Budgets(timing_runs=10)  # host timing is information only: a few calls show it is reported


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("crban_hubsm_ie_ipv", TINY_SPEC, TINY).eval()
    root = tmp_path_factory.mktemp("bundles") / "v20261102-abcdef12"
    manifest = export_bundle(model, TINY_SPEC, root, version_id=root.name, mlflow_version="3", run_id="r" * 32,
                             rows_per_shard=3)
    return model, root, manifest


def test_a_table_larger_than_the_shard_limit_gets_larger_shards_not_more(tmp_path):
    """40 rows in shards of 2 would be 20 shards; the limit of 16 makes them shards of 3 (14 of them), so the
    manifest the phone downloads does not grow with the catalog."""
    from training.export import MAX_SHARDS_PER_TABLE, write_shards

    rows = np.arange(80, dtype=np.float16).reshape(40, 2)
    entry = write_shards(tmp_path, "brand", rows, rows_per_shard=2)
    assert MAX_SHARDS_PER_TABLE == 16
    assert [s["rows"] for s in entry["shards"]] == [[lo, min(lo + 3, 40)] for lo in range(0, 40, 3)]
    assert write_shards(tmp_path / "small", "brand", rows[:6], rows_per_shard=2)["shards"][-1]["rows"] == [4, 6]


def damaged(exported, tmp_path):
    """A copy of the bundle to break."""
    copy = tmp_path / exported[1].name
    shutil.copytree(exported[1], copy)
    return copy


def test_manifest_lists_every_file_table_and_version(exported):
    model, root, manifest = exported
    assert manifest["version"] == root.name and manifest["mlflow"]["version"] == "3"
    assert manifest["feature_spec_sha256"] == TINY_SPEC["sha256"]
    assert set(manifest["files"]) == {"behavior_ie.onnx", "behavior_ipv.onnx", "reranker.onnx", FEATURE_SPEC}
    assert manifest["item_rows"]["tables"] == ["category", "brand", "gender", "price_level", "age_level", "bc_type",
                                               "item_id"]
    category = manifest["embeddings"]["category"]  # 7 rows of 4 in shards of 3 rows
    assert (category["rows"], category["dim"], category["dtype"]) == (7, 4, "float16")
    assert [s["rows"] for s in category["shards"]] == [[0, 3], [3, 6], [6, 7]]
    assert [s["path"] for s in category["shards"]][0] == "embeddings/category/shard-00000.npy"
    np.testing.assert_array_equal(load_table(root, manifest, "category"),
                                  model.items.tables["category"].weight.detach().numpy().astype(np.float16))
    assert verify_bundle(root) == manifest
    assert not (root.parent / f".{root.name}.partial").exists()
    with pytest.raises(FileExistsError, match="bundles are immutable"):
        export_bundle(model, TINY_SPEC, root, version_id=root.name)
    with pytest.raises(TypeError, match="only the CRBAN"):
        export_bundle(build_model("dlcm", TINY_SPEC, TINY), TINY_SPEC, root.parent / "other", version_id="x")


def test_served_item_rows_equal_the_model_tables(exported):
    model, root, manifest = exported
    tables = {name: load_table(root, manifest, name) for name in manifest["embeddings"]}
    codes = np.array([[1, 2, 3, 4, 5, 6], [6, 5, 99, 1, 0, 2]])  # 99: beyond the table, read as its last row
    ids = np.array([17, 0])  # 0: padding
    reference = model.items(torch.from_numpy(codes), torch.from_numpy(ids)).detach().numpy()
    np.testing.assert_allclose(item_rows(manifest, tables, codes, ids), reference, atol=2e-3)  # fp16 rounding


def test_onnx_steps_and_reranker_match_pytorch(exported):
    model, root, _ = exported
    report = check_servability(root, model, [random_batch(12, seed=s) for s in range(3)], FAST)
    checks = {c.name: c for c in report.checks}
    assert report.passed, report.failures
    assert checks["test requests replayed"].figure == 36
    assert checks["max abs score difference"].figure <= 1e-5
    assert checks["max abs step vs full-sequence encoding"].figure <= 1e-5
    assert checks["requests with another top-10 order"].figure == 0
    assert set(report.latency_ms) == {"step_ie", "step_ipv", "rerank"}
    assert "| max abs score difference | ok |" in report.to_markdown()


def test_step_encodings_are_those_of_the_full_sequence(exported):
    model, root, _ = exported
    bundle, batch = BundleModel(root), random_batch(4, seed=9, ie=5)
    x = to_inputs(batch)
    r = int(np.argmax(batch.ie_length))
    n = int(batch.ie_length[r])
    codes, items = x.ie[r, :n].numpy(), x.ie_item[r, :n].numpy()
    encoded = bundle.encode("ie", bundle.rows(codes, items), codes, items)
    rows = torch.from_numpy(bundle.rows(codes, items)).unsqueeze(0)
    item_enc, fused = model.encoders["ie"].encodings(rows, x.ie[r:r + 1, :n])
    np.testing.assert_allclose(encoded.item, item_enc[0].detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(encoded.fused, fused[0].detach().numpy(), atol=1e-5)
    assert bundle.encode("ipv", np.zeros((0, rows.shape[-1])), np.zeros((0, len(GROUPS["ipv"]))),
                         np.zeros(0)).item.shape == (0, 8)


def test_the_reranker_reads_which_events_are_the_candidate_or_share_its_category_and_brand(exported):
    """The same stored encodings, with the events' match codes those of the first candidate (its item id, category
    and brand), of its category and brand only, or unknown: the phone's scores move, and equal the PyTorch head's
    every time."""
    model, root, _ = exported
    bundle, rng, k, events = BundleModel(root), np.random.default_rng(3), 4, 3
    codes = rng.integers(1, 7, (k, len(GROUPS["candidate"])))
    items = np.arange(1, k + 1)
    rows = bundle.rows(codes, items)
    stored = {b: (rng.standard_normal((events, 8)).astype(np.float32),
                  rng.standard_normal((events, 16)).astype(np.float32)) for b in bundle.behaviours}
    ages = {b: np.array([1, 2, 3]) for b in bundle.behaviours}
    scores = {}
    cases = {"same item": [items[0], *codes[0, :2]], "same category and brand": [99, *codes[0, :2]],
             "unknown": [0, 0, 0]}
    for case, match_codes in cases.items():
        encoded = {b: Encoded(*stored[b], np.tile(match_codes, (events, 1)).astype(np.int64))
                   for b in bundle.behaviours}
        scores[case] = bundle.rerank(rows, codes, items, encoded, ages)
        inputs = [torch.from_numpy(rows), torch.from_numpy(codes), torch.from_numpy(items)]
        for b in bundle.behaviours:
            inputs += [*map(torch.from_numpy, (*stored[b], encoded[b].match_codes, ages[b])), torch.tensor([events])]
        with torch.no_grad():
            np.testing.assert_allclose(scores[case], RerankHead(model)(*inputs).numpy(), atol=1e-5)
    first = [scores[case][0] for case in cases]  # ten times the parity tolerance apart
    assert abs(first[0] - first[1]) > 1e-4 and abs(first[1] - first[2]) > 1e-4


def test_an_event_costs_each_candidate_only_its_energy_and_two_weighted_sums(exported):
    """One more IE event in a re-rank of 100 (tiny model: H 8, attention units 8, MLP 8, M 3 match features): per
    candidate v.tanh(...) (8 MACs), the weighted sums of the events' value projections (8) and of their match
    indicators (3), the index of the pair's match row (3); once per request, the event's key projection (8 x 8)
    and value projection (2H x MLP = 16 x 8): 100 x 22 + 64 + 128 = 2,392 MACs. Pooling the 2H-wide encodings per
    candidate and projecting the match indicators per pair, as the training graph does, would be
    100 x (8 + 16 + 16 + 3) + 64 = 4,364."""
    from edgerec.edge.cost import bundle_costs

    _, root, manifest = exported
    macs = [bundle_costs(root, manifest, {"ie": n, "ipv": 3}, 100)["reranker.onnx"].total.macs for n in (4, 5)]
    assert macs[1] - macs[0] == 2_392


def test_each_step_layer_runs_both_grus_as_one_block_diagonal_gru(exported):
    _, root, _ = exported
    graph = onnx.load(root / "behavior_ie.onnx").graph
    grus = [n for n in graph.node if n.op_type == "GRU"]
    assert [{a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}["hidden_size"] for n in grus] == [
        16, 16]  # 2 layers of 2 x 8 units
    weights = {w.name: onnx.numpy_helper.to_array(w) for w in graph.initializer}
    assert "W0" not in weights and weights["R1_action"].shape == (24, 8)  # only the GRUs' own weights are stored
    assert [(i.name, i.shape) for i in BundleModel(root).steps["ie"].session.get_inputs()] == [
        ("item_rows", [1, 28]), ("codes", [1, len(GROUPS["ie"])]), ("state_0", [1, 1, 16]), ("state_1", [1, 1, 16])]
    assert len(graph.node) - sum(n.op_type in ("Pad", "Concat", "Reshape", "Transpose") and n.output[0].startswith(
        ("W", "R")) for n in graph.node) == 9  # per event: 2 GRUs, the code gather (5), the rows' reshape, concat


def test_a_tampered_network_fails_parity(exported, tmp_path):
    model, root, _ = exported
    other = build_model("crban_hubsm_ie_ipv", TINY_SPEC, TINY)  # different weights than the bundle's
    report = check_servability(root, other, [random_batch(8, seed=1)], FAST)
    assert not report.passed
    assert any(f.startswith("max abs score difference") for f in report.failures)


def test_budgets_refuse_a_bundle_too_big(exported):
    model, root, _ = exported
    report = check_servability(root, model, [random_batch(4)], FAST.model_copy(update={"bundle_bytes": 1000}))
    size = next(c.figure for c in report.checks if c.name == "bundle bytes without embeddings")
    assert report.failures == [f"bundle bytes without embeddings: {size:,} vs budget 1,000"]


@pytest.mark.parametrize("damage, message", [
    (lambda b: (b / "reranker.onnx").write_bytes((b / "reranker.onnx").read_bytes()[:-1] + b"x"),
     r"reranker.onnx has sha256 .* the manifest says"),
    (lambda b: (b / "behavior_ipv.onnx").unlink(), "behavior_ipv.onnx is missing"),
    (lambda b: (b / "manifest.json").unlink(), "manifest.json is missing"),
])
def test_damaged_bundles_are_refused_naming_the_file(exported, tmp_path, damage, message):
    bundle = damaged(exported, tmp_path)
    damage(bundle)
    with pytest.raises(BundleError, match=message):
        verify_bundle(bundle)
    report = check_servability(bundle, exported[0], [random_batch(2)], FAST)
    assert not report.passed and report.checks[0].name == "integrity"


def _rewrite_manifest(bundle, change) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    change(manifest)
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def test_a_bundle_of_another_format_is_refused(exported, tmp_path):
    bundle = damaged(exported, tmp_path)
    _rewrite_manifest(bundle, lambda m: m.update(format=2))
    with pytest.raises(BundleError, match="manifest.json has format 2, this code reads 4"):
        verify_bundle(bundle)


def test_a_step_graph_of_another_signature_is_refused(exported, tmp_path):
    """A step file whose checksums agree with its manifest, but whose inputs are not what this runtime binds."""
    bundle = damaged(exported, tmp_path)
    graph = onnx.load(bundle / "behavior_ipv.onnx")
    graph.graph.input[2].name = "state"
    for n in graph.graph.node:
        n.input[:] = ["state" if i == "state_0" else i for i in n.input]
    onnx.save(graph, bundle / "behavior_ipv.onnx")
    _rewrite_manifest(bundle, lambda m: m["files"].update(
        {"behavior_ipv.onnx": file_entry(bundle, bundle / "behavior_ipv.onnx")}))
    with pytest.raises(BundleError, match=r"behavior_ipv.onnx: inputs \['item_rows', 'codes', 'state', 'state_1'\], "
                                          r"this runtime binds \['item_rows', 'codes', 'state_0', 'state_1'\]"):
        BundleModel(bundle)


def test_a_feature_spec_of_another_sha_is_refused(exported, tmp_path):
    bundle = damaged(exported, tmp_path)
    spec = json.loads((bundle / FEATURE_SPEC).read_text())
    spec["sequence_lengths"]["ie"] = 99
    (bundle / FEATURE_SPEC).write_text(json.dumps(spec))
    _rewrite_manifest(bundle, lambda m: m["files"].update({FEATURE_SPEC: file_entry(bundle, bundle / FEATURE_SPEC)}))
    with pytest.raises(BundleError, match=r"feature_spec.json has sha256 .* the manifest says"):
        verify_bundle(bundle)


def test_embedding_rows_of_the_wrong_dimension_are_refused(exported, tmp_path):
    bundle = damaged(exported, tmp_path)
    _rewrite_manifest(bundle, lambda m: m["embeddings"]["brand"].update(dim=5))
    with pytest.raises(BundleError, match=r"embeddings/brand/shard-00000.npy holds float16 rows of shape \(3, 4\)"
                                          r" from row 0; table brand wants float16 \[3, 5\]"):
        verify_bundle(bundle)


def test_top_k_orders_agree_up_to_ties_within_the_tolerance():
    from training.servability import same_top_k

    expected = np.array([0.9, 0.5, 0.50000001, 0.1])
    assert same_top_k(np.array([0.9, 0.5, 0.50000001, 0.1]), expected, 3, 1e-4)
    assert same_top_k(np.array([0.9, 0.50000002, 0.5, 0.1]), expected, 3, 1e-4)  # a near-tie swapped by rounding
    assert not same_top_k(np.array([0.9, 0.1, 0.5, 0.6]), expected, 3, 1e-4)  # a real reorder
    assert not same_top_k(np.array([0.5, 0.9, 0.50000001, 0.1]), expected, 2, 1e-4)


def test_latency_is_the_median_round_and_a_burst_shows_as_the_worst_round(monkeypatch):
    """Five rounds of 100 calls at 1 ms with 3 calls at 2 ms, but round 3 with a burst of 10 calls at 9 ms: the
    figure is the rounds' median (p99 2 ms); the burst is the worst round's p99 (9 ms). Each call is followed by
    the calibration call at 0.5 ms: the call's p50 is twice the calibration's."""
    from training import servability

    durations = np.full((5, 100), 1e-3)
    durations[:, :3] = 2e-3
    durations[2, 50:60] = 9e-3
    readings = iter([t for d in durations.ravel() for t in (0.0, d, d + 0.5e-3)])
    monkeypatch.setattr(servability.time, "perf_counter", lambda: next(readings))
    figure = servability.time_calls(lambda: None, runs=500, calibration=lambda: None, warmup=0)
    assert figure["rounds"] == 5 and figure["runs"] == 500
    assert figure["p50"] == pytest.approx(1.0) and figure["p99"] == pytest.approx(2.0)
    assert figure["calibration_p50"] == pytest.approx(0.5) and figure["calibration_ratio"] == pytest.approx(2.0)
    assert figure["worst_round_p99"] == pytest.approx(9.0)


def test_the_counted_budgets_are_in_the_verdict_with_figures_from_the_graphs(exported):
    """The tiny model's step: two layers of one 16-unit GRU (action and item GRUs of 8, block-diagonal), 3 gates
    each: the IE step's first layer reads 28 item-row + 16 code-embedding inputs, 48 x (44 + 16) = 2,880 MACs, the
    second 48 x (16 + 16) = 1,536: 4,416; the IPV step's first layer reads 28 + 26, 48 x 70 = 3,360: 4,896. The
    re-rank of 100's context GRU, one layer: 100 x 24 x (34 + 8) = 100,800 of its MACs."""
    model, root, _ = exported
    report = check_servability(root, model, [random_batch(2)], FAST)
    figures = {c.name: c.figure for c in report.checks}
    assert figures["MACs of one IE step"] == 4_416 and figures["MACs of one IPV step"] == 4_896
    assert report.costs["reranker.onnx"]["by_op"]["GRU"]["macs"] == 100_800
    assert figures["MACs of one re-rank of 100"] == report.costs["reranker.onnx"]["macs"]
    assert report.device == "low-end" and set(report.estimated_ms) == {"low-end", "mid-range", "high-end"}
    assert figures["est. ms of one re-rank of 100 on low-end"] == report.estimated_ms["low-end"]["reranker.onnx"]
    assert report.estimated_ms["high-end"]["reranker.onnx"] < report.estimated_ms["low-end"]["reranker.onnx"]
    assert not any(c.name.startswith("host") for c in report.checks)  # timing is information unless asked
    assert "calibration_ratio" in report.latency_ms["rerank"]
    assert "Estimated ms per call on each device profile (budgets apply to low-end)" in report.to_markdown()


def test_twice_the_hidden_size_fails_the_mac_budget_naming_the_op():
    """The default model (3 layers of 32) fits the default budgets; with 64 hidden units the step's GRUs cost
    about four times as much and the bundle is refused, the failure naming the GRU's count."""
    def verdict(hidden: int, tmp: str):
        from pathlib import Path

        torch.manual_seed(0)
        model = build_model("crban_hubsm_ie_ipv", TINY_SPEC, TrainConfig(hidden=hidden, device="cpu")).eval()
        root = Path(tmp) / f"v-hidden-{hidden}"
        export_bundle(model, TINY_SPEC, root, version_id=root.name)
        return check_servability(root, model, [random_batch(2)], FAST)

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        default, doubled = verdict(32, tmp), verdict(64, tmp)
    assert default.passed, default.failures
    assert not doubled.passed
    failed = [c for c in doubled.checks if not c.passed]
    assert {c.name for c in failed} >= {"MACs of one IE step", "MACs of one IPV step"}
    step = next(c for c in failed if c.name == "MACs of one IE step")
    assert step.figure > 150_000 == step.budget and "largest: GRU" in step.detail


def test_an_op_the_cost_model_does_not_know_fails_the_gate_naming_it(exported, monkeypatch):
    from edgerec.edge import cost

    monkeypatch.setattr(cost, "KNOWN_OPS", cost.KNOWN_OPS - {"GRU"})
    model, root, _ = exported
    report = check_servability(root, model, [random_batch(2)], FAST)
    assert not report.passed
    assert [f for f in report.failures if f.startswith("every op counted")] == [
        "every op counted: behavior_ie.onnx: the cost model does not know the op type(s) GRU; add them to "
        "edgerec.edge.cost before shipping such a graph"]


def test_host_timing_blocks_only_when_asked(exported):
    model, root, _ = exported
    strict = FAST.model_copy(update={"rerank_p99_ms": 1e-9, "step_p99_ms": 1e-9})
    assert check_servability(root, model, [random_batch(2)], strict).passed  # information only
    blocking = check_servability(root, model, [random_batch(2)], strict.model_copy(update={"timing": "block"}))
    assert not blocking.passed
    assert {f.split(":")[0] for f in blocking.failures} == {"host p99 ms of one IE step", "host p99 ms of one IPV "
                                                            "step", "host p99 ms of one re-rank of 100"}


def test_the_same_bundle_gets_the_same_verdict_quiet_and_with_both_cores_saturated(exported):
    """Judged once on a quiet machine and once while two other processes spin on every core: identical verdicts
    and identical blocking figures (the host timings, which move, are not among them)."""
    import subprocess
    import sys

    model, root, _ = exported
    batches = [random_batch(8, seed=s) for s in range(2)]
    quiet = check_servability(root, model, batches, FAST)
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        loaded = check_servability(root, model, batches, FAST)
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    assert quiet.passed and loaded.verdict() == quiet.verdict()
    assert loaded.costs == quiet.costs and loaded.estimated_ms == quiet.estimated_ms


def test_a_multitask_bundle_scores_the_value_as_pytorch_does(tmp_path):
    """click_cart_buy: the shipped graph ranks by the value score (the three heads and the price), equal to the
    model's own scores, and the servability gate passes it."""
    torch.manual_seed(0)
    model = build_model("crban_hubsm_ie_ipv", TINY_SPEC, TINY.model_copy(update={"heads": "click_cart_buy"})).eval()
    root = tmp_path / "v20261102-abcdef13"
    export_bundle(model, TINY_SPEC, root, version_id=root.name, mlflow_version="3", run_id="r" * 32)
    report = check_servability(root, model, [random_batch(12, seed=s) for s in range(2)], FAST)
    assert report.passed, report.failures
    assert {c.name: c for c in report.checks}["max abs score difference"].figure <= 1e-5
