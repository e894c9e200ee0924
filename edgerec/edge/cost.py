"""What a bundle's networks cost on a phone, counted from their ONNX graphs alone.

A verdict on a host's timings moves with whatever else the host runs; the counts here depend on the graph and the
input shapes only, so the same bundle gets the same figures on any machine, quiet or loaded.

`graph_cost` runs the graph once in onnx's reference evaluator on inputs of the given shapes (the values do not
matter, only the shapes each node sees) and counts, per node, with a small cost model per op type:
- multiply-accumulates (MACs): MatMul, Gemm and the GRU's input and recurrent products;
- transcendental ops (exp, tanh, sigmoid, softplus, log): one per element each touches, the GRU's three gates per
  unit and step among them;
- elementwise ops: adds, compares, selects, the GRU's gate arithmetic, the reductions;
- bytes: every per-call tensor a node writes (data movement ops cost nothing but these bytes).
Nodes whose inputs are all constants (weights laid out block-diagonally, shapes) are folded when the runtime
loads the graph and cost nothing per call. A node of an op type the model does not know raises `UnknownOp`
naming it: a cost that is not counted must not pass a budget.

`estimate_ms` turns counts into a latency on a device profile (`DeviceProfile`, the table in
device_profiles.toml): compute at the profile's sustained MAC rate (a transcendental counted as
`TRANSCENDENTAL_MACS` MACs), plus the bytes each call reads and writes at its memory bandwidth.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgerec.errors import ConfigError, EdgeRecError

DEVICE_PROFILES = Path(__file__).with_name("device_profiles.toml")
# One exp/tanh/sigmoid as a MAC-equivalent: the vectorised polynomial approximations mobile runtimes use take
# about 10-20 fused multiply-adds per element; the upper end, as a budget should.
TRANSCENDENTAL_MACS = 20

TRANSCENDENTAL = {"Exp", "Log", "Tanh", "Sigmoid", "Softplus", "Erf", "Sqrt", "Reciprocal"}
ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Min", "Max", "Neg", "Abs", "Relu", "Clip", "Where", "Equal", "Less",
               "LessOrEqual", "Greater", "GreaterOrEqual", "And", "Or", "Not", "Cast"}
REDUCTIONS = {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin"}
MOVEMENT = {"Constant", "ConstantOfShape", "Shape", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Transpose",
            "Concat", "Split", "Slice", "Gather", "Expand", "Range", "Pad", "Identity"}
KNOWN_OPS = TRANSCENDENTAL | ELEMENTWISE | REDUCTIONS | MOVEMENT | {"MatMul", "Gemm", "GRU", "Softmax",
                                                                     "ReduceLogSumExp"}


class UnknownOp(EdgeRecError):
    """The graph holds an op type the cost model cannot count."""


@dataclass
class OpCost:
    nodes: int = 0
    macs: int = 0
    transcendentals: int = 0
    elementwise: int = 0
    bytes_written: int = 0

    def add(self, other: OpCost) -> None:
        for name in ("nodes", "macs", "transcendentals", "elementwise", "bytes_written"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class GraphCost:
    """One call of a graph at given input shapes."""

    total: OpCost
    by_op: dict[str, OpCost]
    parameter_bytes: int  # every weight and constant the file holds
    weights_read_bytes: int  # the (folded) constants the per-call nodes read
    peak_activation_bytes: int  # the most bytes of per-call tensors alive at once, inputs included

    def to_dict(self) -> dict:
        return {**asdict(self.total), "parameter_bytes": self.parameter_bytes,
                "weights_read_bytes": self.weights_read_bytes, "peak_activation_bytes": self.peak_activation_bytes,
                "by_op": {op: asdict(c) for op, c in sorted(self.by_op.items())}}


def node_cost(op: str, attrs: dict, inputs: list[np.ndarray | None], outputs: list[np.ndarray | None]) -> OpCost:
    """The cost model of one node given the arrays it read and wrote (only their shapes are used)."""
    out = next((o for o in outputs if o is not None), None)
    size = int(out.size) if out is not None else 0
    written = sum(int(o.nbytes) for o in outputs if o is not None)
    cost = OpCost(nodes=1, bytes_written=written)
    if op == "MatMul":
        cost.macs = size * int(inputs[0].shape[-1])
    elif op == "Gemm":
        a = inputs[0]
        cost.macs = size * int(a.shape[0] if attrs.get("transA", 0) else a.shape[1])
        cost.elementwise = size if len(inputs) > 2 and inputs[2] is not None else 0
    elif op == "GRU":
        x, w, r = inputs[0], inputs[1], inputs[2]
        steps, batch = (x.shape[0], x.shape[1]) if not attrs.get("layout", 0) else (x.shape[1], x.shape[0])
        directions, gates = int(w.shape[0]), int(w.shape[1])  # gates = 3 x hidden
        per_step = batch * directions
        cost.macs = int(steps * per_step * gates * (w.shape[2] + r.shape[2]))
        cost.transcendentals = int(steps * per_step * gates)  # sigmoid z, sigmoid r, tanh h per unit
        cost.elementwise = int(steps * per_step * gates * 3)  # biases, reset product, the convex update
    elif op == "Softmax":
        cost.transcendentals, cost.elementwise = size, 3 * size  # max, subtract, sum, divide
    elif op == "ReduceLogSumExp":
        n = int(inputs[0].size)
        cost.transcendentals, cost.elementwise = n + size, 2 * n
    elif op in TRANSCENDENTAL:
        cost.transcendentals = size
    elif op in ELEMENTWISE:
        cost.elementwise = size
    elif op in REDUCTIONS:
        cost.elementwise = int(inputs[0].size)
    elif op not in MOVEMENT:
        raise UnknownOp(op)
    return cost


def _constants(graph) -> set[str]:
    """Names of tensors known when the graph loads: initializers, Constant outputs and what only they feed."""
    known = {t.name for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" or all(not i or i in known for i in node.input):
            known.update(o for o in node.output if o)
    return known


def graph_cost(path: Path, input_shapes: dict[str, tuple[int, ...]], int_inputs: dict[str, np.ndarray] | None = None
               ) -> GraphCost:
    """The cost of one call of the graph at `path` with inputs of `input_shapes` (float inputs random, integer
    inputs ones unless given in `int_inputs`)."""
    import onnx
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    model = onnx.load(str(path))
    graph = model.graph
    unknown = sorted({n.op_type for n in graph.node} - KNOWN_OPS)
    if unknown:
        raise UnknownOp(f"{Path(path).name}: the cost model does not know the op type(s) {', '.join(unknown)}; "
                        "add them to edgerec.edge.cost before shipping such a graph")
    rng = np.random.default_rng(0)
    feeds = {}
    for value in graph.input:
        dtype = helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
        if value.name not in input_shapes:
            raise KeyError(f"{Path(path).name}: no shape given for input {value.name}")
        shape = input_shapes[value.name]
        given = (int_inputs or {}).get(value.name)
        feeds[value.name] = (np.asarray(given, dtype) if given is not None else
                             rng.standard_normal(shape).astype(dtype) if np.issubdtype(dtype, np.floating)
                             else np.ones(shape, dtype))
    values = {**feeds, **ReferenceEvaluator(model).run(None, feeds, intermediate=True)}
    constants = _constants(graph)
    stored = {t.name for t in graph.initializer} | {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    parameter_bytes = sum(int(values[n].nbytes) for n in stored if n in values)
    by_op: dict[str, OpCost] = {}
    total = OpCost()
    read_weights: set[str] = set()
    last_use = {name: i for i, node in enumerate(graph.node) for name in node.input if name}
    outputs = {o.name for o in graph.output}
    live = {n: int(feeds[n].nbytes) for n in feeds}
    peak = sum(live.values())
    for i, node in enumerate(graph.node):
        if all(o in constants for o in node.output if o):
            continue  # folded at load
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        cost = node_cost(node.op_type, attrs, [values.get(n) if n else None for n in node.input],
                         [values.get(n) if n else None for n in node.output])
        by_op.setdefault(node.op_type, OpCost()).add(cost)
        total.add(cost)
        read_weights.update(n for n in node.input if n in constants)
        live.update({o: int(values[o].nbytes) for o in node.output if o and values.get(o) is not None})
        peak = max(peak, sum(live.values()))
        for name in list(live):
            if last_use.get(name, -1) <= i and name not in outputs:
                del live[name]
    weights_read = sum(int(values[n].nbytes) for n in read_weights if values.get(n) is not None)
    return GraphCost(total, by_op, parameter_bytes, weights_read, peak)


@dataclass(frozen=True)
class DeviceProfile:
    """A phone as the latency estimate sees it: one core's sustained MAC rate and its memory bandwidth."""

    name: str
    description: str
    macs_per_second: float
    bytes_per_second: float
    source: str = ""


