"""Release actions on the channels (`edgerec release ...`): promote, rollback, gc, status and list.

Every action that changes something holds the release lock (an exclusive-create object on the CDN, so two
release managers, or a manager and the daily DAG, cannot interleave), appends to the audit log and, for a
channel move, moves the MLflow alias named like the channel. A pointer is only ever flipped to a version that
carries both blessings and passes `verify` at that moment; when anything fails, the channels stay as they were.

A channel move is crash-safe: its `intent` is audited before the pointer is written and `done` after the alias
moved. The next release action (or `repair`) finishes a move whose pointer was written and abandons one whose
pointer was not. The lock carries its owner, host, pid and a lease: a lock whose process is gone (on this host)
or whose lease ran out is taken over, with an audit record. A pointer that is not the one the audit log says
(forged, copied from another channel, an older one put back, or one with no record) is refused (`ForgedPointer`)
until `repair` writes the channel's pointer again from the log's last completed move.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from contextlib import contextmanager
from dataclasses import dataclass

from deploy import audit
from deploy.cdn import LOCKS, MODELS, model_key, recall_key
from deploy.channels import (
    ALL_CHANNELS,
    CHANNEL_NAMES,
    RECALL_CHANNEL,
    REPAIR,
    ForgedPointer,
    Pointer,
    channel_key,
    check_channel,
    new_pointer,
    read_channel,
    write_channel,
)
from deploy.push import releasable
from deploy.recall import deployed_recall, recall_record, releasable_recall, remove_recall, verify_recall
from deploy.targets import Targets
from deploy.verify import VerifyReport, verify_version
from edgerec import registry
from edgerec.contracts.bundle import MANIFEST
from edgerec.errors import EdgeRecError

LOCK = f"{LOCKS}/release"
LEASE = dt.timedelta(minutes=30)  # longer than any release action (verify reads every embedding row)


class ReleaseError(EdgeRecError):
    """A release action that was refused; the channels are as they were."""


class ReleaseLocked(ReleaseError):
    """Another release action holds the lock."""


class HalfDone(ForgedPointer):
    """A channel move that did not finish (the process died): its pointer is not followed until the next release
    action or `repair` settles it."""


def _gone(holder: dict, now: dt.datetime) -> str | None:
    """Why a lock's holder can no longer hold it (its process is gone, its lease ran out), or None."""
    if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
        try:
            os.kill(holder["pid"], 0)
        except ProcessLookupError:
            return f"its process {holder['pid']} on {holder['host']} is gone"
        except PermissionError:
            pass  # alive, someone else's
    try:
        expires = dt.datetime.fromisoformat(holder["expires"])
    except (KeyError, TypeError, ValueError):
        return "it records no lease"
    return f"its lease ran out at {holder['expires']}" if now > expires else None


@contextmanager
def release_lock(targets: Targets, action: str):
    now = dt.datetime.now(dt.UTC)
    holder = {"by": targets.actor, "action": action, "pid": os.getpid(), "host": socket.gethostname(),
              "since": now.isoformat(timespec="seconds"), "expires": (now + LEASE).isoformat(timespec="seconds")}
    if not targets.cdn.create_exclusive(LOCK, json.dumps(holder).encode()):
        raw = targets.cdn.get_bytes(LOCK)
        try:
            other = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            other = {}
        why = _gone(other, now)
        if why is not None:  # taken over; of two takers at once, create_exclusive lets one win
            targets.cdn.delete([LOCK])
        if why is None or not targets.cdn.create_exclusive(LOCK, json.dumps(holder).encode()):
            raise ReleaseLocked(f"another release action holds the lock: {other.get('action', '?')} by "
                                f"{other.get('by', '?')} (pid {other.get('pid', '?')} on {other.get('host', '?')}) "
                                f"since {other.get('since', '?')}, lease until {other.get('expires', '?')}. Retry "
                                "when it is done; a lock whose process is gone or whose lease ran out is taken over")
        targets.audit("lock-takeover", held_by=other, because=why, for_action=action)
    try:
        yield
    finally:
        targets.cdn.delete([LOCK])


def current_pointer(targets: Targets, channel: str) -> Pointer | None:
    """The channel's pointer, checked against the audit log: ForgedPointer when it is not the one the log's last
    completed move wrote (an unfinished move is `HalfDone`, which the next action or `repair` settles)."""
    pointer = read_channel(targets.cdn, channel, targets.key)
    state = audit.channel_state(targets.audit_log, channel)
    applied = state.applied["sequence"] if state.applied else 0
    found = pointer.sequence if pointer else 0
    if state.pending and found in (applied, state.pending["sequence"]):
        raise HalfDone(f"a {state.pending['action']} of {channel} to {state.pending['to']} (sequence "
                       f"{state.pending['sequence']}, by {state.pending['by']} at {state.pending['at']}) did not "
                       "finish; the next release action or `edgerec release repair` settles it")
    if found != applied:
        where = f"{targets.cdn.url}/{channel_key(channel)}"
        said = (f"its last move was sequence {applied} (to {state.applied['to']})" if state.applied else
                "it records no move of this channel")
        kind = "an older pointer put back" if found < applied else "a pointer no release action recorded"
        raise ForgedPointer(f"{where} has sequence {found}, but the audit log {targets.audit_log} says {said}: "
                            f"{kind}; {REPAIR}")
    return pointer


