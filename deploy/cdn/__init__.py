"""The CDN origin that clients fetch bundles and channel pointers from (docs/design.md):

    models/{version}/...        immutable: never rewritten with other bytes (Cache-Control: immutable)
    recall/{version}/...        the recall's bundles, immutable too (read by the paging API, not by devices)
    channels/{name}.json        the small signed pointers, the only mutable objects (short max-age)
    locks/{name}                exclusive-create objects that serialize release actions

Backends chosen by URL: a local directory (embedded default, servable by any static HTTP server:
`python -m http.server -d $EDGEREC_HOME/cdn`) or S3 (`s3://bucket/prefix[?endpoint_url=...&region=...&max_attempts=6]`).
"""

from __future__ import annotations

import abc
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from edgerec.errors import EdgeRecError

IMMUTABLE = "public, max-age=31536000, immutable"
SHORT = "public, max-age=60"
MODELS, RECALL, CHANNELS, LOCKS = "models", "recall", "channels", "locks"
MAX_S3_ATTEMPTS = 6  # each request, throttling (503 SlowDown) included, with backoff


class CDNError(EdgeRecError):
    """The origin cannot be reached or refused a request; the message names the object."""


class ImmutableObjectError(CDNError):
    """An immutable object exists with other bytes: it is never rewritten."""


def model_key(version: str, path: str = "") -> str:
    return f"{MODELS}/{version}/{path}" if path else f"{MODELS}/{version}/"


def recall_key(version: str, path: str = "") -> str:
    return f"{RECALL}/{version}/{path}" if path else f"{RECALL}/{version}/"


def cache_control(key: str) -> str:
    return IMMUTABLE if key.startswith((f"{MODELS}/", f"{RECALL}/")) else SHORT


class ObjectStore(abc.ABC):
    url: str

    @abc.abstractmethod
    def put_file(self, key: str, path: Path, sha256: str) -> None:
        """Upload a file; its sha256 is recorded with the object (S3 metadata) for cheap resume checks."""

    @abc.abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Replace an object atomically: readers see the old bytes or the new, never a mix."""

    @abc.abstractmethod
    def create_exclusive(self, key: str, data: bytes) -> bool:
        """Create the object only if it does not exist; False when it does."""

    @abc.abstractmethod
    def get_bytes(self, key: str) -> bytes | None: ...

    @abc.abstractmethod
    def recorded_sha256(self, key: str) -> str | None:
        """The sha256 recorded at upload (None if the object is missing); `get_bytes` proves it."""

    @abc.abstractmethod
    def list(self, prefix: str) -> list[str]: ...

    @abc.abstractmethod
    def delete(self, keys: list[str]) -> None: ...

    def put_immutable(self, key: str, path: Path, sha256: str) -> bool:
        """Upload unless the same bytes are there already; refuse to overwrite other bytes. True if uploaded."""
        recorded = self.recorded_sha256(key)
        if recorded == sha256:
            return False
        if recorded is not None:
            raise ImmutableObjectError(f"{self.url}/{key} exists with sha256 {recorded[:12]}…, not {sha256[:12]}…: "
                                       f"objects under {MODELS}/ and {RECALL}/ are never rewritten; export a new "
                                       "version")
        self.put_file(key, path, sha256)
        return True


def open_cdn(url: str) -> ObjectStore:
    parts = urlsplit(url)
    if parts.scheme in ("", "file"):
        from deploy.cdn.local import LocalDirectory

        return LocalDirectory(Path(parts.path))
    if parts.scheme == "s3":
        from deploy.cdn.s3 import S3Origin

        options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        return S3Origin(parts.netloc, parts.path.strip("/"), endpoint_url=options.get("endpoint_url"),
                        region=options.get("region"), max_attempts=int(options.get("max_attempts", MAX_S3_ATTEMPTS)))
    raise CDNError(f"unknown CDN origin {url!r}: use a directory (file:///path) or s3://bucket/prefix")