def load_device_profiles(path: Path = DEVICE_PROFILES) -> dict[str, DeviceProfile]:
    """The profiles of a TOML file of [profile.NAME] tables; a missing or non-positive figure fails naming it."""
    try:
        table = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"device profiles {path}: {e}") from e
    profiles = table.get("profile")
    if not isinstance(profiles, dict) or not profiles:
        raise ConfigError(f"device profiles {path}: no [profile.NAME] table")
    out = {}
    for name, fields in profiles.items():
        for key in ("macs_per_second", "bytes_per_second"):
            value = fields.get(key)
            if value is None:
                raise ConfigError(f"device profiles {path}: profile {name!r} has no {key}")
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigError(f"device profiles {path}: profile {name!r}: {key} must be a positive number, "
                                  f"got {value!r}")
        out[name] = DeviceProfile(name, str(fields.get("description", "")), float(fields["macs_per_second"]),
                                  float(fields["bytes_per_second"]), str(fields.get("source", "")))
    return out


def estimate_ms(cost: GraphCost, device: DeviceProfile) -> float:
    """One call's latency on `device`: its compute at the sustained MAC rate plus the weights it reads and the
    activations it writes at the memory bandwidth (no overlap assumed: an upper estimate)."""
    t = cost.total
    compute = (t.macs + t.elementwise + TRANSCENDENTAL_MACS * t.transcendentals) / device.macs_per_second
    memory = (cost.weights_read_bytes + t.bytes_written) / device.bytes_per_second
    return 1000.0 * (compute + memory)