def model_of(channel: str) -> str:
    """The registered model whose versions a channel points at (and whose alias, named like it, follows it)."""
    return registry.RECALL_MODEL if channel == RECALL_CHANNEL else registry.REGISTERED_MODEL


def _settle_all(targets: Targets, client) -> None:
    for channel in ALL_CHANNELS:
        _settle(targets, client, channel)


def _settle(targets: Targets, client, channel: str) -> None:
    """Finish a move whose pointer was written (the alias and `done`), or abandon one whose pointer was not."""
    state = audit.channel_state(targets.audit_log, channel)
    if not state.pending:
        return
    pending = state.pending
    pointer = read_channel(targets.cdn, channel, targets.key)
    record = {k: pending[k] for k in ("channel", "sequence", "from", "to", "previous", "percent", "why")}
    if pointer and pointer.sequence == pending["sequence"]:
        _move_alias(client, channel, pending["to"])
        targets.audit(pending["action"], phase="done", settled=True, **record)
    else:
        targets.audit(pending["action"], phase="abandoned", settled=True, **record)


def _move(settings, targets: Targets, client, action: str, channel: str, version: str, previous: str | None,
          percent: float, reason: str, current: Pointer | None) -> Pointer:
    """The crash-safe move: intent, pointer, alias, done."""
    sequence = audit.channel_state(targets.audit_log, channel).next_sequence
    pointer = new_pointer(channel, sequence, version, previous, percent, targets.actor, targets.key)
    record = {"channel": channel, "sequence": sequence, "from": current.version if current else None, "to": version,
              "previous": previous, "percent": percent, "why": reason}
    targets.audit(action, phase="intent", **record)
    write_channel(targets.cdn, channel, pointer)
    _move_alias(client, channel, version)
    targets.audit(action, phase="done", **record)
    return pointer


def _verified(targets: Targets, client, version: str, channels: bool = True, channel: str = "stable"
              ) -> VerifyReport:
    """The version's verification for `channel`, refused on any failure (but the channels' own when `channels` is
    False: a repair verifies the version it writes back while the pointer it replaces is broken)."""
    if channel == RECALL_CHANNEL:
        found = releasable_recall(client, version)
        report = verify_recall(targets, found.id, found.tags)
    else:
        found = releasable(client, version)
        report = verify_version(targets, found.id, found.tags)
    failures = [f"{f.check}: {f.detail}" for f in report.findings
                if not f.passed and (channels or not f.check.startswith("channel."))]
    if failures:
        raise ReleaseError(f"{found.id} fails verification: {'; '.join(failures)}")
    return report


def _move_alias(client, channel: str, version_id: str) -> None:
    found = registry.find_version(client, version_id, model_of(channel))
    client.set_registered_model_alias(model_of(channel), channel, found.number)


def promote(settings, targets: Targets, version: str, channel: str, percent: float, reason: str) -> Pointer:
    """Point `channel` at `version` for `percent` of devices (re-promoting the current version changes only the
    percentage)."""
    check_channel(channel)
    if not 0 <= percent <= 100:
        raise ReleaseError(f"rollout percent {percent} is outside 0..100")
    if channel == RECALL_CHANNEL and percent != 100:
        raise ReleaseError(f"the {RECALL_CHANNEL} channel serves every user: its rollout is 100%, not {percent}")
    client = registry.connect(settings)
    vid = registry.find_version(client, version, model_of(channel)).id
    with release_lock(targets, f"promote {vid} to {channel}"):
        _settle_all(targets, client)
        current = current_pointer(targets, channel)
        _verified(targets, client, vid, channel=channel)
        previous = current.previous if current and current.version == vid else current.version if current else None
        return _move(settings, targets, client, "promote", channel, vid, previous, percent, reason, current)


def rollback(settings, targets: Targets, channel: str, reason: str) -> Pointer:
    """Point `channel` back at its previous version (which must still verify); the rolled-back version becomes
    the previous one, so `rollback` again rolls forward."""
    check_channel(channel)
    client = registry.connect(settings)
    with release_lock(targets, f"rollback {channel}"):
        _settle_all(targets, client)
        current = current_pointer(targets, channel)
        if current is None or current.previous is None:
            raise ReleaseError(f"channel {channel} has no previous version to roll back to "
                               f"(current: {current.version if current else 'none'})")
        _verified(targets, client, current.previous, channel=channel)
        return _move(settings, targets, client, "rollback", channel, current.previous, current.version,
                     current.rollout_percent, reason, current)


