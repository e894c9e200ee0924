"""A verified bundle's networks in onnxruntime: encode one event, re-rank one request.

The phone's side of the bundle contract (edgerec.contracts.bundle); it needs numpy and onnxruntime only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgerec.contracts.bundle import (
    FEATURE_SPEC,
    RERANKER,
    STEP_MODELS,
    BundleError,
    item_rows,
    load_table,
    verify_bundle,
)
from edgerec.features import AGE_INDEX, GROUPS, MATCH_FEATURES, match_codes


class StepBinding:
    """One behaviour step session with its inputs and outputs bound to fixed buffers (onnxruntime IOBinding): a
    step then costs one copy in and one run, without building input dicts and output arrays per event. The
    graph's per-layer states are bound to consecutive rows of one [layers, 1, 2H] buffer each way."""

    def __init__(self, session, where: str, item_dim: int, features: int, layers: int, hidden: int):
        self.session = session
        self.rows = np.zeros((1, item_dim), np.float32)
        self.codes = np.zeros((1, features), np.int64)
        self.state = np.zeros((layers, 1, 2 * hidden), np.float32)
        self.state_out = np.zeros_like(self.state)
        self.hidden = hidden
        expected = ["item_rows", "codes", *(f"state_{k}" for k in range(layers))]
        found = [i.name for i in session.get_inputs()]
        if found != expected:
            raise BundleError(f"{where}: inputs {found}, this runtime binds {expected}")
        self.binding = session.io_binding()
        bindings = [(self.binding.bind_input, "item_rows", self.rows), (self.binding.bind_input, "codes", self.codes)]
        for k in range(layers):
            bindings += [(self.binding.bind_input, f"state_{k}", self.state[k:k + 1]),
                         (self.binding.bind_output, f"state_out_{k}", self.state_out[k:k + 1])]
        for bind, name, a in bindings:  # views of the buffers above, which live as long as the binding
            bind(name, "cpu", 0, a.dtype, a.shape, a.ctypes.data)

    def run(self, rows: np.ndarray, codes: np.ndarray, state: np.ndarray):
        self.rows[0] = rows
        self.codes[0] = codes
        self.state[...] = state
        self.session.run_with_iobinding(self.binding)
        new = self.state_out.copy()
        fused = new[-1, 0]  # the top layer's state: [action | item]; both encodings are views of the new state
        return new, fused[self.hidden:], fused


@dataclass
class Encoded:
    """What the phone stores of one behaviour type's events, oldest first: item encodings [L, H], fused encodings
    [L, 2H] and the events' MATCH_FEATURES [L, M] (`edgerec.features.match_codes`)."""

    item: np.ndarray
    fused: np.ndarray
    match_codes: np.ndarray

    @classmethod
    def empty(cls, hidden: int, events: int = 0) -> Encoded:
        return cls(np.zeros((events, hidden), np.float32), np.zeros((events, 2 * hidden), np.float32),
                   np.zeros((events, len(MATCH_FEATURES)), np.int64))


class BundleModel:
    """Loads a bundle after `verify_bundle` (BundleError when it fails) and runs it single-threaded by default."""

    def __init__(self, root: Path, threads: int = 1, trusted: dict | None = None):
        import onnxruntime as ort

        self.root = Path(root)
        self.manifest = verify_bundle(self.root, trusted=trusted)
        self.spec = json.loads((self.root / FEATURE_SPEC).read_text())
        self.behaviours: list[str] = self.manifest["behaviours"]
        self.layers, self.hidden = self.manifest["gru_layers"], self.manifest["hidden"]
        self.tables = {name: load_table(self.root, self.manifest, name) for name in self.manifest["embeddings"]}
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = threads
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL

        def session(name: str):
            return ort.InferenceSession(str(self.root / name), options, providers=["CPUExecutionProvider"])

        item_dim = sum(self.manifest["embeddings"][t]["dim"] for t in self.manifest["item_rows"]["tables"])
        self.steps = {b: StepBinding(session(STEP_MODELS[b]), f"bundle {self.root}: {STEP_MODELS[b]}", item_dim,
                                     len(GROUPS[b]), self.layers, self.hidden) for b in self.behaviours}
        self.reranker = session(RERANKER)
        self.age_index = {b: AGE_INDEX[b] for b in self.behaviours}

    @property
    def version(self) -> str:
        return self.manifest["version"]

    def rows(self, codes: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        """Item rows for codes [N, F] (ITEM_CATEGORICAL first) and item ids [N]: what the cloud serves."""
        return item_rows(self.manifest, self.tables, codes, item_ids)

    def zero_state(self) -> np.ndarray:
        """The behaviour encoder's state before the first event: the action and item GRUs' hidden states side by
        side, [layers, 1, 2H]."""
        return np.zeros((self.layers, 1, 2 * self.hidden), np.float32)

    def step(self, behaviour: str, rows: np.ndarray, codes: np.ndarray, state: np.ndarray):
        """One event: rows [item_dim], codes [F], state -> (new state, item encoding [H], fused encoding [2H])."""
        return self.steps[behaviour].run(rows, codes, state)

    def encode(self, behaviour: str, rows: np.ndarray, codes: np.ndarray, item_ids: np.ndarray) -> Encoded:
        """A whole sequence of events (rows [L, item_dim], codes [L, F], item ids [L]), oldest first, one step per
        event (as the phone does it over time)."""
        state, items, fused = self.zero_state(), [], []
        for r, c in zip(rows, codes, strict=True):
            state, item, f = self.step(behaviour, r, c, state)
            items.append(item)
            fused.append(f)
        if not items:
            return Encoded.empty(self.hidden)
        return Encoded(np.stack(items), np.stack(fused), match_codes(item_ids, codes))

    def rerank(self, candidate_rows: np.ndarray, candidate_codes: np.ndarray, candidate_items: np.ndarray,
               encoded: dict[str, Encoded], ages: dict[str, np.ndarray]) -> np.ndarray:
        """Scores [K] of K candidates (rows, codes, item ids) given each behaviour type's stored encodings and their
        age codes now."""
        feed = {"candidate_rows": candidate_rows.astype(np.float32, copy=False),
                "candidate_codes": candidate_codes.astype(np.int64, copy=False),
                "candidate_items": np.asarray(candidate_items, dtype=np.int64)}
        for b in self.behaviours:
            e, age = encoded[b], np.asarray(ages[b], dtype=np.int64)
            n = len(e.item)
            if n == 0:  # one padding step, masked by the zero length
                e, age = Encoded.empty(self.hidden, events=1), np.zeros(1, np.int64)
            feed |= {f"{b}_item_encoding": e.item, f"{b}_fused_encoding": e.fused,
                     f"{b}_match_codes": e.match_codes.astype(np.int64, copy=False), f"{b}_age": age,
                     f"{b}_length": np.array([n], np.int64)}
        return self.reranker.run(None, feed)[0]
