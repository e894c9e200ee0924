"""Every ground-truth knob of the behaviour simulator, typed, with documented defaults and ranges.

The defaults describe a mobile waterfall feed in the spirit of the EdgeRec paper: the cloud answers a page
request with 100 ranked candidates of which 50 are displayed, it sees in-session behaviour only after a
delay, and the client re-ranks the unexposed candidates at every trigger.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edgerec.errors import ConfigError, build_config


class _Knobs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class WorldConfig(_Knobs):
    """The catalog and the users' long-term tastes."""

    n_items: int = Field(20_000, ge=100, le=10_000_000, description="items in the catalog")
    n_categories: int = Field(40, ge=2, le=10_000, description="leaf categories")
    brands_per_category: int = Field(8, ge=1, le=1_000, description="brands nested in each category")
    n_price_levels: int = Field(5, ge=1, le=20, description="price levels 0..n-1")
    n_age_levels: int = Field(6, ge=1, le=20, description="age levels 0..n-1")
    interests_per_user: int = Field(5, ge=1, le=20, description="long-term interest categories per user")
    interest_strength: float = Field(2.0, ge=0.0, le=10.0, description="logit of a user's mean interest")
    brand_affinity: float = Field(0.8, ge=0.0, le=10.0, description="logit bonus of a preferred brand")
    price_sensitivity: float = Field(0.5, ge=0.0, le=10.0, description="logit lost per price level of misfit")
    gender_mismatch: float = Field(1.0, ge=0.0, le=10.0, description="logit lost on an item of the other gender")
    age_sensitivity: float = Field(0.2, ge=0.0, le=10.0, description="logit lost per age level of misfit")
    quality_weight: float = Field(0.6, ge=0.0, le=10.0, description="logit per unit of latent item quality")
    score_noise: float = Field(0.5, ge=0.0, le=10.0, description="noise of ctr/cvr scores around the truth")
    cloud_noise: float = Field(0.3, ge=0.0, le=10.0, description="noise of the cloud ranker's utility estimate")
    brand_is_item: bool = Field(False, description="every item is its own brand (a log whose only item attribute "
                                                   "besides its category is its identity)")
    out_of_stock_share: float = Field(0.0, ge=0.0, le=1.0, description=(
        "items out of stock (flagged in the page's candidates; a page view of one never leads to a cart or a buy)"))
    no_image_share: float = Field(0.0, ge=0.0, le=1.0, description=(
        "items without an image (flagged in the page's candidates; they draw fewer clicks: "
        "behaviour.no_image_penalty)"))


class BehaviourConfig(_Knobs):
    """In-session dynamics, after the paper's observations."""

    sessions_per_day: float = Field(1.5, ge=0.0, le=100.0, description="mean sessions per user and day")
    base_click_logit: float = Field(-4.8, ge=-20.0, le=20.0, description="click logit of a neutral item")
    position_decay: float = Field(0.015, ge=0.0, le=1.0, description="examination decay per display position")
    click_boost_category: float = Field(1.0, ge=0.0, le=10.0, description="sudden preference after a click")
    click_boost_brand: float = Field(0.5, ge=0.0, le=10.0, description="sudden brand preference after a click")
    deep_action_boost: float = Field(0.4, ge=0.0, le=10.0, description="extra boost after cart/buy/favorite")
    short_term_cap: float = Field(1.5, ge=0.0, le=20.0, description="short-term boosts saturate at this logit")
    short_term_half_life_s: float = Field(300.0, gt=0.0, le=86_400.0, description="decay of short-term boosts")
    fatigue_per_exposure: float = Field(0.2, ge=0.0, le=10.0, description="logit lost per unclicked exposure")
    long_exposure_ms: int = Field(1_500, ge=1, le=60_000, description="exposures at least this long are long")
    long_exposure_fatigue: float = Field(0.3, ge=0.0, le=1.0, description="fatigue weight of a long exposure")
    delete_rate: float = Field(0.04, ge=0.0, le=1.0, description="peak probability of a delete on a bad item")
    delete_penalty: float = Field(2.0, ge=0.0, le=10.0, description="category logit lost after a delete")
    leave_base: float = Field(0.004, ge=0.0, le=1.0, description="probability to leave after any exposure")
    leave_per_miss: float = Field(0.0008, ge=0.0, le=1.0, description="extra leave probability per miss in a row")
    explore_share: float = Field(0.25, ge=0.0, le=1.0, description="candidates from outside long-term interests")
    no_image_penalty: float = Field(1.0, ge=0.0, le=10.0, description=(
        "click logit lost by an item shown without an image (world.no_image_share)"))
    revisit_boost: float = Field(0.0, ge=0.0, le=20.0,
                                 description="click logit gained by an item the user viewed earlier in the session, "
                                             "decaying with the short-term half-life (0: no return to items)")


