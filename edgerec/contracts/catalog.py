"""Item catalog snapshot: raw/items/ds=YYYY-MM-DD/items.parquet, one row per item."""

from __future__ import annotations

from typing import Annotated

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

Level = Annotated[int, Field(ge=0)]
Score = Annotated[float, Field(ge=0.0, le=1.0)]


class ItemRecord(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, allow_inf_nan=False)

    item_id: Annotated[int, Field(ge=0)]
    category: Level
    brand: Level
    gender: Level  # 0 unisex, 1 female, 2 male
    price_level: Level
    age_level: Level
    bc_type: Level  # 0 B2C (Tmall), 1 C2C (Taobao)
    ctr_score: Score  # the cloud's estimated click-through rate
    cvr_score: Score  # the cloud's estimated conversion rate


_ARROW_TYPES = {int: pa.int64(), float: pa.float64()}
CATALOG_ARROW_SCHEMA = pa.schema(
    [pa.field(name, _ARROW_TYPES[f.annotation], nullable=False) for name, f in ItemRecord.model_fields.items()]
)


def price_units(level):
    """An item's price in units of the lowest price level's: level + 1. The catalog carries price levels, not prices,
    so every GMV figure (the training's GMV@k, the replay's GMV) is in these units; a catalog with prices would
    replace this one function."""
    return level + 1
