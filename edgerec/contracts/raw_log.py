"""Raw client log v1: one JSON object per line, gzipped, under raw/events/ds=YYYY-MM-DD/.

Only the fields a real client cannot do without are required; everything else has a default, so a
writer of real logs needs a small adapter only. Types are strict: a string where an int belongs is a
bad row, not something to coerce.
"""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator
from typing_extensions import TypedDict

EVENT_TYPES = ("page_request", "exposure", "click", "page_view", "delete", "rerank")
RERANK_TRIGGERS = ("page", "click", "delete", "exposed_k")
DELETE_REASONS = ("not_interested", "seen_before", "low_quality", "offensive", "other")
# The ten item-page-view actions of the paper's Table 1 (d2..d11), in feature order.
ACTION_NAMES = (
    "cart",
    "buy",
    "favorite",
    "comment",
    "select_sku",
    "ask",
    "customer_service",
    "detail",
    "shop",
    "recommendation",
)
MAX_CANDIDATES = 100
MAX_INT64 = 2**63 - 1  # columns are int64 downstream: a larger number is out of range, not a crash

NonNegInt = Annotated[int, Field(ge=0, le=MAX_INT64)]
NonNegFloat = Annotated[float, Field(ge=0.0)]
ItemId = Annotated[int, Field(ge=0, le=MAX_INT64)]
NonEmptyStr = Annotated[str, Field(min_length=1)]


class _Strict(BaseModel):
    # NaN and Infinity are not numbers a client measures; they would also poison bucket boundaries
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, allow_inf_nan=False)


class _Event(_Strict):
    event_id: NonEmptyStr
    user_id: NonEmptyStr
    ts: NonNegInt  # ms since epoch, UTC
    session_id: str | None = None  # sessionization splits on inactivity where missing
    device_id: str | None = None
    app_version: str | None = None
    model_version: str | None = None  # the on-device model the client ran, null when none


class Candidate(TypedDict):
    """A candidate stays a plain dict: page requests carry up to 100 of them, and objects cost."""

    __pydantic_config__ = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False)  # type: ignore[misc]
    item_id: ItemId
    rank: NonNegInt
    score: NotRequired[float]
    # what the cloud knows of the item as it serves the page, read by the device's business rules
    out_of_stock: NotRequired[bool]
    no_image: NotRequired[bool]


class PageRequest(_Event):
    event_type: Literal["page_request"]
    request_id: NonEmptyStr  # one page request of one user: another user's events never carry it
    page_no: NonNegInt = 0
    candidates: Annotated[list[Candidate], Field(max_length=MAX_CANDIDATES)]


class Exposure(_Event):
    event_type: Literal["exposure"]
    item_id: ItemId
    request_id: str | None = None
    position: NonNegInt = 0
    exposure_duration_ms: NonNegInt = 0
    scroll_speed: NonNegFloat = 0.0  # px per ms while the item was on screen
    scroll_duration_ms: NonNegInt = 0
    scroll_count: NonNegInt = 0


class Click(_Event):
    event_type: Literal["click"]
    item_id: ItemId
    request_id: str | None = None
    position: NonNegInt = 0


class Actions(_Strict):
    cart: bool = False
    buy: bool = False
    favorite: bool = False
    comment: bool = False
    select_sku: bool = False
    ask: bool = False
    customer_service: bool = False
    detail: bool = False
    shop: bool = False
    recommendation: bool = False


class PageView(_Event):
    event_type: Literal["page_view"]
    item_id: ItemId
    request_id: str | None = None
    ipv_duration_ms: NonNegInt = 0
    actions: Actions = Actions()


class Delete(_Event):
    event_type: Literal["delete"]
    item_id: ItemId
    request_id: str | None = None
    position: NonNegInt = 0
    reason: Literal[DELETE_REASONS] = "other"  # type: ignore[valid-type]


class Exploration(_Strict):
    """How a device of the exploration bucket shuffled the order it shows: within windows of `window` display
    positions whose boundaries sit at positions = offset (mod window) (edgerec.edge.exploration)."""

    window: Annotated[int, Field(ge=2, le=MAX_CANDIDATES)]
    offset: Annotated[int, Field(ge=0, lt=MAX_CANDIDATES)]

    @model_validator(mode="after")
    def _offset_within_window(self) -> Exploration:
        if self.offset >= self.window:
            raise ValueError(f"offset {self.offset} is not below window {self.window}")
        return self


class Rerank(_Event):
    event_type: Literal["rerank"]
    request_id: NonEmptyStr
    trigger: Literal[RERANK_TRIGGERS]  # type: ignore[valid-type]
    order: Annotated[list[ItemId], Field(max_length=MAX_CANDIDATES)]
    exploration: Exploration | None = None  # set by the exploration bucket's devices: the order was shuffled


EVENT_MODELS: dict[str, type[_Event]] = {
    "page_request": PageRequest,
    "exposure": Exposure,
    "click": Click,
    "page_view": PageView,
    "delete": Delete,
    "rerank": Rerank,
}

RawEvent = Annotated[
    PageRequest | Exposure | Click | PageView | Delete | Rerank, Field(discriminator="event_type")
]
_ADAPTER: TypeAdapter[RawEvent] = TypeAdapter(RawEvent)


def parse_event(line: str | bytes) -> PageRequest | Exposure | Click | PageView | Delete | Rerank:
    """Parse one JSON line into its event model; raises pydantic.ValidationError on a bad row."""
    return _ADAPTER.validate_json(line)


def item_ids_of(event: BaseModel) -> list[int]:
    """Every item id an event refers to (for the unknown-item check)."""
    if isinstance(event, PageRequest):
        return [c["item_id"] for c in event.candidates]
    if isinstance(event, Rerank):
        return list(event.order)
    return [event.item_id]  # type: ignore[attr-defined]