class ClientConfig(_Knobs):
    """The cloud/client protocol."""

    candidates_per_request: int = Field(100, ge=1, le=100, description="candidates the cloud returns at most")
    min_candidates_per_request: int | None = Field(
        None, ge=1, le=100, description="fewest candidates the cloud returns; each request draws its list length "
                                        "uniformly in [this, candidates_per_request] (None: always the most)")
    cloud_scores: bool = Field(True, description="the cloud logs a score per candidate (False: its rank alone)")
    reshow_viewed: float = Field(0.0, ge=0.0, le=1.0,
                                 description="probability that each item the user viewed earlier in the session is "
                                             "among a page's candidates again, as a search result page lists it "
                                             "again (0: never; exposed items otherwise never come back)")
    exploration_share: float = Field(0.0, ge=0.0, le=1.0, description=(
        "devices in the exploration bucket (by a hash of the device id): each order they show is shuffled within "
        "windows of exploration_window display positions and logged as such (0: none)"))
    exploration_window: int = Field(5, ge=2, le=100, description="display positions an exploration window spans")
    page_size: int = Field(50, ge=1, le=100, description="items displayed per page")
    max_pages: int = Field(8, ge=1, le=1_000, description="page requests per session at most")
    max_per_category: int = Field(15, ge=1, le=100, description="the cloud's cap on candidates per category")
    trigger_k: int = Field(5, ge=1, le=100, description="exposures without a click that trigger a re-rank")
    cloud_delay_s: float = Field(60.0, ge=0.0, le=86_400.0, description="delay before the cloud sees behaviour")
    app_version: str = Field("10.12.0", description="app version written into every event")


class SimConfig(_Knobs):
    """A simulated world: who, how long, which seed, and the ground truth."""

    users: int = Field(1_000, ge=1, le=100_000_000, description="simulated users")
    days: int = Field(1, ge=1, le=3_660, description="simulated days")
    seed: int = Field(7, ge=0, le=2**32 - 1, description="seed of everything random")
    start_date: dt.date = Field(dt.date(2026, 11, 1), description="the first simulated day (UTC)")
    corrupt_rate: float = Field(0.0, ge=0.0, le=0.5, description="share of log lines made bad on purpose")
    world: WorldConfig = WorldConfig()
    behaviour: BehaviourConfig = BehaviourConfig()
    client: ClientConfig = ClientConfig()

    @model_validator(mode="after")
    def _list_lengths(self) -> SimConfig:
        low = self.client.min_candidates_per_request
        if low is not None and low > self.client.candidates_per_request:
            raise ValueError(f"client.min_candidates_per_request ({low}) is above client.candidates_per_request "
                             f"({self.client.candidates_per_request})")
        return self

    @property
    def dates(self) -> list[dt.date]:
        return [self.start_date + dt.timedelta(days=d) for d in range(self.days)]


# Named worlds: knob values over the defaults. docs/worlds.md says what each property is for.
WORLDS: dict[str, dict] = {
    # the EdgeRec paper's feed: 100 scored candidates, 50 shown a page, in-session interest in categories and brands
    "default": {},
    # what public session logs have and the default world lacks: users return to items they viewed earlier in the
    # session (about 40% of clicks), short lists of 20-30 items, no cloud scores, a catalog of 100k items with
    # brand = item identity, and a click on most lists
    "revisit": {
        "world": {"n_items": 100_000, "n_categories": 200, "brand_is_item": True},
        "behaviour": {"revisit_boost": 6, "base_click_logit": -4.2, "position_decay": 0.03,
                      "leave_base": 0.02, "sessions_per_day": 1.2, "short_term_half_life_s": 900.0},
        "client": {"candidates_per_request": 30, "min_candidates_per_request": 20, "page_size": 30,
                   "cloud_scores": False, "reshow_viewed": 0.9, "max_pages": 12, "max_per_category": 30},
    },
}


def _merge(base: dict, update: dict) -> dict:
    merged = dict(base)
    for key, value in update.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) \
            else value
    return merged


def load_sim_config(path: Path | None = None, preset: str | None = None, **overrides) -> SimConfig:
    """A named world's knobs (WORLDS; default "default"), updated by a JSON file (nested like SimConfig), updated by
    explicit overrides (a nested section such as world={...} updates that section knob by knob)."""
    if preset is not None and preset not in WORLDS:
        raise ConfigError(f"unknown simulated world {preset!r}; known: {', '.join(WORLDS)}")
    values: dict = _merge(WORLDS[preset or "default"], json.loads(Path(path).read_text()) if path else {})
    values = _merge(values, {k: v for k, v in overrides.items() if v is not None})
    for section, model in (("world", WorldConfig), ("behaviour", BehaviourConfig), ("client", ClientConfig)):
        if isinstance(values.get(section), dict):
            values[section] = build_config(model, values[section], prefix=f"{section}.")
    return build_config(SimConfig, values)
