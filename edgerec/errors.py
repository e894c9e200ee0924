"""The one error base of the project, and readable errors for configuration problems.

Every problem a user can act on (bad configuration, a missing input, data that breaks a contract, a version that
may not ship) is an `EdgeRecError`: the CLI prints its message alone and exits with its `exit_code`. Any other
exception is a bug and shows its traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

_RANGE_WORDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


def with_notes(error: BaseException) -> str:
    """The error's message and then its notes (`add_note`: where it happened), on one line."""
    return str(error) + "".join(f" ({note})" for note in getattr(error, "__notes__", ()))


class EdgeRecError(Exception):
    """A problem with the configuration, the inputs or the state, named in the message."""

    exit_code = 1


class ConfigError(EdgeRecError):
    """A configuration value (or a command-line option) is missing, unknown or out of its allowed range; the
    message names it."""

    exit_code = 2


class MissingInput(EdgeRecError):
    """What a stage reads is not there: the message names it and the stage that makes it."""


class NoTrainingData(EdgeRecError):
    """The train or test mart of the day is empty (the first day of a deployment has no train days)."""


class NotBlessed(EdgeRecError):
    """A version the evaluation gate did not bless: it may not be exported or deployed."""


class ContractError(EdgeRecError):
    """Data that breaks one of the contracts (a feature spec, the item catalog, a partition name)."""


def allowed_range(model: type[BaseModel], loc: tuple) -> str:
    """' (allowed: >= a and <= b)' from a field's bounds, or ''."""
    field = model.model_fields.get(str(loc[0])) if loc else None
    if field is None:
        return ""
    bounds = [
        f"{word} {getattr(m, key)}"
        for m in field.metadata
        for key, word in _RANGE_WORDS.items()
        if getattr(m, key, None) is not None
    ]
    return f" (allowed: {' and '.join(bounds)})" if bounds else ""


def config_error(model: type[BaseModel], error: ValidationError, prefix: str = "") -> ConfigError:
    """Turn a pydantic error on a config model into one message per bad field, with its allowed range."""
    lines = []
    for e in error.errors(include_url=False):
        name = prefix + ".".join(str(p) for p in e["loc"])
        name = name.upper() if prefix.isupper() else name  # environment variables read as EDGEREC_X
        lines.append(f"{name} = {e.get('input')!r}: {e['msg']}{allowed_range(model, e['loc'])}")
    return ConfigError("invalid configuration:\n  " + "\n  ".join(lines))


def build_config(model: type[M], values: dict, prefix: str = "") -> M:
    try:
        return model(**values)
    except ValidationError as error:
        raise config_error(model, error, prefix) from None


def json_config(model: type[M], path: Path | None, variable: str) -> M:
    """`model` from the JSON object in the file that setting `variable` names (its defaults when None); a file that
    cannot be read, is no JSON object or holds a bad value fails naming the setting and the file."""
    try:
        values = json.loads(Path(path).read_text()) if path else {}
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{variable}={path} is not a readable JSON file: {e}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{variable}={path} holds a {type(values).__name__}, not a JSON object")
    return build_config(model, values, prefix=f"{variable.removeprefix('EDGEREC_').lower()}.")
