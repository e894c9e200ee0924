"""Device tokens of the paging API: `Authorization: Bearer <device id>.<expiry>.<mac>`.

The mac is an HMAC-SHA256, with the serving key (EDGEREC_SERVING_TOKEN_KEY), over "<device id>.<expiry>"; the
expiry is a Unix time in seconds. The app's login issues one per device; `edgerec serve --token DEVICE` mints one
by hand. A token answers for its own device only: a request about another device is refused (403).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

from edgerec.errors import ConfigError

MIN_KEY_BYTES = 32


class TokenRefused(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclass(frozen=True)
class DeviceTokens:
    key: bytes

    def __post_init__(self):
        if len(self.key) < MIN_KEY_BYTES:
            raise ConfigError(f"EDGEREC_SERVING_TOKEN_KEY is {len(self.key)} bytes: device tokens need a key of at "
                              f"least {MIN_KEY_BYTES}")

    def _mac(self, device_id: str, expires: int) -> str:
        return hmac.new(self.key, f"{device_id}.{expires}".encode(), hashlib.sha256).hexdigest()

    def issue(self, device_id: str, ttl_s: int = 30 * 86_400, now: float | None = None) -> str:
        expires = int((time.time() if now is None else now) + ttl_s)
        return f"{device_id}.{expires}.{self._mac(device_id, expires)}"

    def device(self, authorization: str | None, now: float | None = None) -> str:
        """The device a bearer token was issued to; TokenRefused (401) when it is missing, malformed, forged or
        expired."""
        if not authorization or not authorization.startswith("Bearer "):
            raise TokenRefused(401, "a device token is required: Authorization: Bearer <token>")
        parts = authorization.removeprefix("Bearer ").rsplit(".", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            raise TokenRefused(401, "the device token is malformed")
        device_id, expires, mac = parts[0], int(parts[1]), parts[2]
        if not hmac.compare_digest(self._mac(device_id, expires), mac):
            raise TokenRefused(401, "the device token's signature does not match")
        if expires < (time.time() if now is None else now):
            raise TokenRefused(401, "the device token has expired")
        return device_id
