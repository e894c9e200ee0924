"""The project's data contracts, defined once: raw client log v1, the item catalog, the client's re-ranking hook
(`policy`), the bundle (`bundle`) and the feature spec's digest (`digest`)."""

from edgerec.contracts.catalog import CATALOG_ARROW_SCHEMA, ItemRecord
from edgerec.contracts.raw_log import (
    ACTION_NAMES,
    DELETE_REASONS,
    EVENT_MODELS,
    EVENT_TYPES,
    RERANK_TRIGGERS,
    RawEvent,
    parse_event,
)
from edgerec.contracts.validate import BadRowReason, LogValidator, ValidationReport

__all__ = [
    "ACTION_NAMES",
    "BadRowReason",
    "CATALOG_ARROW_SCHEMA",
    "DELETE_REASONS",
    "EVENT_MODELS",
    "EVENT_TYPES",
    "ItemRecord",
    "LogValidator",
    "RERANK_TRIGGERS",
    "RawEvent",
    "ValidationReport",
    "parse_event",
]
