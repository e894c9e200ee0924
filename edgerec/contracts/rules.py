"""Business rules the device applies after scoring: the `rules` section of a bundle's manifest.

The rules ship inside the signed manifest, so the device enforces the rules the release gates replayed, and a
change of rules is a new version. A manifest without the section applies none (the bundles before the rules).
What each rule reads comes with the page's candidates (`raw_log.Candidate`: `out_of_stock`, `no_image`) and the
item catalog (the category). `edgerec.edge.rules` applies them; docs/rules.md says when to turn each on.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

RULES_RUNTIME_VERSION = 5  # the first edge runtime that applies the rules


class CategoryCap(BaseModel):
    """At most `max_items` candidates of one category in any `window` consecutive places of the shown order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_items: int = Field(ge=1, le=100, description="candidates of one category at most in any window")
    window: int = Field(ge=2, le=100, description="consecutive places a window spans")

    @model_validator(mode="after")
    def _binds(self) -> CategoryCap:
        if self.max_items >= self.window:
            raise ValueError(f"max_items ({self.max_items}) must be below window ({self.window}), or the cap never "
                             "binds")
        return self


class BusinessRules(BaseModel):
    """The rule set; the defaults apply none."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    remove_out_of_stock: bool = Field(False, description="candidates the page flags out of stock are not shown")
    demote_no_image: float = Field(1.0, gt=0.0, le=1.0, description=(
        "factor on the click probability of candidates the page flags without an image (1: no demotion)"))
    category_cap: CategoryCap | None = Field(None, description="at most N of one category in any window of W")

    @property
    def active(self) -> bool:
        return self.remove_out_of_stock or self.demote_no_image < 1.0 or self.category_cap is not None

    def describe(self) -> str:
        parts = (["remove out of stock"] if self.remove_out_of_stock else []) + (
            [f"demote no image x{self.demote_no_image:g}"] if self.demote_no_image < 1.0 else []) + (
            [f"at most {self.category_cap.max_items} of a category in any {self.category_cap.window}"]
            if self.category_cap else [])
        return ", ".join(parts) or "none"


def manifest_rules(manifest: dict) -> BusinessRules:
    """The rules a manifest ships (none without the section); ValueError naming the problem when they are bad, or
    when they are active in a bundle that names a runtime older than the first to apply them (which would serve the
    bundle without them)."""
    values = manifest.get("rules")
    rules = BusinessRules() if values is None else BusinessRules.model_validate(values)
    if rules.active and manifest.get("min_runtime_version", 0) < RULES_RUNTIME_VERSION:
        raise ValueError(f"rules ({rules.describe()}) in a bundle for runtime version "
                         f"{manifest.get('min_runtime_version', 0)}; they need {RULES_RUNTIME_VERSION}")
    return rules
