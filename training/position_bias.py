"""Position-bias corrections in training (docs/exploration.md): every logged label came from the order that was shown,
and a candidate shown further down is clicked less because fewer users look that far, whatever it is worth.

- `feature`: the display position as a training-only input. A learned offset per position is added to the model's
  logit in the loss (click = examination x relevance is additive in the logit's odds, for rare clicks), so the
  network need not explain the shown position by the candidate's features. Scoring drops it: one offset for every
  candidate, that of position 0, would not change the order, so the shipped graph is the model's own.
- `ipw`: each click weighs 1 / e[position], e the examination curve estimated from the exploration bucket
  (`edgerec logs positions --json`), clipped below at `propensity_clip` so that a rare click at an unlikely position
  cannot dominate a batch (the variance of inverse weights). Non-clicks weigh 1.

Both read `Batch.shown_position`, the position where each labelled candidate was shown.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from edgerec.errors import ConfigError, MissingInput
from training.config import TrainConfig

MODES = ("none", "feature", "ipw")


class PositionOffsets(nn.Module):
    """A logit offset per display position (positions past the last share its offset), 0 at the start."""

    def __init__(self, positions: int):
        super().__init__()
        self.offset = nn.Embedding(positions, 1)
        nn.init.zeros_(self.offset.weight)

    def forward(self, logits: Tensor, shown: Tensor) -> Tensor:
        """[B, K] logits as if the candidates had been judged where they were shown ([B, K] positions)."""
        return logits + self.offset(shown.clamp(0, self.offset.num_embeddings - 1)).squeeze(-1)

    def curve(self) -> np.ndarray:
        """The learned examination of each position relative to the first, exp(offset - offset[0])."""
        offsets = self.offset.weight.detach().squeeze(-1).cpu().numpy().astype(np.float64)
        return np.exp(offsets - offsets[0])


def read_propensities(path: Path, positions: int) -> np.ndarray:
    """The examination of positions 0..positions-1 from a curve written by `edgerec logs positions --json` (bands of
    positions "a-b" with their estimate): a position takes its band's estimate; a band without one (no click in its
    windows) and positions past the last band take the nearest estimate before them."""
    if not path.is_file():
        raise MissingInput(f"no examination curve at {path} (train_config.propensities); write one with "
                           "`edgerec logs positions RAW/events --json > FILE` (docs/exploration.md)")
    try:
        bands = json.loads(path.read_text())["bands"]
        spans = [tuple(int(x) for x in b["positions"].split("-")) for b in bands]
        estimates = [float(b["estimate"]) for b in bands]
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ConfigError(f"{path} is not an examination curve of `edgerec logs positions --json` "
                          f"(bands with positions 'a-b' and an estimate): {type(e).__name__}: {e}") from None
    curve = np.full(positions, np.nan)
    for (first, last), estimate in zip(spans, estimates, strict=True):
        curve[first:min(last, positions - 1) + 1] = estimate
    if not curve[0] > 0:
        raise ConfigError(f"{path}: the first position has no estimate; the curve is relative to it")
    for p in range(1, positions):  # carried forward over gaps and past the last band
        if not curve[p] > 0:
            curve[p] = curve[p - 1]
    return curve


def click_weights(label: Tensor, shown: Tensor, propensity: Tensor, clip: float) -> Tensor:
    """[B, K] loss weights: 1 / max(e[shown], clip) for a click, 1 otherwise (`propensity` [P]; positions past it
    take its last)."""
    examined = propensity[shown.clamp(0, len(propensity) - 1)].clamp(min=clip)
    return torch.where(label > 0, 1.0 / examined, torch.ones_like(examined))


class PositionCorrection:
    """The training loss under one mode of MODES: the model's masked cross-entropy of the logits offset by the shown
    positions (`feature`), or weighted by their inverse examination (`ipw`), or as it is (`none`)."""

    def __init__(self, mode: str, positions: int, propensity: np.ndarray | None = None, clip: float = 0.1):
        if mode not in MODES:
            raise ConfigError(f"unknown position-bias correction {mode!r}; choose one of {', '.join(MODES)}")
        if mode == "ipw" and propensity is None:
            raise ConfigError("train_config.position_bias=ipw needs train_config.propensities, an examination curve "
                              "(`edgerec logs positions RAW/events --json > FILE`)")
        self.mode = mode
        self.offsets = PositionOffsets(positions) if mode == "feature" else None
        self.propensity = None if mode != "ipw" else torch.as_tensor(propensity, dtype=torch.float32)
        self.clip = clip

    @classmethod
    def of(cls, cfg: TrainConfig, positions: int) -> PositionCorrection:
        """The correction a TrainConfig asks for, over display positions 0..positions-1 (the lists' width)."""
        propensity = read_propensities(cfg.propensities, positions) if cfg.position_bias == "ipw" else None
        return cls(cfg.position_bias, positions, propensity, cfg.propensity_clip)

    def parameters(self) -> list[nn.Parameter]:
        """What the optimizer trains beside the model (the offsets)."""
        return [] if self.offsets is None else list(self.offsets.parameters())

    def to(self, device: torch.device) -> PositionCorrection:
        if self.offsets is not None:
            self.offsets.to(device)
        if self.propensity is not None:
            self.propensity = self.propensity.to(device)
        return self

    def loss(self, model: nn.Module, logits: Tensor, label: Tensor, mask: Tensor, shown: Tensor) -> Tensor:
        if self.offsets is not None:
            return model.loss(self.offsets(logits, shown), label, mask)
        if self.propensity is not None:
            return model.loss(logits, label, mask, click_weights(label, shown, self.propensity, self.clip))
        return model.loss(logits, label, mask)
