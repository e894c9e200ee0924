"""Typed training configuration. Defaults follow the paper (Gong et al. 2020, Sec. 5.1): batch 512, Adam, 3 GRU
layers of 32 hidden units, attention 32, MLP 32. The paper does not give its epochs; ours are picked by early
stopping on a held-out share of the train requests (the weights of the best epoch are kept).

The learning rate is not the paper's 0.005. The paper trains on Taobao's traffic; a day of ours is about 10k
requests, 20 batches of 512. At 0.005 the behaviour attention had not moved off the list order after 6 epochs
(CRBAN+HUBSM(IE) within 0.02% of DLCM); 0.015, falling to 0 over the epochs on a cosine, lets it learn in a few
epochs and settle after.

Values come from `EDGEREC_TRAIN_*` environment variables (edgerec.config) or from keyword overrides; a bad value
fails naming the field and its allowed range.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from edgerec.errors import ConfigError


def knobs(path: Path | None, **overrides) -> dict:
    """A config's values: the JSON file's (when given), then the overrides that are set."""
    values = json.loads(path.read_text()) if path else {}
    return values | {k: v for k, v in overrides.items() if v is not None}


def select_models(value: str, choices: list[str], always: str, setting: str) -> list[str]:
    """A comma-separated list of models (or `all`) in the order of `choices`, with `always` among them; an unknown
    name fails naming `setting` and the choices."""
    if value.strip() == "all":
        return list(choices)
    names = {n.strip() for n in value.split(",") if n.strip()}
    unknown = names - set(choices)
    if unknown:
        raise ConfigError(f"{setting}: unknown model(s) {', '.join(sorted(unknown))}; choose from "
                          f"{', '.join(choices)} or all")
    return [n for n in choices if n in names | {always}]


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_requests: int = Field(512, ge=1, le=65_536, description="requests per batch (all their candidates)")
    lr: float = Field(0.015, gt=0.0, le=1.0, description="Adam learning rate (the first epoch's under the cosine "
                                                         "schedule)")
    lr_schedule: Literal["cosine", "constant"] = Field(
        "cosine", description="cosine: each epoch's rate falls from lr towards 0 over `epochs` (half a cosine); "
                              "constant: lr throughout")
    warm_start_lr: float = Field(0.005, gt=0.0, le=1.0,
                                 description="the first epoch's rate of a model started from its parent version's "
                                             "weights (EDGEREC_TRAIN_WARM_START): a smaller step than from random "
                                             "weights, which would throw away what the parent learned")
    epochs: int = Field(10, ge=1, le=1_000, description="most passes over the train split (early stopping may end it)")
    patience: int = Field(3, ge=1, le=1_000,
                          description="stop after this many epochs without a better validation GAUC")
    validation_share: float = Field(0.1, ge=0.0, lt=1.0,
                                    description="share of train requests held out to pick the best epoch "
                                                "(0: no early stopping, train all epochs)")
    gru_layers: int = Field(3, ge=1, le=8, description="layers of the behaviour encoders' GRUs and DLCM's list GRU")
    context_layers: int = Field(3, ge=1, le=8,
                                description="layers of the CRBAN models' GRU over the candidate list: it runs at every "
                                            "re-rank on the phone, so it is the largest share of its cost")
    hidden: int = Field(32, ge=1, le=1_024, description="hidden units of every GRU")
    attention: int = Field(32, ge=1, le=1_024, description="units of the behaviour attention")
    mlp: int = Field(32, ge=1, le=1_024, description="units of the scoring MLP's hidden layer")
    item_embedding_dim: int = Field(8, ge=1, le=256, description="width of each item table (p1..p6, item_id)")
    code_embedding_dim: int = Field(4, ge=1, le=256, description="width of each bucketized/action feature's table")
    item_id_buckets: int = Field(0, ge=0, le=100_000_000,
                                 description="rows of the optional hashed item_id table (0: no item_id feature)")
    min_item_count: int = Field(10, ge=0, le=1_000_000,
                                description="an item table row read fewer times than this by the train requests is "
                                            "not learned: it reads the table's out-of-vocabulary row (0: learn all)")
    heads: Literal["click", "click_cart_buy"] = Field(
        "click", description="what the CRBAN models learn (training/models/base.py, docs/design.md): the click; or "
                             "click, cart given a click and buy given a click over the shared network, ranked by "
                             "p(click) x (1 + cart_value p(cart|click) + buy_value p(buy|click) x price)")
    cart_value: float = Field(0.5, ge=0.0, le=100.0, description="click_cart_buy: the weight of a cart in the score")
    buy_value: float = Field(1.0, ge=0.0, le=100.0,
                             description="click_cart_buy: the weight of a purchase, per price unit, in the score")
    position_bias: Literal["none", "feature", "ipw"] = Field(
        "none", description="correction of the labels' position bias (training/position_bias.py, docs/exploration.md): "
                            "none; feature: the shown position as a training-only logit offset; ipw: clicks weighted "
                            "by 1 / examination of their position, from `propensities`")
    propensities: Path | None = Field(None, description="examination curve for ipw, as `edgerec logs positions "
                                                        "RAW/events --json` writes it")
    propensity_clip: float = Field(0.1, gt=0.0, le=1.0,
                                   description="ipw: the smallest examination a weight divides by")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="seed of weights and batch order")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when present, else CPU")
