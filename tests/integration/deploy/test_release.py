"""Release channels: verify, promote, rollback, gc; signed pointers, the lock, the audit log, MLflow aliases."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from deploy import audit
from deploy.cdn import model_key
from deploy.channels import ForgedPointer, Pointer, assigned_version, channel_key, in_rollout, read_channel
from deploy.push import deploy_version
from deploy.release import (
    LOCK,
    HalfDone,
    ReleaseError,
    ReleaseLocked,
    current_pointer,
    deployed_versions,
    gc,
    promote,
    repair,
    rollback,
)
from deploy.verify import verify_version
from edgerec import registry
from edgerec.errors import ConfigError
from pipeline.cli import app
from tests.integration.deploy.conftest import V1, V2, V3

pytestmark = pytest.mark.integration
KEY = b"k"


def alias(settings, name: str) -> str:
    client = registry.connect(settings)
    return client.get_model_version_by_alias(registry.REGISTERED_MODEL, name).tags[registry.VERSION_TAG]


def tags(settings, version: str) -> dict:
    return registry.find_version(registry.connect(settings), version).tags


def test_pointers_are_signed_and_a_forged_one_is_refused():
    pointer = Pointer("v2", "v1", 10.0, "2026-11-23T00:00:00+00:00", "alice", "canary", 3).signed(KEY)
    assert pointer.valid(KEY) and not pointer.valid(b"other key")
    forged = Pointer(**{**pointer.__dict__, "version": "v9"})
    assert not forged.valid(KEY)
    for field, value in (("channel", "stable"), ("sequence", 2)):  # the name and the order are signed too
        assert not Pointer(**{**pointer.__dict__, field: value}).valid(KEY)


def test_rollout_is_deterministic_and_grows_with_the_percentage():
    devices = [f"device-{i}" for i in range(10_000)]
    at10 = {d for d in devices if in_rollout(d, "canary", 10)}
    at50 = {d for d in devices if in_rollout(d, "canary", 50)}
    assert 900 < len(at10) < 1100 and at10 < at50 and 4800 < len(at50) < 5200
    assert at10 == {d for d in devices if in_rollout(d, "canary", 10)}
    assert not any(in_rollout(d, "canary", 0) for d in devices[:100])
    stable = Pointer("v1", None, 100.0, "", "", "stable", 1)
    canary = Pointer("v2", "v1", 10.0, "", "", "canary", 1)
    inside = next(iter(at10))
    outside = next(d for d in devices if d not in at10)
    assert assigned_version(inside, {"canary": canary, "stable": stable}) == "v2"
    assert assigned_version(outside, {"canary": canary, "stable": stable}) == "v1"
    assert assigned_version(outside, {"canary": canary, "stable": None}) is None  # cloud order until stable exists


def test_verify_reports_every_synchronization_check(released):
    settings, targets = released()
    deploy_version(settings, targets, V1)
    report = verify_version(targets, V1, tags(settings, V1))
    assert report.passed, report.failures
    assert [f.check for f in report.findings] == [
        "cdn.manifest", "cdn.files", "shipped", "kv.index", "kv.table.category", "kv.table.brand", "kv.table.gender",
        "kv.table.price_level", "kv.table.age_level", "kv.table.bc_type", "signature", "feature_spec",
        "channel.canary", "channel.stable"]
    targets.kv.delete_version(V1, {"brand": 322})  # the rows (and the index record) are gone
    targets.cdn.put_bytes(model_key(V1, "feature_spec.json"), b"{}")  # a tampered object on the CDN
    broken = verify_version(targets, V1, {**tags(settings, V1), "feature_spec_sha": "0" * 64})
    assert not broken.passed
    failures = "\n".join(broken.failures)
    assert "cdn.files: feature_spec.json has sha256" in failures
    assert "kv.index: " in failures and "is missing (the push did not complete)" in failures
    assert "feature_spec: manifest" in failures and "mlflow tag feature_spec_sha 000000000000" in failures


def test_promote_rollback_and_their_record(released):
    settings, targets = released()
    for v in (V1, V2):
        deploy_version(settings, targets, v)
    promote(settings, targets, V1, "stable", 100, "first release")
    promote(settings, targets, V2, "stable", 50, "daily")
    pointer = read_channel(targets.cdn, "stable", targets.key)
    assert (pointer.version, pointer.previous, pointer.rollout_percent, pointer.by) == (V2, V1, 50.0, "alice")
    assert alias(settings, "stable") == V2
    back = rollback(settings, targets, "stable", "bad CTR")
    assert (back.version, back.previous) == (V1, V2) and alias(settings, "stable") == V1
    forward = rollback(settings, targets, "stable", "false alarm")
    assert (forward.version, forward.previous) == (V2, V1)
    audit = [json.loads(line) for line in targets.audit_log.read_text().splitlines() if '"done"' in line]
    assert [(a["action"], a["from"], a["to"], a["why"], a["by"]) for a in audit] == [
        ("promote", None, V1, "first release", "alice"), ("promote", V1, V2, "daily", "alice"),
        ("rollback", V2, V1, "bad CTR", "alice"), ("rollback", V1, V2, "false alarm", "alice")]
    with pytest.raises(ReleaseError, match="channel canary has no previous version"):
        rollback(settings, targets, "canary", "nothing there")


def test_a_version_that_fails_verification_never_moves_a_channel(released):
    settings, targets = released()
    deploy_version(settings, targets, V1)
    promote(settings, targets, V1, "canary", 10, "day 1")
    before = targets.cdn.get_bytes(channel_key("canary"))
    with pytest.raises(ReleaseError, match=f"{V2} fails verification: cdn.manifest"):
        promote(settings, targets, V2, "canary", 10, "not deployed")  # nothing of V2 on the CDN or in the KV
    deploy_version(settings, targets, V2)
    record = targets.kv.get_index(V2)
    targets.kv.delete_version(V2, {n: t["rows"] for n, t in record["tables"].items()})
    targets.kv.put_index(V2, record)  # the index record survived, the rows did not
    with pytest.raises(ReleaseError, match="kv.table.category: 42 of 42 rows missing"):
        promote(settings, targets, V2, "canary", 10, "rows lost")
    with pytest.raises(ConfigError, match="unknown channel 'beta'"):
        promote(settings, targets, V1, "beta", 10, "typo")
    assert targets.cdn.get_bytes(channel_key("canary")) == before and alias(settings, "canary") == V1


def test_a_forged_pointer_and_a_held_lock_stop_release_actions(released):
    settings, targets = released()
    deploy_version(settings, targets, V1)
    deploy_version(settings, targets, V2)
    promote(settings, targets, V1, "stable", 100, "first")
    lease = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)).isoformat()
    targets.cdn.create_exclusive(LOCK, json.dumps({"by": "bob", "action": "promote x to stable", "pid": 7,
                                                   "host": "h", "since": "2026-11-23T10:00:00+00:00",
                                                   "expires": lease}).encode())
    with pytest.raises(ReleaseLocked, match=r"promote x to stable by bob \(pid 7 on h\) since 2026-11-23T10:00"):
        promote(settings, targets, V2, "stable", 100, "second")
    targets.cdn.delete([LOCK])
    raw = json.loads(targets.cdn.get_bytes(channel_key("stable")))
    targets.cdn.put_bytes(channel_key("stable"), json.dumps({**raw, "version": V2}).encode())
    with pytest.raises(ForgedPointer, match=f"signature that does not match the release key: it points to '{V2}'"):
        promote(settings, targets, V2, "stable", 100, "over a forged pointer")
    report = verify_version(targets, V1, tags(settings, V1))
    assert [f.check for f in report.findings if not f.passed] == ["channel.stable"]
    assert targets.cdn.get_bytes(LOCK) is None  # a refused action leaves no lock behind


def test_gc_removes_only_old_versions_no_channel_holds(released):
    settings, targets = released()
    for v in (V1, V2, V3):
        deploy_version(settings, targets, v)
    promote(settings, targets, V2, "stable", 100, "a")
    promote(settings, targets, V3, "stable", 100, "b")  # stable: V3, previous V2; V1 is held by nothing
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=8)
    assert gc(settings, targets, retention_days=7) == []  # everything is younger than a week
    doomed = gc(settings, targets, retention_days=7, dry_run=True, now=later)
    assert [v.version for v in doomed] == [V1] and targets.kv.get_index(V1) is not None  # dry run: nothing removed
    gc(settings, targets, retention_days=7, now=later)
    listed = {v.version: v for v in deployed_versions(targets)}
    assert set(listed) == {V2, V3} and listed[V2].held_by == ("stable:previous",) and listed[V3].held_by == ("stable",)
    assert targets.kv.versions() == [V2, V3] and targets.cdn.list(model_key(V1)) == []
    assert targets.kv.scan(V1, "brand", 322, 8).present == 0
    assert json.loads(targets.audit_log.read_text().splitlines()[-1])["action"] == "gc"


def test_the_approval_plan_shows_the_move_and_refuses_what_would_fail(released):
    from deploy.release import plan_release

    settings, targets = released()
    deploy_version(settings, targets, V1)
    plan = plan_release(settings, "promote", "canary", V1)
    assert plan.startswith(f"promote canary: none -> {V1}\n") and "verify " + V1 + ": PASSED" in plan
    with pytest.raises(ReleaseError, match=f"{V2} fails verification"):
        plan_release(settings, "promote", "canary", V2)
    with pytest.raises(ReleaseError, match="nothing to rollback on stable"):
        plan_release(settings, "rollback", "stable", "")


def test_verify_refuses_dims_that_do_not_fit_the_reranker_and_channels_on_missing_rows(released, bundles):
    from deploy.verify import VerifyReport, check_signature

    settings, targets = released()
    manifest, root = bundles[V1]
    reranker = (root / "reranker.onnx").read_bytes()
    fits = VerifyReport(V1)
    check_signature(manifest, reranker, fits)
    assert fits.passed, fits.failures
    wider = json.loads(json.dumps(manifest))
    wider["embeddings"]["brand"]["dim"] = 5
    refused = VerifyReport(V1)
    check_signature(wider, reranker, refused)
    assert refused.failures == ["signature: the tables' dims add up to 25, reranker.onnx takes candidate_rows "
                                "['candidates', 24]"]
    older = {**manifest, "format": 1}  # a rollback across a format change: devices would refuse it
    refused = VerifyReport(V1)
    check_signature(older, reranker, refused)
    assert refused.failures == ["signature: manifest.json has format 1, this code reads 4"]
    for v in (V1, V2):
        deploy_version(settings, targets, v)
    promote(settings, targets, V1, "stable", 100, "first")
    record = targets.kv.get_index(V1)
    targets.kv.delete_version(V1, {n: t["rows"] for n, t in record["tables"].items()})  # removed behind gc's back
    report = verify_version(targets, V2, tags(settings, V2))
    assert report.failures == [f"channel.stable: KV lacks the embeddings of {V1}"]


def audited(targets, action: str | None = None) -> list[dict]:
    lines = [json.loads(line) for line in targets.audit_log.read_text().splitlines()]
    return [a for a in lines if action is None or a["action"] == action]


def test_a_pointer_copied_onto_another_channel_or_put_back_is_refused_and_repaired(released):
    settings, targets = released()
    for v in (V1, V2):
        deploy_version(settings, targets, v)
    promote(settings, targets, V1, "stable", 100, "first")
    old_stable = targets.cdn.get_bytes(channel_key("stable"))
    promote(settings, targets, V2, "canary", 10, "day 2")
    targets.cdn.put_bytes(channel_key("stable"), targets.cdn.get_bytes(channel_key("canary")))  # cp canary stable
    with pytest.raises(ForgedPointer, match=f"is the canary channel's pointer \\(to {V2}\\) copied onto stable; "
                                            "`edgerec release repair`"):
        current_pointer(targets, "stable")
    with pytest.raises(ForgedPointer, match="copied onto stable"):
        promote(settings, targets, V2, "stable", 100, "over a copied pointer")
    assert repair(settings, targets, "copied pointer") == {"canary": "in order", "recall": "in order",
                                                           "stable": f"wrote the pointer to {V1} again"}
    assert current_pointer(targets, "stable").version == V1 and alias(settings, "stable") == V1
    promote(settings, targets, V2, "stable", 100, "day 2")
    targets.cdn.put_bytes(channel_key("stable"), old_stable)  # an older signed pointer put back
    with pytest.raises(ForgedPointer, match=r"has sequence 1, but the audit log .* says its last move was sequence "
                                            f"3 \\(to {V2}\\): an older pointer put back"):
        current_pointer(targets, "stable")
    repair(settings, targets, "replayed pointer")
    restored = current_pointer(targets, "stable")
    assert (restored.version, restored.previous, restored.sequence) == (V2, V1, 4)
    assert [a["why"].split(" (was:")[0] for a in audited(targets, "repair") if a["phase"] == "done"] == [
        "copied pointer", "replayed pointer"]
    assert audit.problems(targets.audit_log) == []


def test_an_edited_audit_log_breaks_its_chain(released):
    settings, targets = released()
    deploy_version(settings, targets, V1)
    promote(settings, targets, V1, "canary", 10, "day 1")
    lines = targets.audit_log.read_text().splitlines()
    assert len(lines) == 3 and audit.problems(targets.audit_log) == []
    lines[1] = lines[1].replace('"why": "day 1"', '"why": "day one"')
    targets.audit_log.write_text("\n".join(lines) + "\n")
    assert audit.problems(targets.audit_log) == [
        f"{targets.audit_log} line 3: does not follow line 2 (edited, removed or reordered)"]


CRASH = """
import os, signal, sys
from deploy import release
from deploy.targets import open_targets
from edgerec.config import load_settings
setattr(release, sys.argv[1], lambda *args: os.kill(os.getpid(), signal.SIGKILL))  # the process dies right there
settings = load_settings()
release.promote(settings, open_targets(settings), sys.argv[2], "stable", 100, "crashing")
"""


def crash_promoting_v2_to_stable(released, at: str):
    """Stable on V1, then a promote of V2 to stable whose process is killed when it reaches `at`."""
    settings, targets = released()
    for v in (V1, V2):
        deploy_version(settings, targets, v)
    promote(settings, targets, V1, "stable", 100, "first")
    env = os.environ | {"EDGEREC_HOME": str(settings.home), "EDGEREC_RELEASE_ACTOR": "alice",
                        "EDGEREC_RELEASE_SIGNING_KEY": str(settings.release.signing_key),
                        "EDGEREC_RELEASE_TRUSTED_KEYS": str(settings.release.trusted_keys)}
    code = subprocess.run([sys.executable, "-c", CRASH, at, V2], env=env, timeout=300).returncode
    assert code == -signal.SIGKILL
    return settings, targets


def test_a_promote_killed_after_the_pointer_moved_is_finished_by_the_next_action(released):
    settings, targets = crash_promoting_v2_to_stable(released, "_move_alias")
    with pytest.raises(HalfDone, match=f"a promote of stable to {V2} \\(sequence 2, by alice .*\\) did not finish"):
        current_pointer(targets, "stable")
    assert json.loads(targets.cdn.get_bytes(LOCK))["action"] == f"promote {V2} to stable"  # the dead process's lock
    promote(settings, targets, V2, "canary", 10, "next day")  # takes the lock over and settles stable first
    [takeover] = audited(targets, "lock-takeover")
    assert takeover["held_by"]["action"] == f"promote {V2} to stable" and "is gone" in takeover["because"]
    assert current_pointer(targets, "stable").version == V2 and alias(settings, "stable") == V2
    settled = [a for a in audited(targets, "promote") if a.get("settled")]
    assert [(a["phase"], a["channel"], a["sequence"]) for a in settled] == [("done", "stable", 2)]
    assert targets.cdn.get_bytes(LOCK) is None


def test_a_promote_killed_before_the_pointer_moved_is_abandoned(released):
    settings, targets = crash_promoting_v2_to_stable(released, "write_channel")
    assert repair(settings, targets, "after a crash") == {"canary": "in order", "recall": "in order",
                                                          "stable": "settled an unfinished move"}
    pointer = current_pointer(targets, "stable")
    assert (pointer.version, pointer.sequence) == (V1, 1) and alias(settings, "stable") == V1
    [abandoned] = [a for a in audited(targets, "promote") if a["phase"] == "abandoned"]
    assert (abandoned["to"], abandoned["sequence"]) == (V2, 2)
    promote(settings, targets, V2, "stable", 100, "again")
    assert current_pointer(targets, "stable").sequence == 3  # a sequence is never used twice


def test_status_exits_1_on_a_channel_out_of_order_and_repair_mends_it(released):
    settings, targets = released()
    deploy_version(settings, targets, V1)
    promote(settings, targets, V1, "stable", 100, "first")
    targets.cdn.put_bytes(channel_key("canary"), targets.cdn.get_bytes(channel_key("stable")))
    env = {"EDGEREC_HOME": str(settings.home), "EDGEREC_RELEASE_ACTOR": "alice",
           "EDGEREC_RELEASE_TRUSTED_KEYS": str(settings.release.trusted_keys)}
    status = CliRunner().invoke(app, ["release", "status"], env=env)
    assert status.exit_code == 1 and "canary  FORGED: " in status.output and "copied onto canary" in status.output
    assert "audit   " in status.output and "chain holds" in status.output
    repaired = CliRunner().invoke(app, ["release", "repair", "--reason", "copied pointer"], env=env)
    assert repaired.exit_code == 0 and "canary  removed a pointer no release action wrote" in repaired.output
    assert CliRunner().invoke(app, ["release", "status"], env=env).exit_code == 0