def op_table(costs: dict[str, GraphCost]) -> str:
    """Markdown: per graph and op type, nodes, MACs, transcendentals, elementwise ops and bytes written."""
    lines = ["| graph | op | nodes | MACs | transcendentals | elementwise | bytes written |",
             "|---|---|---|---|---|---|---|"]
    for graph, cost in costs.items():
        rows = sorted(cost.by_op.items(), key=lambda kv: -(kv[1].macs + TRANSCENDENTAL_MACS * kv[1].transcendentals
                                                          + kv[1].elementwise))
        for op, c in rows:
            lines.append(f"| {graph} | {op} | {c.nodes} | {c.macs:,} | {c.transcendentals:,} | {c.elementwise:,} | "
                         f"{c.bytes_written:,} |")
        t = cost.total
        lines.append(f"| {graph} | **total** | {t.nodes} | {t.macs:,} | {t.transcendentals:,} | {t.elementwise:,} | "
                     f"{t.bytes_written:,} |")
    return "\n".join(lines)


def bundle_costs(root: Path, manifest: dict, sequence_lengths: dict[str, int], candidates: int
                 ) -> dict[str, GraphCost]:
    """Per network of a bundle, the cost of one call: each behaviour step as the phone runs it (one event), and
    the re-ranker for `candidates` candidates with every behaviour sequence at its full length. Shapes come from
    the manifest's signatures: a dimension named `candidates` is `candidates`, one named `<behaviour>_events` the
    behaviour's sequence length (and `<behaviour>_length` that length as a value)."""
    def size(dim, behaviour: str) -> int:
        if isinstance(dim, int):
            return dim
        return candidates if dim == "candidates" else int(sequence_lengths[behaviour])

    costs = {}
    for name, signature in manifest["signatures"].items():
        shapes, values = {}, {}
        for tensor in signature["inputs"]:
            behaviour = tensor["name"].split("_")[0]
            shapes[tensor["name"]] = tuple(size(d, behaviour) for d in tensor["shape"])
            if tensor["name"].endswith("_length") and behaviour in sequence_lengths:
                values[tensor["name"]] = np.full(shapes[tensor["name"]], sequence_lengths[behaviour])
        costs[name] = graph_cost(Path(root) / name, shapes, values)
    return costs
