"""Release actions on the channels (`edgerec release ...`): promote, rollback, gc, status and list.

Every action that changes something holds the release lock (an exclusive-create object on the CDN, so two
release managers, or a manager and the daily DAG, cannot interleave), appends to the audit log and, for a
channel move, moves the MLflow alias named like the channel. A pointer is only ever flipped to a version that
carries both blessings and passes `verify` at that moment; when anything fails, the channels stay as they were.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from contextlib import contextmanager
from dataclasses import dataclass

from deploy.cdn import LOCKS, MODELS, model_key
from deploy.channels import CHANNEL_NAMES, Pointer, check_channel, new_pointer, read_channel, write_channel
from deploy.push import releasable
from deploy.targets import Targets
from deploy.verify import VerifyReport, verify_version
from edgerec import registry
from edgerec.contracts.bundle import MANIFEST
from edgerec.errors import EdgeRecError

LOCK = f"{LOCKS}/release"


class ReleaseError(EdgeRecError):
    """A release action that was refused; the channels are as they were."""


class ReleaseLocked(ReleaseError):
    """Another release action holds the lock."""


@contextmanager
def release_lock(targets: Targets, action: str):
    holder = {"by": targets.actor, "action": action, "pid": os.getpid(), "host": socket.gethostname(),
              "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    if not targets.cdn.create_exclusive(LOCK, json.dumps(holder).encode()):
        raw = targets.cdn.get_bytes(LOCK)
        other = json.loads(raw) if raw else {}
        raise ReleaseLocked(f"another release action holds the lock: {other.get('action', '?')} by "
                            f"{other.get('by', '?')} (pid {other.get('pid', '?')} on {other.get('host', '?')}) since "
                            f"{other.get('since', '?')}. Retry when it is done; if that process died, delete "
                            f"{targets.cdn.url}/{LOCK}")
    try:
        yield
    finally:
        targets.cdn.delete([LOCK])


def _verified(targets: Targets, client, version: str) -> VerifyReport:
    found = releasable(client, version)
    report = verify_version(targets.kv, targets.cdn, found.id, found.tags, targets.key)
    if not report.passed:
        raise ReleaseError(f"{found.id} fails verification: {'; '.join(report.failures)}")
    return report


def _move_alias(client, channel: str, version_id: str) -> None:
    found = registry.find_version(client, version_id)
    client.set_registered_model_alias(registry.REGISTERED_MODEL, channel, found.number)


def promote(settings, targets: Targets, version: str, channel: str, percent: float, reason: str) -> Pointer:
    """Point `channel` at `version` for `percent` of devices (re-promoting the current version changes only the
    percentage)."""
    check_channel(channel)
    if not 0 <= percent <= 100:
        raise ReleaseError(f"rollout percent {percent} is outside 0..100")
    client = registry.connect(settings)
    vid = registry.find_version(client, version).id
    with release_lock(targets, f"promote {vid} to {channel}"):
        current = read_channel(targets.cdn, channel, targets.key)
        _verified(targets, client, vid)
        previous = current.previous if current and current.version == vid else current.version if current else None
        pointer = new_pointer(vid, previous, percent, targets.actor, targets.key)
        write_channel(targets.cdn, channel, pointer)
        _move_alias(client, channel, vid)
        targets.audit("promote", channel=channel, **{"from": current.version if current else None}, to=vid,
                      percent=percent, why=reason)
    return pointer


def rollback(settings, targets: Targets, channel: str, reason: str) -> Pointer:
    """Point `channel` back at its previous version (which must still verify); the rolled-back version becomes
    the previous one, so `rollback` again rolls forward."""
    check_channel(channel)
    client = registry.connect(settings)
    with release_lock(targets, f"rollback {channel}"):
        current = read_channel(targets.cdn, channel, targets.key)
        if current is None or current.previous is None:
            raise ReleaseError(f"channel {channel} has no previous version to roll back to "
                               f"(current: {current.version if current else 'none'})")
        _verified(targets, client, current.previous)
        pointer = new_pointer(current.previous, current.version, current.rollout_percent, targets.actor, targets.key)
        write_channel(targets.cdn, channel, pointer)
        _move_alias(client, channel, current.previous)
        targets.audit("rollback", channel=channel, **{"from": current.version}, to=current.previous,
                      percent=current.rollout_percent, why=reason)
    return pointer


def channel_pointers(targets: Targets) -> dict[str, Pointer | None]:
    return {name: read_channel(targets.cdn, name, targets.key) for name in CHANNEL_NAMES}


@dataclass(frozen=True)
class DeployedVersion:
    version: str
    deployed_at: str | None
    in_kv: bool
    on_cdn: bool
    held_by: tuple[str, ...]  # "canary", "stable:previous", ...

    def age_days(self, now: dt.datetime) -> float | None:
        if self.deployed_at is None:
            return None
        return (now - dt.datetime.fromisoformat(self.deployed_at)).total_seconds() / 86_400


def deployed_versions(targets: Targets) -> list[DeployedVersion]:
    pointers = channel_pointers(targets)
    holders: dict[str, list[str]] = {}
    for name, p in pointers.items():
        if p:
            holders.setdefault(p.version, []).append(name)
            if p.previous:
                holders.setdefault(p.previous, []).append(f"{name}:previous")
    in_kv = set(targets.kv.versions())
    on_cdn = {k.split("/")[1] for k in targets.cdn.list(f"{MODELS}/") if k.count("/") >= 2}
    out = []
    for v in sorted(in_kv | on_cdn | set(holders)):
        record = targets.kv.get_index(v) if v in in_kv else None
        deployed_at = record["deployed_at"] if record else None
        if deployed_at is None and v in on_cdn:
            raw = targets.cdn.get_bytes(model_key(v, MANIFEST))
            deployed_at = json.loads(raw)["created_at"] if raw else None
        out.append(DeployedVersion(v, deployed_at, v in in_kv, v in on_cdn, tuple(holders.get(v, ()))))
    return out


def gc(settings, targets: Targets, retention_days: float, dry_run: bool = False,
       now: dt.datetime | None = None) -> list[DeployedVersion]:
    """Remove the embeddings and bundle files of versions that no channel holds (as current or previous) and that
    are older than the retention. Returns what was (or, with dry_run, would be) removed."""
    now = now or dt.datetime.now(dt.UTC)
    with release_lock(targets, "gc"):
        doomed = [v for v in deployed_versions(targets)
                  if not v.held_by and (v.age_days(now) or 0.0) > retention_days]
        if dry_run:
            return doomed
        for v in doomed:
            record = targets.kv.get_index(v.version)
            if record:
                targets.kv.delete_version(v.version, {n: t["rows"] for n, t in record["tables"].items()})
            keys = targets.cdn.list(model_key(v.version))
            # the manifest goes first: a bundle without it is incomplete to every reader
            targets.cdn.delete([k for k in keys if k.endswith(f"/{MANIFEST}")])
            targets.cdn.delete([k for k in keys if not k.endswith(f"/{MANIFEST}")])
            targets.audit("gc", version=v.version, deployed_at=v.deployed_at, why=f"older than {retention_days} "
                          f"days and held by no channel")
    return doomed


def plan_release(settings, action: str, channel: str, version: str) -> str:
    """What a release action would do, after verifying its target (for the approval step); ReleaseError if it
    would be refused."""
    from deploy.targets import open_targets

    check_channel(channel)
    targets = open_targets(settings)
    try:
        current = read_channel(targets.cdn, channel, targets.key)
        client = registry.connect(settings)
        target = current.previous if action == "rollback" and current else version
        if not target:
            raise ReleaseError(f"nothing to {action} on {channel} (current: {current.version if current else 'none'})")
        report = _verified(targets, client, target)
    finally:
        targets.close()
    frm = current.version if current else "none"
    return f"{action} {channel}: {frm} -> {report.version}\n\n{report.to_markdown()}"
