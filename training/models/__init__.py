"""The re-rankers of the paper's Table 2, by registry name, in the table's order."""

from __future__ import annotations

from edgerec.errors import ConfigError
from training.config import TrainConfig
from training.models.base import Inputs, Reranker
from training.models.crban import CRBAN, CRBANIE, CRBANIPV
from training.models.crban_huism import CRBANHUISM
from training.models.dlcm import DLCM
from training.models.dnn_rank import DNNRank

MODELS: dict[str, type[Reranker]] = {m.name: m for m in (DNNRank, DLCM, CRBANIE, CRBANIPV, CRBANHUISM, CRBAN)}
FULL_MODEL = CRBAN.name  # the model the pipeline ships
BASELINE = DLCM.name  # relative gains are against it, as in the paper
# GAUC of each in the paper's Table 2 (Mobile Taobao), for the comparison table
PAPER_GAUC = {"dnn_rank": 0.62531, "dlcm": 0.63552, "crban_hubsm_ie": 0.63818, "crban_hubsm_ipv": 0.64039,
              "crban_huism_ie_ipv": 0.64283, "crban_hubsm_ie_ipv": 0.64825}


def build_model(name: str, spec: dict, cfg: TrainConfig) -> Reranker:
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name](spec, cfg)


__all__ = ["BASELINE", "FULL_MODEL", "MODELS", "PAPER_GAUC", "Inputs", "Reranker", "build_model"]
