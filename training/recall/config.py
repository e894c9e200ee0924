"""Typed configuration of the recall models. Values follow the PWPRec paper where it gives them (a causal
transformer user tower, softmax cross-entropy with an inverse temperature, 10 global negatives per positive for
the session-based task, batch negatives for the user-based one, 1,000 sampled negatives in evaluation); the
widths are small, for a day of a few thousand clicks."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

TASKS = ("user", "session")  # homepage-style (the user's interactions over days) and VIP-style (this session's)


class RecallConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    dim: int = Field(64, ge=4, le=1_024, description="width of the item and user embeddings")
    feature_dim: int = Field(16, ge=1, le=256, description="width of each item feature's table (p1..p6)")
    item_id_buckets: int = Field(65_536, ge=0, le=100_000_000,
                                 description="rows of the hashed item-id table of the item tower (0: features only)")
    layers: int = Field(2, ge=1, le=8, description="transformer layers of the user towers that have them")
    heads: int = Field(2, ge=1, le=16, description="attention heads of each transformer layer")
    interests: int = Field(4, ge=1, le=32, description="interests of the multi-interest towers (K)")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout inside the transformer layers")
    inverse_temperature: float = Field(20.0, gt=0.0, le=1_000.0,
                                       description="scale of the cosine logits in the softmax cross-entropy")
    global_negatives: int = Field(10, ge=1, le=10_000,
                                  description="negatives per positive, drawn from the catalog (session-based task)")
    eval_negatives: int = Field(1_000, ge=1, le=100_000, description="sampled negatives per test click")
    batch: int = Field(256, ge=2, le=65_536, description="samples per batch")
    lr: float = Field(0.002, gt=0.0, le=1.0, description="Adam learning rate")
    epochs: int = Field(8, ge=1, le=1_000, description="passes over the train samples")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="seed of weights, batch order and training negatives")
    eval_seed: int = Field(0, ge=0, le=2**31 - 1,
                           description="seed of the evaluation's sampled negatives (apart, so that seeds of the "
                                       "models are compared on the same candidates)")
    task: Literal["user", "session"] = Field("user", description="the task of the registered model")
