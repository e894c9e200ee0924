"""The cost model: MACs, transcendentals, elementwise ops, bytes and peak activations counted from small graphs
whose counts are written out by hand; constants folded at load cost nothing; an unknown op is refused by name;
device profiles and the latency estimate."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper, save

from edgerec.edge.cost import (
    DEVICE_PROFILES,
    TRANSCENDENTAL_MACS,
    DeviceProfile,
    GraphCost,
    OpCost,
    UnknownOp,
    estimate_ms,
    graph_cost,
    load_device_profiles,
)
from edgerec.errors import ConfigError

pytestmark = pytest.mark.unit
F32 = TensorProto.FLOAT


def write(tmp_path, nodes, inputs, outputs, weights=(), name="g.onnx"):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, F32, s) for n, s in inputs],
                              [helper.make_tensor_value_info(n, F32, None) for n in outputs],
                              [numpy_helper.from_array(np.asarray(w, np.float32), n) for n, w in weights])
    path = tmp_path / name
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_matmul_gemm_and_tanh_are_counted_from_the_shapes(tmp_path):
    """x [2, 3] @ w [3, 4] = 2*4 outputs of 3 MACs each = 24; Gemm y [2, 4] . v^T (v [5, 4]) + b = 2*5*4 = 40 MACs
    and 10 bias adds; tanh of 10 elements = 10 transcendentals."""
    path = write(tmp_path, [helper.make_node("MatMul", ["x", "w"], ["y"]),
                            helper.make_node("Gemm", ["y", "v", "b"], ["z"], transB=1),
                            helper.make_node("Tanh", ["z"], ["out"])],
                 [("x", [2, 3])], ["out"], [("w", np.ones((3, 4))), ("v", np.ones((5, 4))), ("b", np.zeros(5))])
    cost = graph_cost(path, {"x": (2, 3)})
    assert (cost.by_op["MatMul"].macs, cost.by_op["Gemm"].macs, cost.by_op["Gemm"].elementwise) == (24, 40, 10)
    assert (cost.by_op["Tanh"].transcendentals, cost.total.macs, cost.total.nodes) == (10, 64, 3)
    assert cost.total.bytes_written == 4 * (8 + 10 + 10)
    assert cost.parameter_bytes == cost.weights_read_bytes == 4 * (12 + 20 + 5)


def test_a_gru_costs_its_input_and_recurrent_products_per_step(tmp_path):
    """5 steps, batch 1, input 4, hidden 2: per step 3*2 gate units x (4 + 2) = 36 MACs, 180 in all; 3*2 = 6
    transcendentals per step (sigmoid z, sigmoid r, tanh h per unit), 30 in all; 18 elementwise ops per step."""
    path = write(tmp_path, [helper.make_node("GRU", ["x", "W", "R"], ["y", "h"], hidden_size=2)],
                 [("x", [5, 1, 4])], ["h"], [("W", np.ones((1, 6, 4))), ("R", np.ones((1, 6, 2)))])
    gru = graph_cost(path, {"x": (5, 1, 4)}).by_op["GRU"]
    assert (gru.macs, gru.transcendentals, gru.elementwise) == (180, 30, 90)


def test_nodes_fed_only_by_constants_are_folded_at_load_and_cost_nothing(tmp_path):
    """The block-diagonal layout of the step graph's weights (Pad, Concat) runs once when the runtime loads the
    graph: per call only the MatMul counts, and it reads the folded weights."""
    path = write(tmp_path, [helper.make_node("Concat", ["a", "a"], ["w"], axis=0),
                            helper.make_node("MatMul", ["x", "w"], ["y"])],
                 [("x", [1, 4])], ["y"], [("a", np.ones((2, 3)))])
    cost = graph_cost(path, {"x": (1, 4)})
    assert set(cost.by_op) == {"MatMul"} and cost.total.macs == 12
    assert (cost.parameter_bytes, cost.weights_read_bytes) == (4 * 6, 4 * 12)


def test_peak_activations_count_what_is_alive_at_once(tmp_path):
    """x [1, 100] -> a = x + x -> b = a + a -> c = b + x: when c is written, x, b and c are alive (a died after
    b read it): 3 x 400 bytes."""
    path = write(tmp_path, [helper.make_node("Add", ["x", "x"], ["a"]), helper.make_node("Add", ["a", "a"], ["b"]),
                            helper.make_node("Add", ["b", "x"], ["c"])], [("x", [1, 100])], ["c"])
    cost = graph_cost(path, {"x": (1, 100)})
    assert cost.peak_activation_bytes == 1200 and cost.total.elementwise == 300


def test_a_graph_with_an_op_the_model_does_not_know_is_refused_naming_it(tmp_path):
    path = write(tmp_path, [helper.make_node("LSTM", ["x", "W", "R"], ["y"], hidden_size=2)],
                 [("x", [5, 1, 4])], ["y"], [("W", np.ones((1, 8, 4))), ("R", np.ones((1, 8, 2)))], name="net.onnx")
    with pytest.raises(UnknownOp, match=r"net.onnx: the cost model does not know the op type\(s\) LSTM"):
        graph_cost(path, {"x": (5, 1, 4)})


def test_the_estimate_is_compute_at_the_mac_rate_plus_bytes_at_the_bandwidth():
    """1M MACs + 1k transcendentals (x 20) + 0 elementwise at 1e9 MAC/s = 1.02 ms; 1 MB read and written at
    1e9 B/s = 1 ms."""
    cost = GraphCost(OpCost(macs=1_000_000, transcendentals=1_000, bytes_written=600_000), {}, 0, 400_000, 0)
    device = DeviceProfile("test", "", macs_per_second=1e9, bytes_per_second=1e9)
    assert TRANSCENDENTAL_MACS == 20
    assert estimate_ms(cost, device) == pytest.approx(1.02 + 1.0)


def test_the_shipped_profiles_are_three_phones_from_slow_to_fast():
    profiles = load_device_profiles(DEVICE_PROFILES)
    assert list(profiles) == ["low-end", "mid-range", "high-end"]
    rates = [p.macs_per_second for p in profiles.values()]
    assert rates == sorted(rates) and all(p.source for p in profiles.values())


@pytest.mark.parametrize("body, message", [
    ('[profile.slow]\nbytes_per_second = 1e9\n', "profile 'slow' has no macs_per_second"),
    ('[profile.slow]\nmacs_per_second = 0\nbytes_per_second = 1e9\n',
     "profile 'slow': macs_per_second must be a positive number, got 0"),
    ('[profile.slow]\nmacs_per_second = 1e9\nbytes_per_second = -2.0\n',
     "profile 'slow': bytes_per_second must be a positive number, got -2.0"),
    ('title = "no profiles"\n', r"no \[profile.NAME\] table"),
])
def test_a_profile_file_with_a_missing_or_non_positive_figure_fails_naming_it(tmp_path, body, message):
    path = tmp_path / "devices.toml"
    path.write_text(body)
    with pytest.raises(ConfigError, match=message):
        load_device_profiles(path)
