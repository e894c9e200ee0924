"""The deploy targets of the configured environment: key-value store, CDN origin, release key, audit log."""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass
from pathlib import Path

from deploy import audit
from deploy.cdn import ObjectStore, open_cdn
from deploy.channels import load_key
from deploy.kv import KVStore, open_kv
from edgerec.config import Settings
from edgerec.contracts.signing import trusted_keys


@dataclass
class Targets:
    kv: KVStore
    cdn: ObjectStore
    key: bytes
    actor: str
    audit_log: Path
    journals: Path
    trusted: dict  # key id -> Ed25519 public key a shipped bundle may be signed with

    def audit(self, action: str, **fields) -> dict:
        """Append one record to the hash-chained audit log: who, when, what (channel, from, to, why...)."""
        return audit.append(self.audit_log, self.actor, action, **fields)

    def close(self) -> None:
        self.kv.close()


def release_key(settings: Settings) -> bytes:
    """The key channel pointers are signed with (deploy.channels.load_key)."""
    return load_key(settings.release.key, settings.release_dir / "release.key")


def open_targets(settings: Settings) -> Targets:
    actor = settings.release.actor or f"{getpass.getuser()}@{socket.gethostname()}"
    return Targets(open_kv(settings.kv_store), open_cdn(settings.cdn_origin), release_key(settings), actor,
                   settings.release_dir / "audit.jsonl", settings.release_dir / "deploys",
                   trusted_keys(settings.trusted_keys_dir))
