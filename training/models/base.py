"""What every re-ranker shares: the inputs, the item tables kept apart from the network, the building blocks
and the loss.

Every model scores all candidates of a request at once: `forward(inputs) -> [B, K]` logits. The categorical
item features (p1..p6) and the optional hashed item_id are looked up in `ItemTables`, the cloud-side tables
that stay out of the shipped network (docs/design.md: the phone receives their rows with the candidates); the
small bucketized and action features are embedded inside the network (`CodeEmbedding`).
Sequences arrive oldest first with the padding after them, so a GRU's output at an event depends only on
that event and the ones before it: the phone can encode each event once, as it happens.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from edgerec.contracts.catalog import price_units as catalog_price_units
from edgerec.features import AGE_FEATURE, GROUPS, ITEM_CATEGORICAL, ITEM_SCORES, MATCH_FEATURES, MATCH_INDEX
from training.config import TrainConfig

N_ITEM = len(ITEM_CATEGORICAL)  # every group starts with the item's categorical features, then its scores
N_ITEM_PART = N_ITEM + len(ITEM_SCORES)  # IE/IPV: the item's features; the rest are action features
HASH_MULTIPLIER = 2_654_435_761  # Knuth's multiplicative hash: spreads consecutive item ids over the buckets


@dataclass
class Inputs:
    """One batch of B requests as tensors. Codes are int64; sequences are oldest first, padded after."""

    candidate_item: Tensor  # [B, K] item ids (0: padding)
    candidate: Tensor  # [B, K, F_candidate] codes in GROUPS["candidate"] order
    candidates: Tensor  # [B] real candidates
    ie_item: Tensor  # [B, m]
    ie: Tensor  # [B, m, F_ie]
    ie_length: Tensor  # [B]
    ipv_item: Tensor  # [B, n]
    ipv: Tensor  # [B, n, F_ipv]
    ipv_length: Tensor  # [B]

    def to(self, device: torch.device) -> Inputs:
        return Inputs(**{f.name: getattr(self, f.name).to(device, non_blocking=True) for f in fields(self)})


def vocab_sizes(spec: dict, names) -> list[int]:
    return [int(spec["features"][name]["vocab_size"]) for name in names]


class ItemTables(nn.Module):
    """The cloud-side embedding tables: one per item categorical feature, and the optional hashed item_id.

    `forward(codes [..., 6], item_ids [...]) -> [..., dim * tables]`. Codes beyond a table (a code of an
    older or newer feature spec) read its last row rather than fail.

    A row seen fewer than cfg.min_item_count times in the training data (`restrict`) is not learned: its value reads
    the table's out-of-vocabulary row instead (OOV_ROW), and the exported table repeats that row in its place. A
    table keyed by item identity (a brand per item, the hashed item_id) over a catalog much larger than a day's
    requests otherwise feeds every network path a row that is mostly its random start or a memorised click,
    and the model overfits the train users within two epochs (docs/quality.md).
    """

    OOV_ROW = {"item_id": 0}  # categorical features: code 1, out of vocabulary (edgerec.features); item_id: row 0

    def __init__(self, spec: dict, cfg: TrainConfig):
        super().__init__()
        self.tables = nn.ModuleDict({name: nn.Embedding(size, cfg.item_embedding_dim, padding_idx=0)
                                     for name, size in zip(ITEM_CATEGORICAL, vocab_sizes(spec, ITEM_CATEGORICAL),
                                                           strict=True)})
        self.item_id_buckets = cfg.item_id_buckets
        if cfg.item_id_buckets:
            self.tables["item_id"] = nn.Embedding(cfg.item_id_buckets + 1, cfg.item_embedding_dim, padding_idx=0)
        self.dim = cfg.item_embedding_dim * len(self.tables)
        self.min_count = cfg.min_item_count
        for name, table in self.tables.items():  # every row learned until `restrict` says otherwise
            self.register_buffer(f"learned_{name}", torch.ones(table.num_embeddings, dtype=torch.bool))

    def oov_row(self, name: str) -> int:
        return self.OOV_ROW.get(name, 1)

    def learned(self, name: str) -> Tensor:
        return getattr(self, f"learned_{name}")

    def restrict(self, counts: dict[str, np.ndarray]) -> dict[str, int]:
        """Learn only the rows seen at least min_count times: counts[table] [rows] (`row_counts`). Returns the
        rows learned per table."""
        for name, table in self.tables.items():
            learned = torch.from_numpy(np.asarray(counts[name])[:table.num_embeddings] >= self.min_count)
            learned = torch.cat([learned, torch.zeros(table.num_embeddings - len(learned), dtype=torch.bool)])
            learned[[0, self.oov_row(name)]] = True  # padding and the out-of-vocabulary row itself
            self.learned(name).copy_(learned)
        return {name: int(self.learned(name).sum()) for name in self.tables}

    def rows(self, name: str, codes: Tensor) -> Tensor:
        """Row of each code (categorical) or item id in table `name`, unlearned ones sent to its OOV row."""
        if name == "item_id":
            rows = torch.where(codes > 0, (codes * HASH_MULTIPLIER) % self.item_id_buckets + 1, 0)
        else:
            rows = codes.clamp(max=self.tables[name].num_embeddings - 1)
        return torch.where(self.learned(name)[rows], rows, self.oov_row(name))

    def exported(self, name: str) -> Tensor:
        """The table as the cloud serves it: each unlearned row a copy of the OOV row."""
        weight = self.tables[name].weight.detach()
        return torch.where(self.learned(name).unsqueeze(-1), weight, weight[self.oov_row(name)])

    def forward(self, codes: Tensor, item_ids: Tensor) -> Tensor:
        parts = [self.tables[name](self.rows(name, codes[..., i])) for i, name in enumerate(ITEM_CATEGORICAL)]
        if self.item_id_buckets:
            parts.append(self.tables["item_id"](self.rows("item_id", item_ids)))
        return torch.cat(parts, dim=-1)


class CodeEmbedding(nn.Module):
    """Small per-feature tables inside the network (bucketized scores, action features), fused into one
    matrix with row offsets: `forward(codes [..., F]) -> [..., F * dim]`."""

    def __init__(self, sizes: list[int], dim: int):
        super().__init__()
        self.register_buffer("offsets", torch.tensor([0, *sizes[:-1]]).cumsum(0), persistent=False)
        self.register_buffer("last", torch.tensor(sizes) - 1, persistent=False)
        self.table = nn.Embedding(sum(sizes), dim)
        self.dim = dim * len(sizes)

    def forward(self, codes: Tensor) -> Tensor:
        rows = torch.minimum(codes, self.last) + self.offsets
        return self.table(rows).flatten(-2)


class EventAge(CodeEmbedding):
    """The embedding of each event's age at the trigger (AGE_FEATURE), added to the attention's keys: the age
    changes after the event, so it joins at each re-rank rather than the stored encodings."""

    def __init__(self, spec: dict, group: str, dim: int):
        super().__init__(vocab_sizes(spec, [AGE_FEATURE[group]]), dim)

    def add_to(self, keys: Tensor, age: Tensor) -> Tensor:
        """keys [..., dim] plus the embedding of the age codes [...]."""
        return keys + self(age.unsqueeze(-1))


def gru(input_size: int, cfg: TrainConfig, layers: int | None = None) -> nn.GRU:
    return nn.GRU(input_size, cfg.hidden, num_layers=layers or cfg.gru_layers, batch_first=True)


def by_length(rnn: nn.GRU, inputs: Tensor, lengths: Tensor, groups: int = 4) -> Tensor:
    """rnn(inputs)'s outputs [B, L, H] at each row's real steps (what follows them differs: 0 after the longest row
    of its group), the rows run in groups of similar length (at most `groups`, cut at the length quantiles), each
    group over its longest row's steps only.

    A GRU reads forward, so the steps after a row's end change none of its real outputs; on the CPU a GRU costs its
    rows times its steps, and page views (6-7 a request, padded to the batch's longest, 30) leave most of those
    padding. Each extra group costs a gather and a GRU call, so rows join the next group unless running them apart
    saves at least a fifth of the batch's row-steps (exposures, mostly full windows, stay one group)."""
    order = torch.argsort(lengths, stable=True)
    ascending = lengths.index_select(0, order).clamp(max=inputs.size(1)).tolist()  # each row's, shortest first
    if not ascending:
        return inputs.new_zeros(*inputs.shape[:2], rnn.hidden_size)
    ends = sorted({len(ascending) * (g + 1) // groups for g in range(groups)} - {0})
    cuts, start = [], 0
    for end, later in zip(ends, ends[1:], strict=False):
        if (end - start) * (ascending[later - 1] - ascending[end - 1]) * 5 >= len(ascending) * ascending[-1]:
            cuts.append(end)
            start = end

    def run(rows: Tensor | None, end: int) -> Tensor:
        steps = max(ascending[end - 1], 1)  # a group of empty rows runs one step: the GRU stays in the graph
        outputs, _ = rnn((inputs if rows is None else inputs.index_select(0, rows))[:, :steps])
        return F.pad(outputs, (0, 0, 0, inputs.size(1) - steps))

    if not cuts:  # one group: the rows in their own order
        return run(None, len(ascending))
    starts = [0, *cuts]
    parts = [run(order[lo:hi], hi) for lo, hi in zip(starts, [*cuts, len(ascending)], strict=True)]
    return torch.cat(parts).index_select(0, torch.argsort(order))


def last_state(outputs: Tensor, lengths: Tensor) -> Tensor:
    """The output at each row's last real step ([B, L, H] -> [B, H]); zeros for an empty row."""
    index = (lengths - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, outputs.size(-1))
    return outputs.gather(1, index).squeeze(1) * (lengths > 0).unsqueeze(-1).to(outputs.dtype)


def steps_mask(lengths: Tensor, steps: int) -> Tensor:
    """[B, steps] True where the step is real."""
    return torch.arange(steps, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


def scored_positions(x: Inputs, scored: Tensor | None) -> tuple[Tensor, Tensor]:
    """(request index [N], flat index into B*K [N]) of the candidates to score: `scored` [B, K] where given,
    else every real candidate. Training scores the labelled ones only: the others carry no loss."""
    if scored is None:
        scored = steps_mask(x.candidates, x.candidate.size(1))
    flat = scored.reshape(-1).nonzero().squeeze(-1)
    return torch.div(flat, scored.size(1), rounding_mode="floor"), flat


def scatter_scores(logits: Tensor, flat: Tensor, shape: torch.Size) -> Tensor:
    """Scores of the scored candidates [N] into [B, K], 0 elsewhere."""
    return torch.zeros(shape[0] * shape[1], dtype=logits.dtype, device=logits.device).scatter(
        0, flat, logits).view(shape[0], shape[1])


def match_codes(items: Tensor, codes: Tensor) -> Tensor:
    """The MATCH_FEATURES of items [...] with codes [..., F] (ITEM_CATEGORICAL first): [..., M], the id first.
    (`edgerec.features.match_codes` is the same on the phone's numpy arrays.)"""
    return torch.cat([items.unsqueeze(-1), codes[..., MATCH_INDEX]], dim=-1)


def match_indicators(candidate_codes: Tensor, event_codes: Tensor) -> Tensor:
    """Per (candidate, event) pair and MATCH_FEATURES attribute, 1.0 where both carry the same known code.

    candidate_codes [N, M], event_codes [N or 1, L, M] (`match_codes`) -> [N, L, M]."""
    same = (event_codes == candidate_codes.unsqueeze(1)) & (candidate_codes > 0).unsqueeze(1)
    return same.to(torch.float32)


def real_pairs(lengths: Tensor, steps: int, request: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The real (query, event) pairs of queries from `request` [N] over behaviours of `lengths` [B] padded to `steps`:
    (mask [N, steps], each pair's query [P], step [P] and event as an index into the flattened [B * steps]).

    The attentions compute their pair terms for these alone: a padding step's weight is 0 whatever its term, and
    most steps of a batch are padding (page views: 6-7 a request on average, padded to the longest, 30)."""
    mask = steps_mask(lengths, steps).index_select(0, request)
    query_of, step = mask.nonzero(as_tuple=True)  # in the mask's row-major order, as `scatter_pairs` reads
    # the callers gather with index_select, not advanced indexing, wherever a gradient flows back: its backward
    # adds rows back with index_add, far faster on the CPU than the deterministic index_put of advanced indexing
    return mask, query_of, step, request.index_select(0, query_of) * steps + step


def scatter_pairs(values: Tensor, mask: Tensor, fill: float) -> Tensor:
    """[P] values of the real pairs (`real_pairs`) into [N, L], `fill` at the padding steps."""
    return values.new_full(mask.shape, fill).masked_scatter(mask, values)


MASKED = -1e9  # the energy of a padding step: its weight exp(MASKED - mass) is exactly 0


class BahdanauAttention(nn.Module):
    """Additive attention (Bahdanau et al. 2015), the paper's behaviour attention, with two additions:

    e_nj = v^T tanh(W_q q_n + W_k k_j + W_m m_nj); a_nj = exp e_nj / (1 + sum_j' exp e_nj') over real steps;
    c_n = [sum_j a_nj values_j, log(1 + sum_j exp e_nj), sum_j a_nj m_nj].

    - m_nj are the match indicators of candidate n and event j (same category, same brand). The paper's keys are
      item embeddings learned from Taobao's traffic; on a small training set they do not learn to tell "the same
      category as this candidate" reliably, and that is what the real-time effects hang on (fatigue after
      repeated exposures of a category, interest after page views).
    - The softmax runs over the events and a null event (energy 0, value 0) that a candidate attends to when
      nothing in the history concerns it. A plain softmax makes the weights sum to 1 whatever the number of
      relevant events, so one exposure of the candidate's category pools like ten; with the null event the
      pool's size says how much of the history is relevant, and the second term (the log partition, a soft count
      of the relevant events) says it once more as a number.
    - The match indicators are pooled too (the last term): the share of attention on events of the candidate's own
      category and brand. It is a direct path from "the user touched this very item" to the score, open from the
      first step: through the energy alone the signal reached the score only once v and W_m had aligned, and on
      logs where a third of the clicks return to an item viewed before, the model overfit the train users before
      that happened (docs/quality.md).

    query [N, Dq] (candidates of several requests), keys [B, L, Dk], values [B, L, Dv], lengths [B], request [N]
    (each query's request), match [N, L, M] -> [N, Dv + 1 + M].
    """

    @staticmethod
    def pooled_dim(value_dim: int) -> int:
        return value_dim + 1 + len(MATCH_FEATURES)

    def __init__(self, query_dim: int, key_dim: int, units: int):
        super().__init__()
        self.query = nn.Linear(query_dim, units, bias=False)
        self.key = nn.Linear(key_dim, units)
        self.match = nn.Linear(len(MATCH_FEATURES), units, bias=False)
        self.v = nn.Parameter(torch.empty(units).uniform_(-units ** -0.5, units ** -0.5))
        bits = 2 ** torch.arange(len(MATCH_FEATURES))
        self.register_buffer("bit_values", bits.float().unsqueeze(-1), persistent=False)  # [M, 1]
        # [2^M, M]: row i holds the bits of i, every value the match indicators can take
        self.register_buffer("every_match", ((torch.arange(2 ** len(bits)).unsqueeze(-1) // bits) % 2).float(),
                             persistent=False)

    def forward(self, query: Tensor, keys: Tensor, values: Tensor, lengths: Tensor, request: Tensor,
                match: Tensor) -> Tensor:
        mask, query_of, step, event = real_pairs(lengths, keys.size(1), request)
        projected = self.key(keys).flatten(0, 1).index_select(0, event) + self.pair_inputs(query, match,
                                                                                         (query_of, step))
        return self.pool(scatter_pairs(self.energy(projected), mask, MASKED), values, match, request)

    def pool(self, energy: Tensor, values: Tensor, match: Tensor, request: Tensor) -> Tensor:
        """energy [N, L] (MASKED at padding steps), values [B, L, Dv], match [N, L, M], request [N] -> [N, Dv + 1 +
        M]."""
        weights, mass = self.normalised(energy)
        return torch.cat([pool_by_request(weights, values, request), mass, weighted_sum(weights, match)], dim=-1)

    def pair_inputs(self, query: Tensor, match: Tensor, pairs: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """W_q q_n + W_m m_nj of every pair: query [N, Dq], match [N, L, M] -> [N, L, units]; or of the pairs given
        as (query index [P], step [P]) -> [P, units].

        m_nj holds M 0/1 indicators, so W_m m takes 2^M values: each query's projection plus each of them is a
        [N * 2^M, units] table that every pair reads by its index, instead of a product and a sum per pair."""
        rows = len(self.every_match)
        table = (self.query(query).unsqueeze(1) + self.match(self.every_match)).flatten(0, 1)
        if pairs is None:  # [N, L]: each query's rows start at its index times `rows`
            first = torch.arange(query.size(0), device=match.device).unsqueeze(1) * rows
        else:  # [P]: each pair's indicators and its query's first row
            match, first = match[pairs], pairs[0] * rows
        pair = (match @ self.bit_values).squeeze(-1).long() + first
        return F.embedding(pair, table)  # one Gather in the exported graph

    def energy(self, projected: Tensor) -> Tensor:
        """v^T tanh(W_q q_n + W_k k_j + W_m m_nj): [..., units] -> [...]."""
        # v as a [units, 1] matrix: one GEMM over all the rows (a 1-D right operand is far slower in onnxruntime)
        return (torch.tanh(projected) @ self.v.unsqueeze(-1)).squeeze(-1)

    def weights(self, projected: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """(weights [N, L], log partition [N, 1]) from W_q q_n + W_k k_j + W_m m_nj [N, L, units] and the mask [N or
        1, L]: the padded form, which the exported re-ranker computes (one request, no padding to skip)."""
        return self.normalised(self.energy(projected).masked_fill(~mask, MASKED))  # the mask broadcasts

    @staticmethod
    def normalised(energy: Tensor) -> tuple[Tensor, Tensor]:
        """(weights, log partition [N, 1]) of the energies [N, L], MASKED at padding steps."""
        # log(1 + sum exp e) over real steps without overflow: softplus of the log-sum-exp (0 with no events); the
        # 1 is the null event's exp 0, so it is the softmax's normaliser as well as the soft count
        mass = F.softplus(torch.logsumexp(energy, dim=-1, keepdim=True))
        return torch.exp(energy - mass), mass  # weights exactly 0 at padding steps


def weighted_sum(weights: Tensor, values: Tensor) -> Tensor:
    """weights [N, L], values [N or 1, L, D] -> [N, D]."""
    return (weights.unsqueeze(1) @ values).squeeze(1)


def pool_by_request(weights: Tensor, values: Tensor, request: Tensor) -> Tensor:
    """sum_j weights[n, j] values[request[n], j]: weights [N, L], values [B, L, D], request [N] -> [N, D].

    One product per request rather than per query: the weights are laid out as [B, most queries of a request, L]
    (zeros where a request has fewer) and multiply each request's values once. A [1, L] x [L, D] product per query,
    over a gathered [N, L, D] copy of the values, was about six times slower on the CPU, forward and backward."""
    order = torch.argsort(request, stable=True)
    counts = torch.bincount(request, minlength=values.size(0))
    slot = torch.empty_like(request)
    slot[order] = torch.arange(len(request), device=request.device) - (counts.cumsum(0) - counts)[request[order]]
    laid = weights.new_zeros(values.size(0), int(counts.max()) if len(request) else 0, weights.size(1))
    laid = laid.index_put((request, slot), weights)
    return (laid @ values)[request, slot]


def mlp(input_size: int, hidden: int, outputs: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Linear(input_size, hidden), nn.ReLU(), nn.Linear(hidden, outputs))


HEADS = ("click", "cart", "buy")  # click_cart_buy: p(click), p(cart | click), p(buy | click)
PRICE_INDEX = ITEM_CATEGORICAL.index("price_level")


def price_units(codes: Tensor | np.ndarray) -> Tensor | np.ndarray:
    """An item's price in units of the lowest price level (`edgerec.contracts.catalog.price_units`) from its
    price_level code (level + 2; 0 and 1, unknown, count as the lowest level)."""
    levels = codes - 2
    return catalog_price_units(levels.clamp(min=0) if isinstance(levels, Tensor) else np.maximum(levels, 0))


def value_score(heads: Tensor, price: Tensor, cart_value: float, buy_value: float) -> Tensor:
    """The expected value of showing a candidate, as a logit-like score: logit p(click) + log(1 + cart_value
    p(cart | click) + buy_value p(buy | click) x price) for heads [..., 3] (HEADS order) and price [...]. For a rare
    click, sigmoid of it is p(click) times the value a click brings, so the device's rules (demotion multiplies the
    click probability) and MMR read it as they read a click logit."""
    click, cart, buy = heads.unbind(-1)
    return click + torch.log1p(cart_value * torch.sigmoid(cart) + buy_value * torch.sigmoid(buy) * price)


def multitask_loss(heads: Tensor, label: Tensor, mask: Tensor, cart: Tensor, buy: Tensor,
                   click_loss: Tensor) -> Tensor:
    """click_cart_buy's loss: the click loss (`click_loss`, as computed for the click head alone) plus the
    cross-entropy of the cart and buy heads over the clicked candidates (each given the click), heads [B, K, 3]."""
    clicked = (mask > 0) & (label > 0)
    n = clicked.sum().clamp(min=1)
    total = click_loss
    for i, target in ((1, cart), (2, buy)):
        losses = F.binary_cross_entropy_with_logits(heads[..., i], target.to(heads.dtype), reduction="none")
        total = total + torch.where(clicked, losses, 0.0).sum() / n
    return total


class Reranker(nn.Module):
    """Base of every model: item tables, candidate features, masked cross-entropy."""

    name: ClassVar[str]  # registry key, also the MLflow run name
    title: ClassVar[str]  # as in the paper's Table 2
    behaviours: ClassVar[tuple[str, ...]] = ()  # which on-device sequences the model reads: "ie", "ipv"
    # raised when the model computes differently from the same weights' names and shapes, so a checkpoint of the
    # earlier code is refused rather than silently run by the new one (registry.model_from_checkpoint)
    revision: ClassVar[int] = 1

    def __init__(self, spec: dict, cfg: TrainConfig):
        super().__init__()
        self.items = ItemTables(spec, cfg)
        self.candidate_codes = CodeEmbedding(vocab_sizes(spec, GROUPS["candidate"][N_ITEM:]), cfg.code_embedding_dim)
        self.candidate_dim = self.items.dim + self.candidate_codes.dim

    def candidate_features(self, x: Inputs) -> Tensor:
        """[B, K, candidate_dim]: item table rows and the cloud's scores (p7, cloud score)."""
        return torch.cat([self.items(x.candidate[..., :N_ITEM], x.candidate_item),
                          self.candidate_codes(x.candidate[..., N_ITEM:])], dim=-1)

    def forward(self, x: Inputs, scored: Tensor | None = None) -> Tensor:
        """[B, K] logits of the candidates in `scored` ([B, K] bool; default: every real one), 0 elsewhere."""
        raise NotImplementedError

    @staticmethod
    def loss(logits: Tensor, label: Tensor, mask: Tensor, weight: Tensor | None = None) -> Tensor:
        """Binary cross-entropy over the labelled candidates only (mask 1), each weighted by `weight` (default 1;
        training.position_bias); unlabelled ones get no gradient."""
        labelled = mask > 0
        losses = F.binary_cross_entropy_with_logits(logits, label.to(logits.dtype), reduction="none")
        if weight is not None:
            losses = losses * weight
        return torch.where(labelled, losses, 0.0).sum() / labelled.sum().clamp(min=1)


class ContextAwareReranker(Reranker):
    """CRBAN's frame (HUBSM and HUISM alike): DLCM's GRU over the initial list gives each candidate its encoding
    o_i (the candidate in its place, after the ones shown before it) and the request its local ranking context
    s (the final state); a subclass pools each behaviour type for each scored candidate (`attend`); an MLP
    scores [pooled behaviours..., o_i, s]."""

    def __init__(self, spec: dict, cfg: TrainConfig, pooled_dim: int):
        super().__init__(spec, cfg)
        self.context_gru = gru(self.candidate_dim, cfg, cfg.context_layers)
        self.heads = len(HEADS) if cfg.heads == "click_cart_buy" else 1
        self.values = (cfg.cart_value, cfg.buy_value)
        self.score = mlp(pooled_dim * len(self.behaviours) + 2 * cfg.hidden, cfg.mlp, self.heads)

    def ranked(self, outputs: Tensor, price_codes: Tensor) -> Tensor:
        """[N] the score the candidates are ranked by, from the scoring MLP's outputs [N, heads] and their
        price_level codes [N]: the click logit, or with click_cart_buy the value score (`value_score`)."""
        if self.heads == 1:
            return outputs.squeeze(-1)
        return value_score(outputs, price_units(price_codes).to(outputs.dtype), *self.values)

    def attend(self, x: Inputs, behaviour: str, candidate: Tensor, request: Tensor, match: Tensor) -> Tensor:
        """[N, pooled_dim]: the behaviours of each scored candidate's request, pooled with o_i as the query and
        the candidate's match indicators with each event ([N, L, M])."""
        raise NotImplementedError

    def forward(self, x: Inputs, scored: Tensor | None = None, heads: bool = False) -> Tensor:
        """[B, K] scores (`ranked`); with `heads`, [B, K, heads] the logits of each head."""
        features = self.candidate_features(x)  # [B, K, D]
        outputs, _ = self.context_gru(features)  # the context reads every candidate, scored or not
        request, flat = scored_positions(x, scored)
        candidate = outputs.flatten(0, 1).index_select(0, flat)  # [N, H]
        context = last_state(outputs, x.candidates).index_select(0, request)
        candidate_codes = match_codes(x.candidate_item, x.candidate).flatten(0, 1).index_select(0, flat)  # [N, M]
        parts = [self.attend(x, b, candidate, request, match_indicators(
                     candidate_codes, match_codes(getattr(x, f"{b}_item"), getattr(x, b)).index_select(0, request)))
                 for b in self.behaviours]
        outputs = self.score(torch.cat([*parts, candidate, context], dim=-1))  # [N, heads]
        if heads:
            return torch.stack([scatter_scores(o, flat, features.shape) for o in outputs.unbind(-1)], dim=-1)
        price = x.candidate[..., PRICE_INDEX].flatten().index_select(0, flat)
        return scatter_scores(self.ranked(outputs, price), flat, features.shape)
