"""Release channel pointers (docs/design.md): `channels/{name}.json` on the CDN, the only mutable objects.

    {version, previous, rollout_percent, updated_at, by, channel, sequence, signature}
The signature is an HMAC-SHA256, with the release key, over the canonical JSON of the other fields: a pointer
written by anyone without the key (or edited by hand) is refused, never followed. It covers the channel's name,
so a pointer copied onto another channel is refused too, and a sequence number that only grows: the audit log
(`deploy.audit`) records each channel's, so an older signed pointer put back is found out (`deploy.release`).
Devices are assigned to a channel's rollout deterministically by a hash of their device id.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import NamedTuple

from deploy.cdn import CHANNELS, ObjectStore
from edgerec.errors import ConfigError, EdgeRecError

CHANNEL_NAMES = ("canary", "stable")  # the re-ranker's, followed by devices
RECALL_CHANNEL = "recall"  # the recall version the paging API serves candidates from, to every user
ALL_CHANNELS = (*CHANNEL_NAMES, RECALL_CHANNEL)
MIN_KEY_BYTES = 32
REPAIR = "`edgerec release repair` writes it again from the audit log"


class ForgedPointer(EdgeRecError):
    """A channel pointer that is not the one the release actions wrote: it is not followed. `edgerec release
    repair` writes the channel's pointer again from the audit log."""


class Rollout(NamedTuple):
    """What a channel serves: a version, to a share of the devices."""

    version: str
    rollout_percent: float


@dataclass(frozen=True)
class Pointer:
    version: str
    previous: str | None
    rollout_percent: float
    updated_at: str
    by: str
    channel: str
    sequence: int
    signature: str = ""

    def payload(self) -> bytes:
        fields = {k: v for k, v in asdict(self).items() if k != "signature"}
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()

    def signed(self, key: bytes) -> Pointer:
        return Pointer(**{**asdict(self), "signature": hmac.new(key, self.payload(), hashlib.sha256).hexdigest()})

    def valid(self, key: bytes) -> bool:
        return hmac.compare_digest(self.signed(key).signature, self.signature)


def channel_key(name: str) -> str:
    return f"{CHANNELS}/{name}.json"


def check_channel(name: str) -> str:
    if name not in ALL_CHANNELS:
        raise ConfigError(f"unknown channel {name!r}: the channels are {', '.join(ALL_CHANNELS)}")
    return name


def new_pointer(channel: str, sequence: int, version: str, previous: str | None, percent: float, by: str,
                key: bytes) -> Pointer:
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return Pointer(version, previous, float(percent), now, by, channel, sequence).signed(key)


def read_channel(cdn: ObjectStore, name: str, key: bytes) -> Pointer | None:
    """The channel's pointer, None if it was never set; ForgedPointer if it is not ours."""
    raw = cdn.get_bytes(channel_key(name))
    if raw is None:
        return None
    try:
        pointer = Pointer(**json.loads(raw))
    except (json.JSONDecodeError, TypeError) as e:
        raise ForgedPointer(f"{cdn.url}/{channel_key(name)} is not a channel pointer ({e}); {REPAIR}") from e
    where = f"{cdn.url}/{channel_key(name)}"
    if not pointer.valid(key):
        raise ForgedPointer(f"{where} has a signature that does not match the release key: it points to "
                            f"{pointer.version!r} but was not written by a release action; {REPAIR}")
    if pointer.channel != name:
        raise ForgedPointer(f"{where} is the {pointer.channel} channel's pointer (to {pointer.version}) copied onto "
                            f"{name}; {REPAIR}")
    return pointer


def write_channel(cdn: ObjectStore, name: str, pointer: Pointer) -> None:
    cdn.put_bytes(channel_key(name), json.dumps(asdict(pointer), indent=2).encode() + b"\n")


def in_rollout(device_id: str, channel: str, percent: float) -> bool:
    """Deterministic: the same device is in or out of a channel's rollout at a given percentage, and raising
    the percentage only adds devices."""
    bucket = int.from_bytes(hashlib.sha256(f"{channel}:{device_id}".encode()).digest()[:8], "big") % 10_000
    return bucket < round(percent * 100)


def assigned_version(device_id: str, pointers: Mapping[str, Pointer | Rollout | None]) -> str | None:
    """The version a device should run: canary's if the device is in its rollout, else stable's (None: no model
    yet, the client keeps the cloud's order)."""
    canary, stable = pointers.get("canary"), pointers.get("stable")
    if canary and in_rollout(device_id, "canary", canary.rollout_percent):
        return canary.version
    if stable and in_rollout(device_id, "stable", stable.rollout_percent):
        return stable.version
    return None


def load_key(explicit: str | None, key_file) -> bytes:
    """The release key: EDGEREC_RELEASE_KEY, else a random key created once in the state directory (embedded
    default only: every machine of a real deployment must share one key)."""
    if explicit:
        if len(explicit.encode()) < MIN_KEY_BYTES:
            raise ConfigError(f"EDGEREC_RELEASE_KEY is {len(explicit.encode())} bytes: a signing key needs at least "
                              f"{MIN_KEY_BYTES} (e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)")
        return explicit.encode()
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_hex(32))
        key_file.chmod(0o600)
    return key_file.read_text().strip().encode()
