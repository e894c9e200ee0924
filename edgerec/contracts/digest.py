"""The feature spec's digest: what a bundle, the servability gate and the phone compare to know that two sides
encode features the same way."""

from __future__ import annotations

import hashlib
import json


def canonical_sha(spec: dict) -> str:
    """sha256 of the spec without its own `sha256` field, keys sorted, no whitespace."""
    body = {k: v for k, v in spec.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
