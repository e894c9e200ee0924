"""The recall models, in the order of the comparison: the two PWPRec towers, then the baselines."""

from __future__ import annotations

import torch

from training.recall.config import RecallConfig
from training.recall.data import ITEM_FEATURES, Catalog
from training.recall.models.base import ItemTower, TwoTower
from training.recall.models.comirec_sa import ComiRecSA
from training.recall.models.gru4rec import GRU4RecEnhanced
from training.recall.models.pwprec_ls import PWPRecLS
from training.recall.models.pwprec_mi import PWPRecMI
from training.recall.models.sasrec import SASRec

RECALL_MODELS: dict[str, type[TwoTower]] = {m.key: m for m in (PWPRecLS, PWPRecMI, GRU4RecEnhanced, SASRec,
                                                                 ComiRecSA)}
REGISTERED = PWPRecLS.key  # the model the daily run registers and ships


def build(key: str, catalog: Catalog, cfg: RecallConfig, width: int) -> TwoTower:
    items = ItemTower(torch.from_numpy(catalog.codes), torch.from_numpy(catalog.item_ids),
                      [len(catalog.vocabularies[f]) for f in ITEM_FEATURES], cfg)
    return RECALL_MODELS[key](items, cfg, width)
