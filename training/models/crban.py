"""CRBAN+HUBSM (the paper's Sec. 4): context-aware re-ranking with behaviour attention over heterogeneous user
behaviour sequences, for IE and IPV together or for one of them.

HUBSM encodes a behaviour sequence with separate multi-layer GRUs over its action features and over its item
features and fuses them by concatenation. The time decay (the event's age at the trigger) is the one feature
that changes after the event, so it stays out of the GRUs: its embedding is added to the keys at each re-rank.
The GRUs then see only what is fixed when the event is over, and the phone runs one step per event (export).

CRBAN encodes the candidate list in its initial order with a GRU, as DLCM does: the output o_i at a candidate is
its encoding (the candidate in its place in the list, after the ones shown before it), the final state s the local
ranking context. Each candidate attends (Bahdanau) to the behaviours with o_i as the query, the keys (item
encodings plus age) and the fused encodings as values; an MLP scores [c_IE, c_IPV, o_i, s]. The attention also
reads whether each event shares the candidate's category and brand, can attend to a null event when nothing in
the history concerns the candidate, keeps a soft count of the events it attends to and pools the match indicators
with the values (base.BahdanauAttention says why).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from edgerec.features import AGE_INDEX, GROUPS
from training.config import TrainConfig
from training.models.base import (
    N_ITEM,
    N_ITEM_PART,
    BahdanauAttention,
    CodeEmbedding,
    ContextAwareReranker,
    EventAge,
    Inputs,
    by_length,
    gru,
    vocab_sizes,
)


class BehaviourEncoder(nn.Module):
    """HUBSM for one behaviour type: GRU over the actions, GRU over the items, concatenated; the keys are the item
    encodings plus the embedding of each event's age at the trigger.

    items [B, L, item_dim] (item table rows), codes [B, L, F] (GROUPS[group] order) -> (keys [B, L, H],
    fused encodings [B, L, 2H]).
    """

    def __init__(self, spec: dict, group: str, item_dim: int, cfg: TrainConfig):
        super().__init__()
        names = GROUPS[group]
        self.age_index = AGE_INDEX[group]
        self.action_index = [i for i in range(N_ITEM_PART, len(names)) if i != self.age_index]
        self.item_codes = CodeEmbedding(vocab_sizes(spec, names[N_ITEM:N_ITEM_PART]), cfg.code_embedding_dim)
        self.action_codes = CodeEmbedding(vocab_sizes(spec, [names[i] for i in self.action_index]),
                                          cfg.code_embedding_dim)
        self.item_gru = gru(item_dim + self.item_codes.dim, cfg)
        self.action_gru = gru(self.action_codes.dim, cfg)
        self.age = EventAge(spec, group, cfg.hidden)

    def event_inputs(self, items: Tensor, codes: Tensor) -> tuple[Tensor, Tensor]:
        """The inputs of the item GRU and of the action GRU: everything fixed once the event is over."""
        return (torch.cat([items, self.item_codes(codes[..., N_ITEM:N_ITEM_PART])], dim=-1),
                self.action_codes(codes[..., self.action_index]))

    def keys(self, item_enc: Tensor, age: Tensor) -> Tensor:
        """Attention keys from stored item encodings [..., H] and the events' age codes [...] at the trigger."""
        return self.age.add_to(item_enc, age)

    def encodings(self, items: Tensor, codes: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(item encodings [B, L, H], fused encodings [B, L, 2H]): what the phone stores per event. With the rows'
        `lengths`, the GRUs run rows of similar length together (`by_length`): the same at the real steps, not after
        them."""
        item_in, action_in = self.event_inputs(items, codes)
        if lengths is None:
            (item_enc, _), (action_enc, _) = self.item_gru(item_in), self.action_gru(action_in)
        else:
            item_enc, action_enc = by_length(self.item_gru, item_in, lengths), by_length(self.action_gru, action_in,
                                                                                         lengths)
        return item_enc, torch.cat([action_enc, item_enc], dim=-1)

    def forward(self, items: Tensor, codes: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        item_enc, fused = self.encodings(items, codes, lengths)
        return self.keys(item_enc, codes[..., self.age_index]), fused


class CRBAN(ContextAwareReranker):
    """CRBAN+HUBSM over both behaviour types, the paper's full model."""

    name = "crban_hubsm_ie_ipv"
    title = "CRBAN+HUBSM(IE&IPV)"
    behaviours = ("ie", "ipv")
    # 2: the attention's softmax runs over a null event too (same weights as revision 1); 3: the match indicators are
    # pooled too, and rarely seen item rows read the out-of-vocabulary row (ItemTables.restrict); 4: the item itself
    # (same item id) is a match indicator beside category and brand
    revision = 4

    def __init__(self, spec: dict, cfg: TrainConfig):
        # the fused encodings' pool, the soft count and the pooled match indicators
        super().__init__(spec, cfg, pooled_dim=BahdanauAttention.pooled_dim(2 * cfg.hidden))
        self.encoders = nn.ModuleDict({b: BehaviourEncoder(spec, b, self.items.dim, cfg) for b in self.behaviours})
        self.attention = nn.ModuleDict({b: BahdanauAttention(cfg.hidden, cfg.hidden, cfg.attention)
                                        for b in self.behaviours})

    def behaviour_encodings(self, x: Inputs, behaviour: str) -> tuple[Tensor, Tensor]:
        """(keys [B, L, H], fused encodings [B, L, 2H]) of one behaviour type."""
        codes, item_ids = getattr(x, behaviour), getattr(x, f"{behaviour}_item")
        return self.encoders[behaviour](self.items(codes[..., :N_ITEM], item_ids), codes,
                                        getattr(x, f"{behaviour}_length"))

    def attend(self, x: Inputs, behaviour: str, candidate: Tensor, request: Tensor, match: Tensor) -> Tensor:
        keys, values = self.behaviour_encodings(x, behaviour)
        return self.attention[behaviour](candidate, keys, values, getattr(x, f"{behaviour}_length"), request, match)


class CRBANIE(CRBAN):
    """CRBAN+HUBSM over item exposures only."""

    name = "crban_hubsm_ie"
    title = "CRBAN+HUBSM(IE)"
    behaviours = ("ie",)


class CRBANIPV(CRBAN):
    """CRBAN+HUBSM over item page views only."""

    name = "crban_hubsm_ipv"
    title = "CRBAN+HUBSM(IPV)"
    behaviours = ("ipv",)
