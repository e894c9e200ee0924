"""Every function a DAG task calls, in one place, each a function of (settings, ds, and the typed values of the
tasks before it).

The DAG files are wiring only: a task calls one function here and hands its result on. From training on, that is
the day's `ModelVersion`: each stage after `train` is told which version it works on, and none looks it up by day
again (the CLI resolves a day's version once, at the edge, for a manual re-run). Each stage imports its part when
it runs, so a task loads only what it uses: promoting a channel loads neither PyTorch nor Spark.
"""

from __future__ import annotations

from pathlib import Path

from edgerec import registry
from edgerec.config import Settings
from edgerec.gates import settle
from edgerec.registry import ModelVersion


# -- raw zone (edgerec.raw) ----------------------------------------------------------------------------------------
def simulate(settings: Settings, ds: str) -> dict:
    """The simulated world's client logs of the day into the raw zone."""
    from edgerec.raw import simulate_day

    return simulate_day(settings, ds)


def validate_raw(settings: Settings, ds: str) -> dict:
    """The day's raw logs against the contract; bad rows quarantined; BadShareExceeded above the threshold."""
    from edgerec.raw import validate_raw as validate

    return validate(settings, ds)


# -- warehouse (spark_jobs, edgerec.marts, edgerec.quality) ---------------------------------------------------------
def spark(settings: Settings, ds: str, job: str) -> dict:
    """One Spark job (ingest, sessionize, requests, bucketize) for the day; its figures."""
    from spark_jobs.jobs import run_jobs

    return run_jobs(settings, ds, [job])[job]


def quality(settings: Settings, ds: str, layer: str):
    """The data-quality gate of one layer (raw, features, marts): alerts on every failure, QualityGateFailed (a
    GateRefused that fails the day) on a blocking one."""
    from edgerec.quality.gate import run_quality

    return run_quality(settings, ds, layer)


def marts(settings: Settings, ds: str) -> dict:
    """dbt build of the marts for the day, with its tests."""
    from edgerec.marts import build_marts

    return build_marts(settings, ds)


# -- training (training.pipeline) -----------------------------------------------------------------------------------
def train(settings: Settings, ds: str) -> ModelVersion:
    """Train and compare the day's models, register the full model; NoTrainingData while the train mart is empty."""
    from training.pipeline import train_day

    summary = train_day(settings, ds)
    return registry.get_version(registry.connect(settings), summary["version"])


def evaluation_gate(settings: Settings, ds: str, version: ModelVersion):
    """Bless the version on the day's test set, or refuse it: GateRefused, after the alert."""
    from training.pipeline import gate_day

    verdict = gate_day(settings, ds, version.number)
    settle(settings, verdict.gate_verdict(ds))
    return verdict


def export(settings: Settings, ds: str, version: ModelVersion) -> Path:
    """The blessed version as a bundle."""
    from training.pipeline import export_day

    return export_day(settings, ds, version.id)


def servability_gate(settings: Settings, ds: str, version: ModelVersion):
    """The version's bundle: integrity, parity and counted budgets on the day's test requests; GateRefused, after
    the alert, when it fails."""
    from training.pipeline import servability_day

    report = servability_day(settings, ds, version.id)
    settle(settings, report.gate_verdict(ds))
    return report


# -- deploy and release (deploy.pipeline, deploy.release) -----------------------------------------------------------
def deploy(settings: Settings, ds: str, version: ModelVersion):
    """The version's embeddings into the KV and its bundle onto the CDN, each verified; a retry resumes."""
    from deploy.pipeline import deploy_day

    return deploy_day(settings, ds, version.id)


def promote_canary(settings: Settings, ds: str, version: ModelVersion) -> str:
    """Point `canary` at the version, verified again first."""
    from deploy.pipeline import canary_day

    return canary_day(settings, ds, version.id)


def gc(settings: Settings) -> list[str]:
    """Remove what no channel holds and is older than the retention."""
    from deploy.pipeline import gc_day

    return gc_day(settings)


def plan_release(settings: Settings, action: str, channel: str, version: str | None) -> str:
    """What a promote or rollback would point the channel at, verified, for a release manager to approve."""
    from deploy.release import plan_release as plan

    return plan(settings, action, channel, version)


def apply_release(settings: Settings, action: str, channel: str, version: str | None, percent: float,
                  reason: str) -> str:
    """Promote or roll back a channel, signed, verified and audited."""
    from deploy.release import promote, rollback
    from deploy.targets import open_targets

    targets = open_targets(settings)
    try:
        if action == "rollback":
            pointer = rollback(settings, targets, channel, reason)
        else:
            pointer = promote(settings, targets, version, channel, percent, reason)
    finally:
        targets.close()
    return f"{channel} -> {pointer.version} ({pointer.rollout_percent:g}%)"