def withdraw(settings, targets: Targets, channel: str, reason: str) -> Pointer:
    """Serve `channel`'s version to no device (rollout 0%): they fall back to stable's version or the cloud's order.
    The pointer keeps the version for the record (an audit `rollback`); a promote brings it back."""
    check_channel(channel)
    if channel == RECALL_CHANNEL:
        raise ReleaseError(f"the {RECALL_CHANNEL} channel cannot be withdrawn (the paging API needs candidates): roll "
                           "it back instead")
    client = registry.connect(settings)
    with release_lock(targets, f"withdraw {channel}"):
        _settle_all(targets, client)
        current = current_pointer(targets, channel)
        if current is None:
            raise ReleaseError(f"channel {channel} serves nothing to withdraw")
        return _move(settings, targets, client, "rollback", channel, current.version, current.previous, 0.0, reason,
                     current)


def hold(targets: Targets, channel: str, reason: str, on: bool = True) -> dict:
    """Pause (or, with on=False, resume) the guardrails' automation on `channel`; manual releases still work."""
    check_channel(channel)
    if not reason.strip():
        raise ReleaseError("a hold needs a reason")
    return targets.audit("hold" if on else "resume", channel=channel, why=reason)


def holding(targets: Targets, channel: str) -> dict | None:
    """The audit record of the hold in force on `channel`, None when automation runs."""
    last = None
    for record in audit.entries(targets.audit_log):
        if record.get("channel") == channel and record.get("action") in ("hold", "resume"):
            last = record
    return last if last and last["action"] == "hold" else None


def repair(settings, targets: Targets, reason: str) -> dict[str, str]:
    """Settle unfinished moves, then write again, from the audit log's last completed move, every channel whose
    pointer is not that move's (forged, copied, replayed, unrecorded or deleted). What was done, per channel."""
    client = registry.connect(settings)
    done = {}
    with release_lock(targets, "repair"):
        for channel in ALL_CHANNELS:
            before = audit.channel_state(targets.audit_log, channel).pending
            _settle(targets, client, channel)
            try:
                current_pointer(targets, channel)
                done[channel] = "settled an unfinished move" if before else "in order"
                continue
            except ForgedPointer as error:
                applied = audit.channel_state(targets.audit_log, channel).applied
                if applied is None:
                    targets.cdn.delete([channel_key(channel)])
                    targets.audit("repair", channel=channel, removed=str(error), why=reason)
                    done[channel] = "removed a pointer no release action wrote"
                    continue
                _verified(targets, client, applied["to"], channels=False, channel=channel)
                _move(settings, targets, client, "repair", channel, applied["to"], applied["previous"],
                      applied["percent"], f"{reason} (was: {error})", None)
                done[channel] = f"wrote the pointer to {applied['to']} again"
    return done


def channel_pointers(targets: Targets) -> dict[str, Pointer | None]:
    return {name: current_pointer(targets, name) for name in CHANNEL_NAMES}


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


def deployed_recall_versions(targets: Targets) -> list[DeployedVersion]:
    """The recall versions on the CDN, and which position of the recall channel holds each."""
    pointer = current_pointer(targets, RECALL_CHANNEL)
    holders = {pointer.version: RECALL_CHANNEL, pointer.previous: f"{RECALL_CHANNEL}:previous"} if pointer else {}
    out = []
    for v in deployed_recall(targets):
        record = recall_record(targets, v)
        deployed_at = record["deployed_at"] if record else None
        if deployed_at is None:
            raw = targets.cdn.get_bytes(recall_key(v, MANIFEST))
            deployed_at = json.loads(raw)["created_at"] if raw else None
        out.append(DeployedVersion(v, deployed_at, record is not None, True,
                                   tuple(h for k, h in holders.items() if k == v)))
    return out


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
    """Remove the embeddings and bundle files of versions (re-ranker and recall) that no channel holds (as current
    or previous) and that are older than the retention. Returns what was (or, with dry_run, would be) removed."""
    now = now or dt.datetime.now(dt.UTC)
    with release_lock(targets, "gc"):
        def old(versions: list[DeployedVersion]) -> list[DeployedVersion]:
            return [v for v in versions if not v.held_by and (v.age_days(now) or 0.0) > retention_days]

        doomed, recall = old(deployed_versions(targets)), old(deployed_recall_versions(targets))
        if dry_run:
            return doomed + recall
        for v in recall:
            remove_recall(targets, v.version)
            targets.audit("gc", model=registry.RECALL_MODEL, version=v.version, deployed_at=v.deployed_at,
                          why=f"older than {retention_days} days and held by no channel")
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
    return doomed + recall


def plan_release(settings, action: str, channel: str, version: str) -> str:
    """What a release action would do, after verifying its target (for the approval step); ReleaseError if it
    would be refused."""
    from deploy.targets import open_targets

    check_channel(channel)
    targets = open_targets(settings)
    try:
        current = current_pointer(targets, channel)
        client = registry.connect(settings)
        target = current.previous if action == "rollback" and current else version
        if action != "rollback" and target:
            target = registry.find_version(client, target, model_of(channel)).id
        if not target:
            raise ReleaseError(f"nothing to {action} on {channel} (current: {current.version if current else 'none'})")
        report = _verified(targets, client, target, channel=channel)
    finally:
        targets.close()
    frm = current.version if current else "none"
    return f"{action} {channel}: {frm} -> {report.version}\n\n{report.to_markdown()}"
