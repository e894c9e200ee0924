"""The simulated world: a catalog with latent quality and users with long-term tastes.

Everything is drawn from numpy Generators seeded by (seed, purpose, index), so a user or a day can be
simulated alone and still equal its part of a larger run.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa

from edgerec.contracts import CATALOG_ARROW_SCHEMA
from edgerec.sim.config import WorldConfig

FIRST_ITEM_ID = 1  # 0 stays free for padding in feature tables
_CATALOG, _USER, _SESSION, _CORRUPT, _FLAGS = 1, 2, 3, 4, 5


def rng_for(seed: int, purpose: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, purpose, *keys])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class Catalog:
    """Items sorted by category, so the items of category c are rows cat_start[c] .. cat_start[c+1]-1."""

    item_id: np.ndarray
    category: np.ndarray
    brand: np.ndarray
    gender: np.ndarray
    price_level: np.ndarray
    age_level: np.ndarray
    bc_type: np.ndarray
    quality: np.ndarray  # latent; the cloud only sees it through the noisy scores
    ctr_score: np.ndarray
    cvr_score: np.ndarray
    cat_start: np.ndarray
    cat_popularity: np.ndarray
    out_of_stock: np.ndarray  # bool; the cloud flags it in the page's candidates, not in the catalog snapshot
    no_image: np.ndarray  # bool; likewise

    def __len__(self) -> int:
        return len(self.item_id)

    def row_of(self, item_ids: np.ndarray) -> np.ndarray:
        return np.asarray(item_ids) - FIRST_ITEM_ID

    @cached_property
    def known_ids(self) -> frozenset[int]:
        return frozenset(self.item_id.tolist())

    def to_arrow(self) -> pa.Table:
        columns = {name: getattr(self, name) for name in CATALOG_ARROW_SCHEMA.names}
        return pa.table(columns, schema=CATALOG_ARROW_SCHEMA)


def build_catalog(cfg: WorldConfig, seed: int) -> Catalog:
    rng = rng_for(seed, _CATALOG)
    n, n_cat = cfg.n_items, cfg.n_categories
    popularity = rng.dirichlet(np.full(n_cat, 2.0))
    counts = np.maximum(1, np.floor(popularity * (n - n_cat)).astype(np.int64) + 1)
    counts[np.argmax(counts)] += n - counts.sum()
    category = np.repeat(np.arange(n_cat), counts)
    cat_start = np.concatenate([[0], np.cumsum(counts)])

    # brands nested in categories, with a head and a tail inside each category
    brand_weights = 1.0 / np.arange(1, cfg.brands_per_category + 1)
    brand_weights /= brand_weights.sum()
    brand = category * cfg.brands_per_category + rng.choice(cfg.brands_per_category, size=n, p=brand_weights)
    if cfg.brand_is_item:  # drawn all the same, so the other attributes equal the nested-brand world's
        brand = np.arange(n)

    # each category leans female, male or unisex; each has its own price band
    lean = rng.choice(3, size=n_cat, p=[0.4, 0.35, 0.25])
    gender = np.where(rng.random(n) < 0.8, lean[category], rng.choice(3, size=n))
    price_centre = rng.integers(0, cfg.n_price_levels, size=n_cat)
    price_level = np.clip(price_centre[category] + rng.integers(-1, 2, size=n), 0, cfg.n_price_levels - 1)
    age_level = rng.integers(0, cfg.n_age_levels, size=n)
    bc_type = (rng.random(n) < 0.6).astype(np.int64)
    quality = rng.standard_normal(n)
    ctr_score = _sigmoid(-3.0 + 0.8 * quality + cfg.score_noise * rng.standard_normal(n))
    cvr_score = _sigmoid(-4.5 + 0.6 * quality + cfg.score_noise * rng.standard_normal(n))
    flags = rng_for(seed, _FLAGS).random((2, n))  # an rng of their own: the other attributes stay as they were
    return Catalog(
        item_id=np.arange(FIRST_ITEM_ID, FIRST_ITEM_ID + n, dtype=np.int64),
        category=category.astype(np.int64),
        brand=brand.astype(np.int64),
        gender=gender.astype(np.int64),
        price_level=price_level.astype(np.int64),
        age_level=age_level.astype(np.int64),
        bc_type=bc_type,
        quality=quality,
        ctr_score=np.round(ctr_score, 6),
        cvr_score=np.round(cvr_score, 6),
        cat_start=cat_start,
        cat_popularity=popularity,
        out_of_stock=flags[0] < cfg.out_of_stock_share,
        no_image=flags[1] < cfg.no_image_share,
    )


@dataclass(frozen=True)
class User:
    index: int
    user_id: str
    device_id: str
    interest_cats: np.ndarray  # long-term interest categories
    interest_weights: np.ndarray  # a sparse mixture over them, sums to 1
    category_affinity: np.ndarray  # logit per category (0 outside the interests)
    preferred_brands: np.ndarray
    brand_mask: np.ndarray  # preferred_brands as a boolean lookup over all brands
    price_level: int
    gender: int  # 1 female, 2 male
    age_level: int


def build_user(cfg: WorldConfig, catalog: Catalog, seed: int, index: int) -> User:
    rng = rng_for(seed, _USER, index)
    n_cat = len(catalog.cat_popularity)
    k = min(cfg.interests_per_user, n_cat)
    cats = rng.choice(n_cat, size=k, replace=False, p=catalog.cat_popularity)
    weights = rng.dirichlet(np.ones(k))
    affinity = np.zeros(n_cat)
    affinity[cats] = cfg.interest_strength * (0.75 + 0.25 * k * weights)
    brands = np.unique([c * cfg.brands_per_category + b for c in cats for b in
                        rng.choice(cfg.brands_per_category, size=min(2, cfg.brands_per_category), replace=False)])
    if cfg.brand_is_item:  # a brand of one item is no taste; drawn all the same to keep the rng's sequence
        brands = np.empty(0, dtype=np.int64)
    brand_mask = np.zeros(int(catalog.brand.max()) + 1, dtype=bool)
    brand_mask[brands] = True
    return User(
        index=index,
        user_id=f"u{index:07d}",
        device_id=f"dev-{index:07d}",
        interest_cats=cats,
        interest_weights=weights,
        category_affinity=affinity,
        preferred_brands=brands,
        brand_mask=brand_mask,
        price_level=int(rng.integers(0, cfg.n_price_levels)),
        gender=int(rng.integers(1, 3)),
        age_level=int(rng.integers(0, cfg.n_age_levels)),
    )


def long_term_utility(cfg: WorldConfig, catalog: Catalog, user: User, rows: np.ndarray) -> np.ndarray:
    """The user's true long-term click logit offset for catalog rows (before session dynamics)."""
    brand_bonus = user.brand_mask[catalog.brand[rows]]
    gender = catalog.gender[rows]
    return (
        user.category_affinity[catalog.category[rows]]
        + cfg.brand_affinity * brand_bonus
        - cfg.price_sensitivity * np.abs(catalog.price_level[rows] - user.price_level)
        - cfg.gender_mismatch * ((gender != 0) & (gender != user.gender))
        - cfg.age_sensitivity * np.abs(catalog.age_level[rows] - user.age_level)
        + cfg.quality_weight * catalog.quality[rows]
    )


def price_fit(catalog: Catalog, user: User, rows: np.ndarray) -> np.ndarray:
    return -np.abs(catalog.price_level[rows] - user.price_level).astype(float)
